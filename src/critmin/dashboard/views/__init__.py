"""The dashboard's views; each module has a ``router`` (a ``fastapi.APIRouter``) the app includes."""

VIEWS = ("overview", "mineral", "scenarios", "risk", "stockpile", "market", "data")

#: Navigation: (path, label, view module) in the order the menu shows them.
NAV = (("/", "Overview", "overview"), ("/mineral/gallium", "Mineral", "mineral"),
       ("/scenarios", "Scenario lab", "scenarios"), ("/risk", "Risk", "risk"),
       ("/stockpile", "Stockpile & finance", "stockpile"), ("/market", "Marketplace", "market"),
       ("/data", "Data", "data"))

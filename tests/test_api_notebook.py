"""The notebook example in docs/ runs: every code cell of docs/api.ipynb, in order, in one namespace.

No kernel is started (the cells are plain Python); a failing cell fails the test with its index.
"""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "api.ipynb"


def test_api_notebook_runs():
    cells = [c for c in json.loads(NOTEBOOK.read_text("utf-8"))["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 6
    namespace: dict = {}
    for i, cell in enumerate(cells):
        code = "".join(cell["source"])
        try:
            exec(compile(code, f"{NOTEBOOK.name}[code cell {i}]", "exec"), namespace)
        except Exception as exc:  # the cell index makes the failure findable
            raise AssertionError(f"code cell {i} of {NOTEBOOK.name} failed: {exc!r}\n{code}") from exc


def test_help_lists_the_api():
    import critmin

    doc = critmin.__doc__ or ""
    for name in critmin.__all__:
        assert name in doc, name
        assert callable(getattr(critmin, name))
    assert set(critmin.__all__) <= set(dir(critmin))


def test_api_names_survive_their_subpackages_being_imported():
    """critmin.monitor is a subpackage too: once it is imported it replaces the lazy attribute, and must still
    be callable as the API function (the suite imports every module before running this)."""
    import critmin
    import critmin.monitor.workflow
    import critmin.policy.workflow

    assert callable(critmin.monitor)
    for name in critmin.__all__:
        assert callable(getattr(critmin, name)), name
    assert callable(critmin.policy.floor) and critmin.policy.floor.__name__ == "floor"

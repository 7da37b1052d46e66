"""Country labels of every source → ISO 3166-1 alpha-3.

Exhaustive by design: a label that is neither an ISO code, an ISO name known to
:mod:`pycountry`, nor listed in ``mappings/country_aliases.csv`` raises
:class:`~critmin.errors.MappingError`, so a data update cannot silently drop a row.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

import pycountry

from critmin.constants import PSEUDO_COUNTRIES
from critmin.errors import MappingError

#: Codes that are valid in critmin tables but not (or no longer) in ISO 3166-1.
EXTRA_CODES = {
    "XKX": "Kosovo",
    "ANT": "Netherlands Antilles (former)",
    "SCG": "Serbia and Montenegro (former)",
    "SUN": "USSR (former)",
    "CSK": "Czechoslovakia (former)",
    "DDR": "German Democratic Republic (former)",
}


@cache
def _aliases() -> dict[str, str]:
    text = resources.files("critmin.reference").joinpath("mappings/country_aliases.csv").read_text("utf-8")
    return {row["label"].strip().casefold(): row["iso3"] for row in csv.DictReader(text.splitlines())}


@cache
def _iso_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(c, attr, None)
            if value:
                names[value.casefold()] = c.alpha_3
    return names


@cache
def valid_codes() -> frozenset[str]:
    """All alpha-3 codes critmin accepts in a country column (ISO + documented extras + pseudo codes)."""
    return frozenset({c.alpha_3 for c in pycountry.countries} | set(EXTRA_CODES) | set(PSEUDO_COUNTRIES))


def is_valid_code(code: str) -> bool:
    return code in valid_codes()


def to_iso3(label: str, *, source: str = "") -> str:
    """Map a source's country label (name or code) to ISO alpha-3.

    Raises
    ------
    MappingError
        If the label is unknown; the message names the label and source.
    """
    key = str(label).strip()
    if key in valid_codes():
        return key
    folded = key.casefold()
    if folded in _aliases():
        return _aliases()[folded]
    if folded in _iso_names():
        return _iso_names()[folded]
    raise MappingError(f"unmapped country label {key!r}"
                       + (f" in {source}" if source else "")
                       + "; add it to critmin/reference/mappings/country_aliases.csv")


#: Short display names where the ISO name is long or formal.
DISPLAY_NAMES = {
    "COD": "DR Congo", "COG": "Congo (Brazzaville)", "KOR": "South Korea", "PRK": "North Korea",
    "RUS": "Russia", "IRN": "Iran", "TWN": "Taiwan", "VNM": "Vietnam", "LAO": "Laos", "BOL": "Bolivia",
    "TZA": "Tanzania", "VEN": "Venezuela", "MDA": "Moldova", "SYR": "Syria", "USA": "United States",
    "GBR": "United Kingdom",
}


@cache
def country_name(code: str) -> str:
    """Display name of an ISO alpha-3 code (or the code itself if unknown)."""
    if code in DISPLAY_NAMES:
        return DISPLAY_NAMES[code]
    if code in EXTRA_CODES:
        return EXTRA_CODES[code]
    names = {"ROW": "Other countries", "WLD": "World", "XNA": "Not allocated"}
    if code in names:
        return names[code]
    c = pycountry.countries.get(alpha_3=code)
    return getattr(c, "common_name", None) or (c.name if c else code)


#: Group codes allowed in curated ``country`` columns besides ISO3 and critmin pseudo codes.
#: ``EUU`` is the World Bank code for the European Union (the issuer of EU-level measures).
GROUP_CODES = {"EUU": "European Union (World Bank code; not ISO 3166)"}

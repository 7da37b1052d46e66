"""World Bank Worldwide Governance Indicators (2024 update, data to 2023).

Reads the released workbook ``wgi/wgidataset.xlsx`` (full precision; the CSV next to it is a
third-party export rounded to two decimals and is not used) and returns the long
``governance`` table. Missing estimates (``..``) are dropped rather than kept as NaN: a
governance score that was never estimated is not a data point. WGI economy codes are mapped
with :func:`~critmin.reference.countries.to_iso3` (``ZAR``→COD, ``ROM``→ROU, ``ADO``→AND,
``TMP``→TLS, ``KSV``→XKX, ``WBG``→PSE; ``ANT`` stays a documented historical code).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from critmin.constants import WGI_INDICATORS
from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES

SOURCE_ID = "wgi"
_FILE = "wgi/wgidataset.xlsx"

SOURCES: list[dict] = [
    {
        "id": SOURCE_ID,
        "publisher": "World Bank (Kaufmann and Kraay)",
        "title": "Worldwide Governance Indicators, 2024 update",
        "licence": "CC BY 4.0",
        "url": "https://www.govindicators.org",
        "version": "2024 update (1996-2023), workbook copied from GitHub lmorgans/WGIdata@05f52f8",
        "files": [_FILE],
        "notes": "Estimates only (standard-normal units), full precision from the xlsx; '..' cells dropped.",
    },
]


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the WGI workbook into the ``governance`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders.

    Returns
    -------
    dict
        ``{"governance": DataFrame}`` with the columns of ``schema.TABLES["governance"]``,
        sorted by ``country, year, indicator``.

    Raises
    ------
    DataError
        If the workbook is missing or lacks a needed column.
    MappingError
        For an unknown economy code or indicator.
    """
    path = Path(raw_root) / _FILE
    if not path.is_file():
        raise DataError("WGI workbook not found", file=str(path))
    needed = ["code", "year", "indicator", "estimate"]
    raw = pd.read_excel(path, sheet_name=0, engine="openpyxl")
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", file=_FILE)
    raw = raw[needed]

    # '..' marks "no estimate"; anything else that is not numeric is a format change -> error.
    estimate = raw["estimate"].where(raw["estimate"].astype("string").str.strip() != "..")
    value = pd.to_numeric(estimate, errors="coerce")
    bad = value.isna() & estimate.notna()
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"non-numeric estimate {raw['estimate'].iloc[first]!r}", file=_FILE, row=first + 2,
                        column="estimate")
    unknown = sorted(set(raw["indicator"]) - set(WGI_INDICATORS))
    if unknown:
        raise MappingError(f"unknown WGI indicator(s) {unknown}", file=_FILE)

    iso = {code: to_iso3(code, source=_FILE) for code in sorted(raw["code"].unique())}
    out = pd.DataFrame({
        "country": raw["code"].map(iso),
        "year": raw["year"],
        "indicator": raw["indicator"],
        "value": value,
        "source": SOURCE_ID,
    })[value.notna()]
    if out.duplicated(["country", "year", "indicator"]).any():
        # Two WGI codes mapping to one ISO3 would silently double-count a country.
        raise DataError("duplicate country-year-indicator after ISO3 mapping", file=_FILE)
    spec = TABLES["governance"]
    out = out[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    return {"governance": out.sort_values(["country", "year", "indicator"], kind="mergesort")
            .reset_index(drop=True)}

"""USITC DataWeb U.S. trade by HTS 4-digit heading and partner (``usitc-us-trade``) → ``us_trade``.

Reads the two DataWeb query exports in ``usitc-us-trade/``: imports for consumption (customs
value, first unit of quantity) and domestic exports (FAS value, first unit of quantity), for the
annual sheets (1993–2025) and the January–April year-to-date sheets (1993–2026), and returns the
long ``us_trade`` table (:data:`critmin.reference.schema.TABLES`).

Judgements (also in ``SOURCES[0]["notes"]``):

* **periods** — a calendar year is ``"YYYY"`` (``months`` 12); January–April year-to-date is
  ``"YYYY-YTD04"`` (``months`` 4), kept for *every* year 1993–2026 so that the partial year 2026
  has a like-for-like baseline (2025-YTD04). The annual sheets' ``2026`` column is not read: in
  these exports it holds only zeros (checked: all zero, or equal to the YTD sheet's 2026 column);
* **grain** — one row per flow × heading × partner × period × unit of quantity. DataWeb splits a
  heading by the statistical unit of its HTS lines (e.g. 8505: ``number`` and ``kilograms``);
  gross-mass units (kilograms, metric tons, grams) are converted to ``t`` and merged, other units
  (``number``, ``component kilograms``, ``gold content grams``, ``no units collected``) stay as
  published, so the heading's total value is the sum over ``quantity_unit``;
* **quantity** is NaN where DataWeb flags suppressed records for that cell (``<year>_Suppressed``
  > 0: the published quantity is incomplete) or where no units are collected;
* rows with zero value and zero (or no) quantity are dropped: DataWeb writes 0 for "no trade",
  and a missing row means the same;
* **commodity/stage** from ``mappings/hts4.csv`` (exhaustive; headings 2805, 7202 and 8112 are
  skipped because no single critmin id describes them; mixed headings such as 2825, 2836 and 8505
  are attributed with a note — read the note before using them);
* **partners** — DataWeb names → ISO3 via :func:`~critmin.reference.countries.to_iso3`
  (``Myanmar (Burma)`` alias added). Only the 18 queried partners exist; there is no world total,
  so shares computed here are shares of imports from those 18;
* each sheet's ``Total:`` row must equal the sum of its rows (checked) and is then dropped.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.errors import DataError, UnitError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES
from critmin.reference.sources._codes import SKIP, lookup, read_code_mapping
from critmin.units import mass_factor

SOURCE_ID = "usitc-dataweb"
_FOLDER = "usitc-us-trade"
_IMPORTS = f"{_FOLDER}/us_imports_for_consumption_1993-2026.xlsx"
_EXPORTS = f"{_FOLDER}/us_domestic_exports_1993-2026.xlsx"
_HTS4_FILE = "critmin/reference/mappings/hts4.csv"
#: Months covered by the year-to-date sheets (January–April) in these query exports.
YTD_MONTHS = 4
#: Units of quantity that are not mass and never converted.
_NO_UNITS = "no units collected"

SOURCES: list[dict] = [
    {
        "id": SOURCE_ID,
        "publisher": "U.S. International Trade Commission (DataWeb); data from the U.S. Census Bureau",
        "title": "U.S. imports for consumption and domestic exports by HTS 4-digit heading and partner, "
                 "25 critical-mineral headings, 18 partners, annual 1993-2025 and January-April "
                 "year-to-date 1993-2026",
        "licence": "Public domain (U.S. Government work)",
        "url": "https://dataweb.usitc.gov",
        "version": "queries downloaded 2026-07-10",
        "years": "1993–2026 (2026 January–April only)",
        "files": [_IMPORTS, _EXPORTS],
        "notes": "Imports: customs value + first unit of quantity; exports: FAS value + first unit of "
                 "quantity. period 'YYYY' (months 12) or 'YYYY-YTD04' (January-April, months 4, every "
                 "year). One row per flow/heading/partner/period/unit of quantity: kg, metric tons and "
                 "grams converted to t and merged; other units (number, component kilograms, ...) as "
                 "published. Quantity NaN where DataWeb flags suppressed records or no units are "
                 "collected. Zero rows dropped. Headings -> commodity/stage via mappings/hts4.csv "
                 "(2805, 7202, 8112 skipped; 2825, 2836, 8505 are mixed headings attributed to lithium, "
                 "lithium and rare-earth magnets). Only 18 partners, no world total: shares are of "
                 "imports from these 18.",
    },
]

#: (flow, value sheet) per workbook; the quantity sheet is "First Unit of Quantity".
_WORKBOOKS = ((_IMPORTS, "import", "Customs Value"), (_EXPORTS, "export", "FAS Value"))
_KEY = ["Country", "HTS Number", "Quantity Description"]


@cache
def hts4_mapping() -> pd.DataFrame:
    """The HTS 4-digit heading → commodity/stage mapping (``mappings/hts4.csv``), validated.

    Returns
    -------
    pandas.DataFrame
        Columns ``hts4, commodity, stage, note`` (strings), indexed by ``hts4``;
        ``commodity == "skip"`` marks headings critmin does not attribute.

    Raises
    ------
    MappingError
        If a row names an unknown commodity id or stage, a skip lacks its reason, a mapped heading
        lacks its note, or a heading is listed twice.
    """
    return read_code_mapping("hts4.csv", key="hts4", digits=4, what="HTS 4-digit heading",
                             columns=["hts4", "commodity", "stage", "note"], note_always=True)


def map_hts4(codes) -> pd.DataFrame:
    """Map HTS 4-digit headings to critmin commodity and stage.

    Parameters
    ----------
    codes : sequence of str
        Four-digit headings as text (``"2846"``).

    Returns
    -------
    pandas.DataFrame
        One row per input code (same order), columns ``hts4, commodity, stage``;
        ``commodity == "skip"`` marks headings that are not attributed.

    Raises
    ------
    MappingError
        If a heading is not listed in ``mappings/hts4.csv`` (the file must be exhaustive).
    """
    return lookup(hts4_mapping(), codes, key="hts4", what="HTS heading(s)", file=_HTS4_FILE)


def _read_sheet(path: Path, sheet: str, rel: str) -> pd.DataFrame:
    """One DataWeb data sheet: 2 banner rows, then the header row; the ``Total:`` row checked and dropped."""
    with warnings.catch_warnings():
        # DataWeb workbooks carry no default cell style; openpyxl warns about it on every sheet.
        warnings.filterwarnings("ignore", message="Workbook contains no default style")
        frame = pd.read_excel(path, sheet_name=sheet, header=2, dtype={"HTS Number": str})
    frame.columns = [str(c).removesuffix(".0") for c in frame.columns]  # 2026 is read as 2026.0
    missing = [c for c in ["Data Type", *_KEY] if c not in frame.columns]
    if missing:
        raise DataError(f"sheet {sheet!r}: missing column(s) {missing}", file=rel)
    is_total = frame["Data Type"].astype(str).str.strip().eq("Total:")
    total = frame[is_total]
    frame = frame[~is_total & frame["Country"].notna()].copy()
    frame["HTS Number"] = frame["HTS Number"].astype(str).str.strip().str.removesuffix(".0")
    frame["Quantity Description"] = (frame["Quantity Description"].astype(str).str.strip()
                                     .str.removeprefix("Value for: "))
    if len(total):
        # The banner total is the query's own checksum of the rows: a mismatch means rows were lost.
        for col in _data_columns(frame):
            published = float(str(total[col].iloc[0]).replace(",", ""))
            if not np.isclose(pd.to_numeric(frame[col]).sum(), published, rtol=0, atol=0.5):
                raise DataError(f"sheet {sheet!r}: rows do not add up to the Total row", file=rel, column=col)
    return frame


def _data_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if re.fullmatch(r"\d{4}(_Year_to_date)?", c)]


def _long(value: pd.DataFrame, qty: pd.DataFrame, ytd: bool, rel: str, sheet: str) -> pd.DataFrame:
    """Value and first-quantity sheets → long rows (one per country × heading × unit × period)."""
    if value.duplicated(_KEY).any() or qty.duplicated(_KEY).any():
        raise DataError(f"sheet {sheet!r}: repeated country/heading/unit rows", file=rel)
    if set(map(tuple, value[_KEY].to_numpy())) != set(map(tuple, qty[_KEY].to_numpy())):
        raise DataError(f"sheet {sheet!r}: value and quantity sheets list different rows", file=rel)
    cols = _data_columns(value)
    if not ytd:
        # The annual sheet's last column is the partial current year; YTD sheets carry it.
        cols = [c for c in cols if c != "2026"]
    v = value.melt(id_vars=_KEY, value_vars=cols, var_name="col", value_name="value_usd")
    q = qty.melt(id_vars=_KEY, value_vars=cols, var_name="col", value_name="quantity")
    s = qty.melt(id_vars=_KEY, value_vars=[f"{c}_Suppressed" for c in cols], var_name="col",
                 value_name="suppressed")
    s["col"] = s["col"].str.removesuffix("_Suppressed")
    out = v.merge(q, on=[*_KEY, "col"], how="left", validate="1:1").merge(
        s, on=[*_KEY, "col"], how="left", validate="1:1")
    year = out["col"].str[:4]
    out["period"] = year + f"-YTD{YTD_MONTHS:02d}" if ytd else year
    out["months"] = YTD_MONTHS if ytd else 12
    return out.drop(columns="col")


def _check_partial_year(annual: pd.DataFrame, ytd: pd.DataFrame, rel: str, sheet: str) -> None:
    """The annual sheet's 2026 column must be empty (all zero) or equal the YTD sheet's 2026 column.

    Anything else would mean the annual sheet holds a partial year that differs from the YTD
    sheet, and dropping it (we read 2026 from the YTD sheet only) would lose data.
    """
    if "2026" not in annual.columns or "2026_Year_to_date" not in ytd.columns:
        return
    a = annual.set_index(_KEY)["2026"].fillna(0).astype(float)
    y = ytd.set_index(_KEY)["2026_Year_to_date"].reindex(a.index).fillna(0).astype(float)
    if (a != 0).any() and not np.allclose(a.to_numpy(), y.to_numpy()):
        raise DataError(f"sheet {sheet!r}: the 2026 column differs from the year-to-date sheet", file=rel)


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the two USITC DataWeb workbooks into the ``us_trade`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders (the ``--raw`` of ``critmin data build``).

    Returns
    -------
    dict
        ``{"us_trade": DataFrame}`` with exactly the columns of ``schema.TABLES["us_trade"]``
        (value in current USD, quantity in ``quantity_unit``; gross mass in t), sorted by
        ``flow, hts4, partner, period, quantity_unit``.

    Raises
    ------
    DataError
        If a workbook or sheet is missing, rows do not add up to the published total, or the
        value and quantity sheets disagree. MappingError for an unlisted heading or country.
    """
    raw_root = Path(raw_root)
    parts = []
    for rel, flow, value_sheet in _WORKBOOKS:
        path = raw_root / rel
        if not path.is_file():
            raise DataError("USITC DataWeb workbook not found", file=str(path))
        sheets = {}
        for suffix in ("", " YTD"):
            for name in (value_sheet, "First Unit of Quantity"):
                try:
                    sheets[name + suffix] = _read_sheet(path, name + suffix, rel)
                except ValueError as exc:  # pandas: "Worksheet named ... not found"
                    raise DataError(f"cannot read sheet {name + suffix!r}: {exc}", file=rel) from None
        _check_partial_year(sheets[value_sheet], sheets[value_sheet + " YTD"], rel, value_sheet)
        for suffix in ("", " YTD"):
            long = _long(sheets[value_sheet + suffix], sheets["First Unit of Quantity" + suffix],
                         ytd=bool(suffix), rel=rel, sheet=value_sheet + suffix)
            long["flow"] = flow
            parts.append(long)
    frame = pd.concat(parts, ignore_index=True)
    return {"us_trade": _finish(frame)}


def _unit_factor(unit: str) -> float:
    """Factor to t for gross-mass units; NaN for units that are not a plain mass (kept as published)."""
    try:
        return mass_factor(unit)
    except UnitError:
        return float("nan")


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Map headings and partners, harmonise units, merge mass rows, drop zero rows, order and type."""
    mapping = map_hts4(sorted(frame["HTS Number"].unique())).set_index("hts4")
    frame = frame[frame["HTS Number"].map(mapping["commodity"]) != SKIP]
    frame = frame.join(mapping, on="HTS Number")
    iso = {c: to_iso3(c, source="USITC DataWeb") for c in sorted(frame["Country"].unique())}

    unit = frame["Quantity Description"]
    factor = unit.map({u: _unit_factor(u) for u in unit.unique()})
    is_mass = factor.notna()
    qty = pd.to_numeric(frame["quantity"]).astype(float)
    # A suppressed-record count > 0 means the published quantity leaves records out.
    unusable = (pd.to_numeric(frame["suppressed"]).fillna(0) > 0) | unit.eq(_NO_UNITS)
    qty = qty.where(~unusable)
    out = pd.DataFrame({
        "flow": frame["flow"], "hts4": frame["HTS Number"], "commodity": frame["commodity"],
        "stage": frame["stage"], "partner": frame["Country"].map(iso), "period": frame["period"],
        "months": frame["months"].astype("int64"),
        "value_usd": pd.to_numeric(frame["value_usd"]).astype(float),
        "quantity": np.where(is_mass, qty * factor, qty),
        "quantity_unit": np.where(is_mass, "t", unit),
    })
    keys = ["flow", "hts4", "commodity", "stage", "partner", "period", "months", "quantity_unit"]
    # kg and metric-ton lines of one heading are both gross mass: merge them; a NaN part makes the sum NaN.
    out["_nan"] = out["quantity"].isna()
    agg = out.groupby(keys, sort=False, dropna=False).agg(
        value_usd=("value_usd", "sum"), quantity=("quantity", "sum"), _nan=("_nan", "any")).reset_index()
    agg["quantity"] = agg["quantity"].where(~agg["_nan"])
    agg = agg[(agg["value_usd"] != 0) | (agg["quantity"].fillna(0) != 0)].drop(columns="_nan")
    agg["source"] = SOURCE_ID
    spec = TABLES["us_trade"]
    agg = agg[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    if agg.duplicated(["flow", "hts4", "partner", "period", "quantity_unit"]).any():
        raise DataError("duplicate flow-heading-partner-period-unit rows after mapping", file=_FOLDER)
    return agg.sort_values(["flow", "hts4", "partner", "period", "quantity_unit"],
                           kind="mergesort").reset_index(drop=True)

"""Commodity prices: World Bank Pink Sheet (monthly) and USGS rare-earth prices (annual).

Three sources feed the long ``prices`` table:

* ``worldbank-pink-sheet`` — sheet ``Monthly Prices`` of ``CMO-Historical-Data-Monthly.xlsx``;
  only the series of critmin commodities (:data:`PINK_SHEET_SERIES`, keyed by the workbook's
  series-code row) are kept; ``…``/``...`` (not available) cells are dropped;
* ``usgs-ds140-rare-earths`` — DS140 U.S. apparent-consumption unit value of rare earths,
  USD per t REO, nominal (series ``ds140-unit-value``; not a market price of separated oxides);
* ``usgs-myb2022-rare-earths`` — Minerals Yearbook 2022 table T3, average oxide prices 2021–2022
  in USD/kg (series = oxide formula, e.g. ``Nd2O3``; China FOB except scandium).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from critmin.errors import DataError, MappingError
from critmin.reference.schema import TABLES

PINK_ID, DS140_ID, MYB_ID = "worldbank-pink-sheet", "usgs-ds140-rare-earths", "usgs-myb2022-rare-earths"
_PINK = "worldbank-pink-sheet/CMO-Historical-Data-Monthly.xlsx"
_DS140 = "usgs-rare-earths-history/usgs_ds140_rare_earths_2020.xlsx"
_MYB = "usgs-rare-earths-history/usgs_myb2022_rare_earths_tables.xlsx"

SOURCES: list[dict] = [
    {
        "id": PINK_ID,
        "publisher": "World Bank",
        "title": "World Bank Commodity Price Data (The Pink Sheet), monthly prices",
        "licence": "CC BY 4.0",
        "url": "https://www.worldbank.org/en/research/commodity-markets",
        "version": "updated 2025-12-02 (1960M01-2025M11)",
        "files": [_PINK],
        "notes": "Nominal USD. Only series of critmin commodities (see prices.PINK_SHEET_SERIES); "
                 "'…' cells dropped. POTASH is potassium chloride; PHOSROCK is Morocco phosphate rock.",
    },
    {
        "id": DS140_ID,
        "publisher": "U.S. Geological Survey",
        "title": "Rare earths statistics, Historical statistics for mineral and material commodities "
                 "in the United States (Data Series 140)",
        "licence": "Public domain (U.S. Government work)",
        "url": "https://www.usgs.gov/media/files/rare-earths-historical-statistics-data-series-140",
        "version": "last modified 2023-09-27 (1900-2020)",
        "files": [_DS140],
        "notes": "Unit value ($/t REO, nominal) of U.S. apparent consumption, not a market price; "
                 "1937-1939 values (4, 3, 3 $/t) are as published and look implausible.",
    },
    {
        "id": MYB_ID,
        "publisher": "U.S. Geological Survey",
        "title": "Minerals Yearbook 2022, Rare earths, table 3: average rare-earth oxide prices",
        "licence": "Public domain (U.S. Government work); prices from Argus Media (China FOB) and "
                 "Stanford Materials Corp. (scandium) as republished by USGS",
        "url": "https://www.usgs.gov/centers/national-minerals-information-center/rare-earths-statistics-and-information",
        "version": "MYB 2022 advance release tables",
        "files": [_MYB],
        "notes": "USD/kg of oxide, annual averages 2021 and 2022.",
    },
]

#: Pink Sheet series code (row 7 of the sheet, exactly as spelled there) → critmin commodity id.
#: Fertilisers other than phosphate rock and potash (DAP, TSP, urea) are derived products and
#: are left out, like energy and agricultural series.
PINK_SHEET_SERIES: dict[str, str] = {
    "ALUMINUM": "aluminum", "COPPER": "copper", "LEAD": "lead", "Tin": "tin", "NICKEL": "nickel",
    "Zinc": "zinc", "IRON_ORE": "iron-ore", "GOLD": "gold", "PLATINUM": "platinum", "SILVER": "silver",
    "PHOSROCK": "phosphate", "POTASH": "potash",
}

#: Pink Sheet unit labels → critmin unit strings.
_PINK_UNITS = {"($/mt)": "USD/t", "($/troy oz)": "USD/troy oz", "($/dmtu)": "USD/dmtu"}

#: MYB T3 product (oxide) name → (critmin commodity id, oxide formula used as series code).
MYB_OXIDES: dict[str, tuple[str, str]] = {
    "Scandium": ("scandium", "Sc2O3"), "Yttrium": ("yttrium", "Y2O3"), "Lanthanum": ("lanthanum", "La2O3"),
    "Cerium": ("cerium", "CeO2"), "Praseodymium": ("praseodymium", "Pr6O11"),
    "Neodymium": ("neodymium", "Nd2O3"), "Samarium": ("samarium", "Sm2O3"),
    "Europium": ("europium", "Eu2O3"), "Gadolinium": ("gadolinium", "Gd2O3"),
    "Terbium": ("terbium", "Tb4O7"), "Dysprosium": ("dysprosium", "Dy2O3"),
}


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read all price sources into the ``prices`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders.

    Returns
    -------
    dict
        ``{"prices": DataFrame}`` with the columns of ``schema.TABLES["prices"]``, sorted by
        ``source, commodity, series, period``.

    Raises
    ------
    DataError
        If a file is missing or its layout changed. MappingError for unknown series/units/oxides.
    """
    raw_root = Path(raw_root)
    frames = [_pink_sheet(raw_root), _ds140(raw_root), _myb_t3(raw_root)]
    out = pd.concat(frames, ignore_index=True)
    spec = TABLES["prices"]
    out = out[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    return {"prices": out.sort_values(["source", "commodity", "series", "period"], kind="mergesort")
            .reset_index(drop=True)}


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    return path


def _pink_sheet(raw_root: Path) -> pd.DataFrame:
    """Monthly Pink Sheet prices of critmin commodities (long)."""
    path = _require(raw_root / _PINK)
    grid = pd.read_excel(path, sheet_name="Monthly Prices", header=None, engine="openpyxl")
    # Header block: row index 4 names, 5 units, 6 series codes; data from row 7, month in column 0.
    codes = grid.iloc[6].astype("string").str.strip()
    units = grid.iloc[5].astype("string").str.strip()
    columns = {code: j for j, code in enumerate(codes) if isinstance(code, str)}
    missing = sorted(set(PINK_SHEET_SERIES) - set(columns))
    if missing:
        raise MappingError(f"Pink Sheet series code(s) {missing} not found in row 7", file=_PINK)
    data = grid.iloc[7:]
    months = data[0].astype("string").str.strip()
    if not months.str.fullmatch(r"\d{4}M\d{2}").all():
        raise DataError("unexpected month label in column A (expected e.g. 2025M11)", file=_PINK)
    period = months.str.replace("M", "-", regex=False)
    parts = []
    for code, commodity in PINK_SHEET_SERIES.items():
        j = columns[code]
        unit = units.iloc[j]
        if unit not in _PINK_UNITS:
            raise MappingError(f"unknown unit {unit!r} of series {code}", file=_PINK)
        cell = data[j]
        text = cell.astype("string").str.strip()
        # '…' (and once '...') means "not available": drop the month, do not invent a zero.
        value = pd.to_numeric(cell.where(~text.isin(["…", "..."])), errors="coerce")
        bad = value.isna() & cell.notna() & ~text.isin(["…", "..."])
        if bad.any():
            raise DataError(f"non-numeric price {cell[bad].iloc[0]!r} in series {code}", file=_PINK)
        keep = value.notna()
        parts.append(pd.DataFrame({
            "commodity": commodity, "series": code, "period": period[keep], "frequency": "monthly",
            "value": value[keep].astype("float64"), "unit": _PINK_UNITS[unit], "source": PINK_ID,
        }))
    return pd.concat(parts, ignore_index=True)


def _ds140(raw_root: Path) -> pd.DataFrame:
    """DS140 annual unit value of rare earths (USD/t REO, nominal)."""
    path = _require(raw_root / _DS140)
    table = pd.read_excel(path, header=4, engine="openpyxl")
    column = "Unit value ($/t)"
    if "Year" not in table.columns or column not in table.columns:
        raise DataError(f"expected columns 'Year' and {column!r} in row 5", file=_DS140)
    # Footnote lines follow the year rows in column A; keep only rows whose Year is a number.
    year = pd.to_numeric(table["Year"], errors="coerce")
    value = pd.to_numeric(table[column], errors="coerce")
    keep = year.notna() & value.notna()
    return pd.DataFrame({
        "commodity": "rare-earths", "series": "ds140-unit-value",
        "period": year[keep].astype("int64").astype("string"), "frequency": "annual",
        "value": value[keep].astype("float64"), "unit": "USD/t", "source": DS140_ID,
    })


def _myb_t3(raw_root: Path) -> pd.DataFrame:
    """MYB 2022 table T3 average oxide prices, USD/kg, 2021–2022."""
    path = _require(raw_root / _MYB)
    with warnings.catch_warnings():
        # The workbook defines a print area on sheet T7 that openpyxl cannot parse; harmless here.
        warnings.filterwarnings("ignore", message="Print area cannot be set", category=UserWarning)
        grid = pd.read_excel(path, sheet_name="T3", header=None, engine="openpyxl")
    # Find the header row holding the years (print layout: blank spacer columns between values).
    header = next((i for i in range(len(grid))
                   if str(grid.iat[i, 0]).strip().startswith("Product")), None)
    if header is None:
        raise DataError("header row 'Product (oxide)' not found in sheet T3", file=_MYB)
    years = {j: int(v) for j, v in grid.iloc[header].items()
             if isinstance(v, (int, float)) and not pd.isna(v) and 1900 < v < 2100}
    if not years:
        raise DataError("no year columns in T3 header", file=_MYB)
    rows = []
    for i in range(header + 1, len(grid)):
        label = grid.iat[i, 0]
        if not isinstance(label, str) or pd.isna(grid.iat[i, min(years)]):
            continue  # footnotes and blank lines carry no price
        # Labels carry footnote markers glued on, e.g. "Neodymium4, 5" -> "Neodymium".
        name = re.sub(r"[\d,\s]+$", "", label.strip())
        if name not in MYB_OXIDES:
            raise MappingError(f"unknown oxide label {label!r} in sheet T3", file=_MYB)
        commodity, formula = MYB_OXIDES[name]
        for j, year in years.items():
            value = pd.to_numeric(grid.iat[i, j], errors="coerce")
            if pd.notna(value):
                rows.append({"commodity": commodity, "series": formula, "period": str(year),
                             "frequency": "annual", "value": float(value), "unit": "USD/kg",
                             "source": MYB_ID})
    return pd.DataFrame(rows)

"""Mineral deposit locations from three USGS compilations → the ``deposits`` table.

* ``pp1802`` — USGS Professional Paper 1802 critical-mineral points (2,121 rows; no id
  column, so ``deposit_id`` is the 1-based data-row number: ``pp1802-0001`` …);
* ``major`` — USGS "Major mineral deposits of the world" (``deposit.csv`` + the regularised
  per-deposit commodity list ``commodity.csv``; ``deposit_id`` = ``major-<gid>``);
* ``lithium-us`` — USGS Lithium Deposits in the United States, ``Site.csv`` (``lithium-us-<Site_ID>``),
  deposit type from ``Dep_Model.csv``.

Commodity labels are mapped through ``mappings/deposit_commodities.csv`` (exhaustive: an
unknown label raises :class:`~critmin.errors.MappingError`; ``skip`` = not a critmin
commodity). ``commodities`` is the ``;``-joined sorted set of critmin ids, and the empty
string when a deposit holds no critmin commodity (such deposits are kept so that the row
counts match the sources). Countries go through :func:`~critmin.reference.countries.to_iso3`.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES

PP1802_ID = "usgs-pp1802-critical-mineral-deposits"
MAJOR_ID = "usgs-major-mineral-deposits"
LITHIUM_ID = "usgs-lithium-deposits-us"
_PP1802 = "usgs-pp1802-critical-mineral-deposits/PP1802_CritMin_pts.csv"
_MAJOR_DEP = "usgs-major-mineral-deposits/deposit.csv"
_MAJOR_COM = "usgs-major-mineral-deposits/commodity.csv"
_LI_SITE = "usgs-lithium-deposits-us/Site.csv"
_LI_MODEL = "usgs-lithium-deposits-us/Dep_Model.csv"
_MAP_FILE = "critmin/reference/mappings/deposit_commodities.csv"
_SKIP = "skip"

SOURCES: list[dict] = [
    {
        "id": PP1802_ID,
        "publisher": "U.S. Geological Survey",
        "title": "Global distribution of selected mines, deposits, and districts of critical minerals "
                 "(Labay and others, 2017; Professional Paper 1802 points)",
        "licence": "Public domain (U.S. Government work)",
        "url": "https://doi.org/10.5066/F7GH9GQR",
        "version": "2017 data release, point attribute table",
        "files": [_PP1802],
        "notes": "deposit_id = pp1802-<1-based data row>; ocean locations -> XNA; 'Tibet' -> CHN.",
    },
    {
        "id": MAJOR_ID,
        "publisher": "U.S. Geological Survey",
        "title": "Major mineral deposits of the world (Mineral Resources Online Spatial Data, OFR 2005-1294)",
        "licence": "Public domain (U.S. Government work)",
        "url": "https://mrdata.usgs.gov/major-deposits/",
        "version": "compiled circa 2005",
        "files": [_MAJOR_DEP, _MAJOR_COM],
        "notes": "Commodities from commodity.csv; 7 'Korean Peninsula' rows assigned to KOR/PRK by "
                 "coordinates (deposits.KOREAN_PENINSULA); deposit_type = dep_type[: model_name].",
    },
    {
        "id": LITHIUM_ID,
        "publisher": "U.S. Geological Survey (Karl and others, 2019)",
        "title": "Lithium Deposits in the United States",
        "licence": "Public domain (U.S. Government work)",
        "url": "https://doi.org/10.5066/P9ZKRWQF",
        "version": "2019-08-05 data release",
        "files": [_LI_SITE, _LI_MODEL],
        "notes": "Sites only (Approx_Lat/Approx_Lon); deposit_type = distinct Dep_Model DpMd_NoNm per site.",
    },
]

#: The USGS major-deposits table labels seven deposits only "Korean Peninsula". Assigned by
#: their coordinates relative to the Military Demarcation Line (all are far from it).
KOREAN_PENINSULA: dict[int, str] = {
    320: "PRK",  # Geumdeogsan 39.70N 125.95E
    321: "PRK",  # Jaeryeong 38.40N 125.67E (Jaeryong iron, South Hwanghae)
    322: "PRK",  # Musan 42.17N 129.17E
    323: "KOR",  # Dongnam 37.28N 128.79E
    324: "KOR",  # Hongcheon-Jaun 37.86N 128.02E
    325: "KOR",  # Wando 34.35N 126.68E
    326: "KOR",  # Samgoe-Soryong 36.22N 127.43E
}


@cache
def commodity_mapping() -> dict[str, tuple[str, ...]]:
    """Deposit commodity label (casefolded) → tuple of critmin ids (empty tuple = skip).

    Raises
    ------
    MappingError
        If the file names an unknown commodity id, lacks a skip reason, or repeats a label.
    """
    text = resources.files("critmin.reference").joinpath("mappings/deposit_commodities.csv").read_text("utf-8")
    ids = _commodity_ids()
    out: dict[str, tuple[str, ...]] = {}
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        label, value, note = (row[k].strip() for k in ("label", "commodity", "note"))
        key = label.casefold()
        if key in out:
            raise MappingError(f"label {label!r} listed twice", file=_MAP_FILE, row=line)
        if value == _SKIP:
            if not note:
                raise MappingError(f"skipped label {label!r} needs a reason in 'note'", file=_MAP_FILE, row=line)
            out[key] = ()
            continue
        parts = tuple(p.strip() for p in value.split(";"))
        unknown = [p for p in parts if p not in ids]
        if unknown:
            raise MappingError(f"unknown commodity id(s) {unknown} for label {label!r}", file=_MAP_FILE,
                               row=line, column="commodity")
        out[key] = parts
    return out


def map_commodities(labels: list[str] | tuple[str, ...], *, source: str = "") -> str:
    """Map a deposit's commodity labels to the ``;``-joined sorted set of critmin ids.

    Parameters
    ----------
    labels : sequence of str
        Source labels, e.g. ``["Cu", "Au"]`` or ``["Niobium and Tantalum", "Tin"]``.
    source : str
        Raw file the labels come from (named in the error message).

    Returns
    -------
    str
        E.g. ``"niobium;tantalum;tin"``; ``""`` if no label is a critmin commodity.

    Raises
    ------
    MappingError
        If a label is not listed in ``mappings/deposit_commodities.csv``.
    """
    mapping = commodity_mapping()
    ids: set[str] = set()
    for label in labels:
        key = str(label).strip().casefold()
        if not key:
            continue
        if key not in mapping:
            raise MappingError(f"unmapped deposit commodity label {str(label).strip()!r}"
                               + (f" in {source}" if source else "")
                               + f"; add it to {_MAP_FILE} (or 'skip' with a reason)")
        ids.update(mapping[key])
    return ";".join(sorted(ids))


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the three deposit compilations into the ``deposits`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders.

    Returns
    -------
    dict
        ``{"deposits": DataFrame}`` with the columns of ``schema.TABLES["deposits"]``, sorted by
        ``dataset, deposit_id``.

    Raises
    ------
    DataError
        If a file is missing or malformed. MappingError for unknown commodity/country labels.
    """
    raw_root = Path(raw_root)
    out = pd.concat([_pp1802(raw_root), _major(raw_root), _lithium(raw_root)], ignore_index=True)
    if out["deposit_id"].duplicated().any():
        raise DataError("duplicate deposit_id: " + ", ".join(out.loc[out["deposit_id"].duplicated(), "deposit_id"]))
    spec = TABLES["deposits"]
    out = out[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    return {"deposits": out.sort_values(["dataset", "deposit_id"], kind="mergesort").reset_index(drop=True)}


def _read_csv(raw_root: Path, rel: str, **kwargs) -> pd.DataFrame:
    path = raw_root / rel
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    return pd.read_csv(path, **kwargs)


def _countries(labels: pd.Series, source: str) -> pd.Series:
    """Map country labels with ``to_iso3`` once per distinct label."""
    # One mojibake case: the major-deposits file has "Côte D\x92Ivoire" (a cp1252 apostrophe byte
    # decoded as a C1 control character); restore the apostrophe so the normal alias applies.
    clean = labels.astype("string").str.replace("\x92", "\u2019", regex=False).str.strip()
    lookup = {label: to_iso3(label, source=source) for label in sorted(clean.dropna().unique())}
    if clean.isna().any():
        raise DataError("missing country label", file=source)
    return clean.map(lookup)


def _pp1802(raw_root: Path) -> pd.DataFrame:
    raw = _read_csv(raw_root, _PP1802, dtype={"DEPOSIT_NAME": "string", "CRITICAL_MINERAL": "string",
                                             "DEPOSIT_TYPE": "string", "LOCATION": "string"})
    width = max(4, len(str(len(raw))))
    return pd.DataFrame({
        # No id in the source: the data-row number is stable for this (frozen) 2017 release.
        "deposit_id": [f"pp1802-{i:0{width}d}" for i in range(1, len(raw) + 1)],
        "name": raw["DEPOSIT_NAME"].str.strip(),
        "country": _countries(raw["LOCATION"], _PP1802),
        "lat": raw["LATITUDE"].astype("float64"),
        "lon": raw["LONGITUDE"].astype("float64"),
        "commodities": [map_commodities(v.split(";"), source=_PP1802) for v in raw["CRITICAL_MINERAL"]],
        "deposit_type": raw["DEPOSIT_TYPE"].str.strip(),
        "dataset": "pp1802",
        "source": PP1802_ID,
    })


def _major(raw_root: Path) -> pd.DataFrame:
    dep = _read_csv(raw_root, _MAJOR_DEP, dtype={"country": "string", "dep_name": "string",
                                                 "dep_type": "string", "model_name": "string"})
    com = _read_csv(raw_root, _MAJOR_COM, dtype={"value": "string"})
    orphans = sorted(set(com["gid"]) - set(dep["gid"]))
    if orphans:
        raise DataError(f"commodity rows for unknown gid(s) {orphans[:5]}", file=_MAJOR_COM)
    labels = com.groupby("gid")["value"].agg(lambda s: [v for v in s if pd.notna(v)])
    commodities = dep["gid"].map(lambda gid: map_commodities(labels.get(gid, []), source=_MAJOR_COM))

    country = dep["country"].copy()
    for gid, iso in KOREAN_PENINSULA.items():
        row = dep.index[dep["gid"] == gid]
        # Guard: the override is only valid for the row it was decided on.
        if len(row) != 1 or dep.at[row[0], "country"] != "Korean Peninsula":
            raise DataError(f"Korean Peninsula override for gid {gid} no longer matches the data", file=_MAJOR_DEP)
        country.loc[row[0]] = iso

    model = dep["model_name"].str.strip()
    model = model.where(model.notna() & (model.str.casefold() != "no model"))
    dep_type = dep["dep_type"].str.strip()
    deposit_type = (dep_type + ": " + model).fillna(dep_type)
    return pd.DataFrame({
        "deposit_id": "major-" + dep["gid"].astype("int64").astype("string"),
        "name": dep["dep_name"].str.strip(),
        "country": _countries(country, _MAJOR_DEP),
        "lat": dep["latitude"].astype("float64"),
        "lon": dep["longitude"].astype("float64"),
        "commodities": commodities,
        "deposit_type": deposit_type,
        "dataset": "major",
        "source": MAJOR_ID,
    })


def _lithium(raw_root: Path) -> pd.DataFrame:
    # Key columns are named with a trailing " *"; nulls are the string "<Null>".
    site = _read_csv(raw_root, _LI_SITE, dtype="string", na_values=["<Null>"], keep_default_na=False)
    model = _read_csv(raw_root, _LI_MODEL, dtype="string", na_values=["<Null>"], keep_default_na=False)
    site.columns = [c.rstrip(" *") for c in site.columns]
    model.columns = [c.rstrip(" *") for c in model.columns]
    types = (model.dropna(subset=["DpMd_NoNm"]).groupby("Site_ID")["DpMd_NoNm"]
             .agg(lambda s: "; ".join(sorted(set(s.str.strip())))))
    return pd.DataFrame({
        "deposit_id": "lithium-us-" + site["Site_ID"].str.strip(),
        "name": site["Site_Name"].str.strip(),
        # A U.S.-only database (Site_ID starts with the state code).
        "country": "USA",
        "lat": pd.to_numeric(site["Approx_Lat"]).astype("float64"),
        "lon": pd.to_numeric(site["Approx_Lon"]).astype("float64"),
        "commodities": [map_commodities(v.split(";"), source=_LI_SITE) for v in site["Commodity"]],
        "deposit_type": site["Site_ID"].str.strip().map(types).astype("string"),
        "dataset": "lithium-us",
        "source": LITHIUM_ID,
    })


@cache
def _commodity_ids() -> frozenset[str]:
    text = resources.files("critmin.reference").joinpath("mappings/commodities.csv").read_text("utf-8")
    return frozenset(row["id"] for row in csv.DictReader(text.splitlines()))

"""USGS Mineral Commodity Summaries (MCS 2023, 2024, 2026 data releases) → critmin long tables.

Three editions are read:

* **MCS 2026** — one long CSV (Windows-1252) with every chapter: world production and
  reserves, U.S. salient statistics, U.S. import sources.
* **MCS 2023 / MCS 2024** — one small CSV per commodity (``world/*_world.csv``) with the
  world production (previous year + current-year estimate) and reserves by country.

Everything that is a judgement lives in data files, not in code:

* ``mappings/mcs_series.csv`` — every (edition, label, statistic detail, measure, unit) of
  the world-production/reserves sections → table (production | reserves | skip),
  commodity id, stage, basis, or the reason it is skipped. Exhaustive: an unmapped series
  raises :class:`~critmin.errors.MappingError`.
* ``mappings/mcs_country_labels.csv`` — USGS country labels that are not plain country
  names (footnoted, estimate-marked, qualified, residual, world-total or group labels).
  Plain names go through :func:`critmin.reference.countries.to_iso3`.
* ``mappings/mcs_commodities.csv`` — MCS 2026 commodity labels of the salient-statistics
  and import-sources sections → commodity id (or a reason to skip); ``list_commodity`` names
  the id a label counts as on a critical-minerals list where that differs (``TiO2 pigment`` →
  titanium, ``Rare Earths (Heavy)`` → rare-earths: their statistics stay out of those ids').
* ``corrections/usgs_mcs.yml`` — corrections of the raw data, each guarded by the value it
  expects to find (see :func:`apply_corrections`).

Decisions (also in the report of the issue):

* Units: mass quantities are converted to tonnes (``t``) with the factors of critmin's one unit
  registry (:mod:`critmin.units`): thousand metric tons ×1000, million metric tons ×1e6,
  kilograms ×0.001; the source's unit labels are named in ``_MASS_UNITS``.
* Overlapping editions: for production, *latest revision wins* per whole
  (commodity, stage, basis, year) slice — the newest edition that publishes a year
  replaces every older row of that year, so a country folded into "Other countries" by a
  newer edition cannot be double counted. Reserves keep all three editions.
* Reserves ``year``: the year stated by the source (MCS 2026 ``Year``; a year in a 2023/2024
  column name), else the edition's data year (2022 for MCS 2023, 2023 for MCS 2024).
* ``estimated``: MCS 2023/2024 — ``est`` in the column name, an ``e`` suffix on the country
  label (``Russiae``) or an ``e`` prefix on the value (``e13,000``); MCS 2026 — ``Notes``
  contains "Estimated", or the year is 2025 (the FGDC metadata: "Data for 2025 were
  estimated").
* Codes: ``—`` = 0; ``W``, ``NA``, ``XX``, ``s`` and words ("Large") = no number (rows
  dropped from production/reserves, kept with their code in ``us_salient``); ``>x``/``<x``
  = x with a qualifier; ranges ``a - b`` = midpoint.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from critmin.constants import ROW_COUNTRY, ROW_TOTAL
from critmin.contracts import parse_yaml, validate
from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES
from critmin.units import mass_factor

__all__ = ["SOURCES", "apply_corrections", "cross_check", "parse", "parse_value"]

_LICENCE = "Public domain (U.S. Government work)"
_PUBLISHER = "U.S. Geological Survey, National Minerals Information Center"

_WORLD_FILES_2023 = (
    'mcs2023-abras_world.csv', 'mcs2023-alumi_world.csv', 'mcs2023-antim_world.csv',
    'mcs2023-arsen_world.csv', 'mcs2023-asbes_world.csv', 'mcs2023-barit_world.csv',
    'mcs2023-bauxi_world.csv', 'mcs2023-beryl_world.csv', 'mcs2023-bismu_world.csv',
    'mcs2023-boron_world.csv', 'mcs2023-bromi_world.csv', 'mcs2023-cadmi_world.csv',
    'mcs2023-cemen_world.csv', 'mcs2023-chrom_world.csv', 'mcs2023-clays_world.csv',
    'mcs2023-cobal_world.csv', 'mcs2023-coppe_world.csv', 'mcs2023-diamo_world.csv',
    'mcs2023-diato_world.csv', 'mcs2023-felds_world.csv', 'mcs2023-feore_world.csv',
    'mcs2023-fepig_world.csv', 'mcs2023-feste_world.csv', 'mcs2023-fluor_world.csv',
    'mcs2023-galli_world.csv', 'mcs2023-garne_world.csv', 'mcs2023-gemst_world.csv',
    'mcs2023-germa_world.csv', 'mcs2023-gold_world.csv', 'mcs2023-graph_world.csv',
    'mcs2023-gypsu_world.csv', 'mcs2023-heliu_world.csv', 'mcs2023-indiu_world.csv',
    'mcs2023-iodin_world.csv', 'mcs2023-kyani_world.csv', 'mcs2023-lead_world.csv',
    'mcs2023-lime_world.csv', 'mcs2023-lithi_world.csv', 'mcs2023-manga_world.csv',
    'mcs2023-mercu_world.csv', 'mcs2023-mgcomp_world.csv', 'mcs2023-mgmet_world.csv',
    'mcs2023-mica_world.csv', 'mcs2023-molyb_world.csv', 'mcs2023-nicke_world.csv',
    'mcs2023-niobi_world.csv', 'mcs2023-nitro_world.csv', 'mcs2023-peat_world.csv',
    'mcs2023-perli_world.csv', 'mcs2023-phosp_world.csv', 'mcs2023-plati_world.csv',
    'mcs2023-potas_world.csv', 'mcs2023-pumic_world.csv', 'mcs2023-raree_world.csv',
    'mcs2023-rheni_world.csv', 'mcs2023-salt_world.csv', 'mcs2023-sandi_world.csv',
    'mcs2023-selen_world.csv', 'mcs2023-silve_world.csv', 'mcs2023-simet_world.csv',
    'mcs2023-sodaa_world.csv', 'mcs2023-stond_world.csv', 'mcs2023-stron_world.csv',
    'mcs2023-sulfu_world.csv', 'mcs2023-talc_world.csv', 'mcs2023-tanta_world.csv',
    'mcs2023-tellu_world.csv', 'mcs2023-timin_world.csv', 'mcs2023-tin_world.csv',
    'mcs2023-titan_world.csv', 'mcs2023-tungs_world.csv', 'mcs2023-vanad_world.csv',
    'mcs2023-vermi_world.csv', 'mcs2023-wolla_world.csv', 'mcs2023-zeoli_world.csv',
    'mcs2023-zinc_world.csv', 'mcs2023-zirco-hafni_world.csv',
)

_WORLD_FILES_2024 = (
    'MCS2024-bismu_world.csv', 'mcs2024-abras_world.csv', 'mcs2024-alumi_world.csv',
    'mcs2024-antim_world.csv', 'mcs2024-arsen_world.csv', 'mcs2024-asbes_world.csv',
    'mcs2024-barit_world.csv', 'mcs2024-bauxi_world.csv', 'mcs2024-beryl_world.csv',
    'mcs2024-boron_world.csv', 'mcs2024-bromi_world.csv', 'mcs2024-cadmi_world.csv',
    'mcs2024-cemen_world.csv', 'mcs2024-chrom_world.csv', 'mcs2024-clays_world.csv',
    'mcs2024-cobal_world.csv', 'mcs2024-coppe_world.csv', 'mcs2024-diamo_world.csv',
    'mcs2024-diato_world.csv', 'mcs2024-felds_world.csv', 'mcs2024-feore_world.csv',
    'mcs2024-fepig_world.csv', 'mcs2024-feste_world.csv', 'mcs2024-fluor_world.csv',
    'mcs2024-galli_world.csv', 'mcs2024-garne_world.csv', 'mcs2024-gemst_world.csv',
    'mcs2024-germa_world.csv', 'mcs2024-gold_world.csv', 'mcs2024-graph_world.csv',
    'mcs2024-gypsu_world.csv', 'mcs2024-heliu_world.csv', 'mcs2024-indiu_world.csv',
    'mcs2024-iodin_world.csv', 'mcs2024-kyani_world.csv', 'mcs2024-lead_world.csv',
    'mcs2024-lime_world.csv', 'mcs2024-lithi_world.csv', 'mcs2024-manga_world.csv',
    'mcs2024-mercu_world.csv', 'mcs2024-mgcomp_world.csv', 'mcs2024-mgmet_world.csv',
    'mcs2024-mica_world.csv', 'mcs2024-molyb_world.csv', 'mcs2024-nicke_world.csv',
    'mcs2024-niobi_world.csv', 'mcs2024-nitro_world.csv', 'mcs2024-peat_world.csv',
    'mcs2024-perli_world.csv', 'mcs2024-phosp_world.csv', 'mcs2024-plati_world.csv',
    'mcs2024-potas_world.csv', 'mcs2024-pumic_world.csv', 'mcs2024-raree_world.csv',
    'mcs2024-rheni_world.csv', 'mcs2024-salt_world.csv', 'mcs2024-sandi_world.csv',
    'mcs2024-selen_world.csv', 'mcs2024-silve_world.csv', 'mcs2024-simet_world.csv',
    'mcs2024-sodaa_world.csv', 'mcs2024-stond_world.csv', 'mcs2024-stron_world.csv',
    'mcs2024-sulfu_world.csv', 'mcs2024-talc_world.csv', 'mcs2024-tanta_world.csv',
    'mcs2024-tellu_world.csv', 'mcs2024-timin_world.csv', 'mcs2024-tin_world.csv',
    'mcs2024-titan_world.csv', 'mcs2024-tungs_world.csv', 'mcs2024-vanad_world.csv',
    'mcs2024-vermi_world.csv', 'mcs2024-wolla_world.csv', 'mcs2024-zeoli_world.csv',
    'mcs2024-zinc_world.csv', 'mcs2024-zirco_world.csv',
)
_MCS2026_CSV = "usgs-mcs-2026/usgs_mcs2026_commodities_data.csv"

SOURCES: list[dict] = [
    {
        "id": "usgs-mcs-2023",
        "publisher": _PUBLISHER,
        "title": "U.S. Geological Survey Mineral Commodity Summaries 2023 Data Release",
        "licence": _LICENCE,
        "url": "https://doi.org/10.5066/P9WCYUI6",
        "version": "2023 data release (per-commodity CSVs)",
        "files": [f"usgs-mcs-2023/world/{name}" for name in _WORLD_FILES_2023],
    },
    {
        "id": "usgs-mcs-2024",
        "publisher": _PUBLISHER,
        "title": "U.S. Geological Survey Mineral Commodity Summaries 2024 Data Release",
        "licence": _LICENCE,
        "url": "https://doi.org/10.5066/P144BA54",
        "version": "ver. 2.0, March 2024",
        "files": [f"usgs-mcs-2024/world/{name}" for name in _WORLD_FILES_2024]
        + ["usgs-mcs-2024/salient/mcs2024-cobal_salient.csv", "usgs-mcs-2024/salient/mcs2024-gypsu_salient.csv",
           "usgs-mcs-2024/salient/mcs2024-kyani_salient.csv"],
    },
    {
        "id": "usgs-mcs-2026",
        "publisher": _PUBLISHER,
        "title": "Mineral Commodity Summaries 2026 Data Release",
        "licence": _LICENCE,
        "url": "https://doi.org/10.5066/P1WKQ63T",
        "version": "first posted 2026-02-06 (CSV predates report revision v1.3 of 2026-05-27; "
                   "v1.3 applied via corrections/usgs_mcs.yml)",
        "files": [_MCS2026_CSV, "usgs-mcs-2026/usgs_mcs2026_metadata.xml",
                  "usgs-mcs-2026/usgs_mcs2026_version_history.txt"],
    },
]

#: Edition → (production years, default reserves year). The newest edition wins overlaps.
_EDITIONS = {"usgs-mcs-2023": ((2021, 2022), 2022), "usgs-mcs-2024": ((2022, 2023), 2023),
             "usgs-mcs-2026": ((2024, 2025), 2025)}
_EDITION_RANK = {sid: i for i, sid in enumerate(sorted(_EDITIONS))}
#: MCS 2026: the FGDC metadata says every 2025 figure is an estimate.
_MCS2026_ESTIMATE_YEAR = 2025

#: Source mass unit → unit of critmin's registry (:mod:`critmin.units`). Units of the 2023/2024 column names and
#: of the 2026 ``Unit`` column. MCS "tons" are metric tons (the registry's "ton" is the short ton); "dry" is the
#: basis of the quantity, not a unit. Any other unit (carats, cubic metres, dollars, percent) is kept as published.
_MASS_UNITS = {
    "t": "tonne", "metric tons": "tonne", "tons": "tonne",
    "kt": "kilotonne", "thousand metric tons": "kilotonne", "thousand metric dry tons": "kilotonne",
    "Mt": "megatonne", "mt": "megatonne", "mmt": "megatonne", "million metric tons": "megatonne",
    "kg": "kilogram", "kilograms": "kilogram",
}


@cache
def _to_tonnes() -> dict[str, float]:
    """Source mass unit → factor to tonnes, from the registry."""
    return {label: mass_factor(unit) for label, unit in _MASS_UNITS.items()}

# Column names of the 2023/2024 world files, e.g. Prod_kt_est_2022, Reserves_ore_K2O_equiv_kt,
# Prod_Sponge_t_Est_2021, Reserves_kt_2023. Measure = prefix + qualifier, unit, est flag, year.
_WORLD_COL = re.compile(r"^(?P<measure>(?:Prod|Cap|Reserves)(?:_[A-Za-z0-9]+?)*?)_(?P<unit>t|kt|kg|Mt|mt|mmt|mct|kct|mcm)"
                        r"(?:_(?P<est>est|Est))?(?:_(?P<year>\d{4}))?$")
_NOTE_COL = re.compile(r"^(?:Prod|Cap|Reserves)_notes?$", re.IGNORECASE)

_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_RANGE = re.compile(r"^(?P<low>\d[\d,]*(?:\.\d+)?)\s*[-–]\s*(?P<high>\d[\d,]*(?:\.\d+)?)$")
_INEQUALITY = re.compile(r"^(?P<op>[<>])\s*(?P<num>\d[\d,]*(?:\.\d+)?)$")
_ZERO = {"—", "–", "0 "}


# --------------------------------------------------------------------------- helpers


def _ws(text: Any) -> str:
    """Normalise whitespace: USGS files mix non-breaking spaces and trailing blanks into labels."""
    return re.sub(r"\s+", " ", str(text).replace("\xa0", " ")).strip()


def _num(text: str) -> float:
    return float(text.replace(",", ""))


@dataclass(frozen=True)
class Parsed:
    """One published cell read as numbers.

    ``value`` is the best numeric reading (NaN when the cell holds no number), ``low``/``high``
    the bounds the code implies, ``qualifier`` '>' or '<' for inequalities, ``code`` the published
    text when it is not a plain number ('' otherwise), ``estimated`` an ``e`` prefix.
    """

    value: float
    low: float
    high: float
    qualifier: str = ""
    code: str = ""
    estimated: bool = False


def parse_value(text: Any) -> Parsed:
    """Read one USGS value cell.

    Parameters
    ----------
    text : str
        The cell as published, e.g. ``"270,000"``, ``"—"``, ``"W"``, ``">85,000,000"``,
        ``"10,000 - 15,000"``, ``"e13,000"``.

    Returns
    -------
    Parsed
        Plain numbers: value = low = high, code ''. ``—``: 0 with code '—'. ``>x``: value x,
        qualifier '>', low x, high NaN. ``<x``: value x, qualifier '<', low 0, high x. Ranges:
        midpoint, bounds, code = text. Anything else (``W``, ``NA``, ``XX``, ``s``, ``E``, words):
        NaN with code = text. Callers refine codes whose meaning depends on the statistic
        (percentages, net exporter).
    """
    raw = _ws(text)
    s, est = raw, False
    if re.match(r"^e\d", s):  # MCS 2023/2024 world files mark estimates with an 'e' prefix
        s, est = s[1:], True
    nan = math.nan
    if s == "":
        return Parsed(nan, nan, nan, "", "", est)
    if _NUMBER.match(s):
        v = _num(s)
        return Parsed(v, v, v, "", "", est)
    if s in _ZERO or raw in _ZERO:
        return Parsed(0.0, 0.0, 0.0, "", s, est)
    m = _INEQUALITY.match(s)
    if m:
        v = _num(m["num"])
        if m["op"] == ">":
            return Parsed(v, v, nan, ">", raw, est)
        return Parsed(v, 0.0, v, "<", raw, est)
    m = _RANGE.match(s)
    if m:
        lo, hi = _num(m["low"]), _num(m["high"])
        return Parsed((lo + hi) / 2, lo, hi, "", raw, est)
    return Parsed(nan, nan, nan, "", raw, est)


def _read_text(name: str) -> str:
    return resources.files("critmin.reference").joinpath(name).read_text("utf-8")


@cache
def _series_map() -> dict[tuple[str, str, str, str, str], dict[str, str]]:
    rows = csv.DictReader(_read_text("mappings/mcs_series.csv").splitlines())
    out: dict[tuple[str, str, str, str, str], dict[str, str]] = {}
    for r in rows:
        key = (r["edition"], r["label"], r["detail"], r["measure"], r["unit"])
        if key in out:
            raise DataError(f"duplicate key {key} in mappings/mcs_series.csv")
        if r["table"] not in ("production", "reserves", "skip"):
            raise DataError(f"bad table {r['table']!r} for {key} in mappings/mcs_series.csv")
        if r["table"] == "skip" and not r["reason"]:
            raise DataError(f"skip without a reason for {key} in mappings/mcs_series.csv")
        out[key] = r
    return out


@cache
def _country_labels() -> dict[str, tuple[str, str, bool]]:
    rows = csv.DictReader(_read_text("mappings/mcs_country_labels.csv").splitlines())
    return {_ws(r["label"]): (r["country"], r["row_type"], r["estimated"] == "True") for r in rows}


@cache
def _commodity_labels() -> dict[str, tuple[str, str]]:
    rows = csv.DictReader(_read_text("mappings/mcs_commodities.csv").splitlines())
    return {_ws(r["label"]): (r["commodity"], r["detail_prefix"]) for r in rows}


@cache
def _list_labels() -> dict[str, str]:
    """MCS label → critmin id it counts as on a critical-minerals list ('' when it counts as none)."""
    rows = csv.DictReader(_read_text("mappings/mcs_commodities.csv").splitlines())
    return {_ws(r["label"]): (r["list_commodity"] or r["commodity"]).strip() for r in rows}


@cache
def _known_commodities() -> frozenset[str]:
    return frozenset(r["id"] for r in csv.DictReader(_read_text("mappings/commodities.csv").splitlines()))


class CorrectionRecord(BaseModel):
    """One record of ``corrections/usgs_mcs.yml`` (its header documents the fields).

    Which fields a record needs depends on its ``table``: ``production``/``reserves`` (override or drop a
    parsed value: commodity, country, integer year, published-style texts), ``raw:<source id>`` (fix_shift:
    commodity, country, year text, column → text mappings), ``files`` (drop a raw file: its path and the start
    of its header).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    table: str
    source: str
    action: Literal["override", "drop", "fix_shift"]
    expect_source_value: Any
    reason: str
    reported_by: str
    commodity: str | None = None
    country: str | None = None
    year: Any = None
    stage: str | None = None
    basis: str | None = None
    value: Any = None
    file: str | None = None

    @model_validator(mode="after")
    def _fields_of_table(self) -> CorrectionRecord:
        table = self.table
        if table in ("production", "reserves", "files") or table.startswith("raw:"):
            kind = "raw" if table.startswith("raw:") else table
        else:
            raise PydanticCustomError("table", f"unknown table {table!r} (expected production, reserves, "
                                               "raw:<source id> or files)")
        need = {"production": ("commodity", "country", "year"), "reserves": ("commodity", "country", "year"),
                "raw": ("commodity", "country", "year", "value"), "files": ("file",)}[kind]
        actions = {"production": ("override", "drop"), "reserves": ("override", "drop"), "raw": ("fix_shift",),
                   "files": ("drop",)}[kind]
        missing = [f for f in need if getattr(self, f) is None]
        if kind in ("production", "reserves") and self.action == "override" and self.value is None:
            missing.append("value")
        if missing:
            raise PydanticCustomError("fields", f"a {table} record needs {', '.join(missing)}")
        if self.action not in actions:
            raise PydanticCustomError("action", f"action {self.action!r} not supported on {table} "
                                                f"(expected {' or '.join(actions)})")
        if kind == "raw":
            ok = (isinstance(self.year, str) and _is_text_map(self.value) and _is_text_map(self.expect_source_value))
            if not ok:
                raise PydanticCustomError("raw", "a raw record needs year as text and value, expect_source_value "
                                                 "as mappings of column -> text")
        elif kind == "files":
            if not isinstance(self.expect_source_value, str):
                raise PydanticCustomError("files", "a files record needs expect_source_value as text (the start "
                                                   "of the header)")
        elif not (isinstance(self.year, int) and not isinstance(self.year, bool)
                  and isinstance(self.expect_source_value, str) and (self.value is None or isinstance(self.value, str))):
            raise PydanticCustomError("values", f"a {table} record needs an integer year and value, "
                                                "expect_source_value as published-style text (e.g. \">75,000,000\")")
        return self


def _is_text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def load_corrections() -> list[dict]:
    """The records of ``corrections/usgs_mcs.yml`` (each checked against :class:`CorrectionRecord`).

    Raises
    ------
    DataError
        A record that breaks the contract, naming the file, line and key.
    """
    name = "corrections/usgs_mcs.yml"
    doc = parse_yaml(_read_text(name), where=name, error=DataError)
    records = doc.data or []
    validate(list[CorrectionRecord], records, where=name, error=DataError, node=doc.node)
    return records


def _country(label: str, source: str) -> tuple[str, str, bool] | None:
    """USGS country label → (code, row_type, label marks an estimate); None for a group (dropped by decision)."""
    key = _ws(label)
    special = _country_labels()
    if key in special:
        code, row_type, est = special[key]
        return None if row_type == "group" else (code, row_type, est)
    # to_iso3 raises MappingError for anything unknown — never guessed.
    return to_iso3(key, source=source), ROW_COUNTRY, False


def _commodity(label: str, file: str) -> tuple[str, str]:
    key = _ws(label)
    if key not in _commodity_labels():
        raise MappingError(f"unmapped MCS commodity label {key!r} in {file}; "
                           "add it to critmin/reference/mappings/mcs_commodities.csv")
    return _commodity_labels()[key]


def _lookup_series(key: tuple[str, str, str, str, str], file: str, line: int | None) -> dict[str, str]:
    try:
        return _series_map()[key]
    except KeyError:
        raise MappingError(f"unmapped MCS series (edition, label, detail, measure, unit) = {key}; "
                           "add it to critmin/reference/mappings/mcs_series.csv", file=file, row=line) from None


# --------------------------------------------------------------------------- raw readers (monkeypatchable)


def _read_mcs2026(raw_root: Path) -> pd.DataFrame:
    """The MCS 2026 long CSV as text (cp1252: em dashes and accents break under UTF-8)."""
    return pd.read_csv(raw_root / _MCS2026_CSV, encoding="cp1252", dtype=str, keep_default_na=False)


def _read_world_file(path: Path) -> pd.DataFrame:
    """One MCS 2023/2024 world CSV as text, without USGS's trailing empty columns and rows."""
    df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    df = df.loc[:, [not str(c).startswith("Unnamed") and str(c).strip() != "" for c in df.columns]]
    return df[(df != "").any(axis=1)]


# --------------------------------------------------------------------------- corrections


def _match_raw(df: pd.DataFrame, rec: dict) -> pd.Series:
    return ((df["MCS chapter"] == rec["commodity"]) & (df["Country"] == rec["country"])
            & (df["Year"] == str(rec["year"])))


def apply_corrections(df: pd.DataFrame, records: list[dict], table: str) -> pd.DataFrame:
    """Apply the correction records of one table, failing loudly when a record is stale.

    Parameters
    ----------
    df : DataFrame
        ``production`` or ``reserves`` frame (schema columns), or the raw MCS 2026 frame for
        ``table="raw:usgs-mcs-2026"``.
    records : list of dict
        Records as in ``corrections/usgs_mcs.yml``; those of other tables are ignored.
    table : str
        Which table ``df`` is.

    Returns
    -------
    DataFrame
        A corrected copy.

    Raises
    ------
    DataError
        If a record matches no row or several rows, or the source no longer holds
        ``expect_source_value`` (upstream fixed it: review and remove the record).
    """
    out = df.copy()
    for rec in (r for r in records if r.get("table") == table):
        where = f"correction {rec.get('source')}/{rec.get('commodity')}/{rec.get('country')}/{rec.get('year')}"
        if table.startswith("raw:"):
            mask = _match_raw(out, rec)
        else:
            mask = ((out["source"] == rec["source"]) & (out["commodity"] == rec["commodity"])
                    & (out["country"] == rec["country"]) & (out["year"] == int(rec["year"])))
            for extra in ("stage", "basis"):
                if extra in rec:
                    mask &= out[extra] == rec[extra]
        n = int(mask.sum())
        if n != 1:
            raise DataError(f"{where} ({table}) matches {n} rows, expected 1; the source changed - review the record")
        idx = out.index[mask][0]
        action = rec["action"]
        if table.startswith("raw:"):
            expected = rec["expect_source_value"]
            found = {col: out.at[idx, col] for col in expected}
            if found != expected:
                raise DataError(f"{where}: source now holds {found}, expected {expected}; "
                                "upstream fixed it? remove the record from corrections/usgs_mcs.yml")
            if action != "fix_shift":
                raise DataError(f"{where}: action {action!r} not supported on raw rows")
            for col, val in rec["value"].items():
                out.at[idx, col] = val
            continue
        exp = parse_value(rec["expect_source_value"])
        got_q = out.at[idx, "qualifier"] if "qualifier" in out.columns else ""
        if not (np.isclose(out.at[idx, "value"], exp.value) and got_q == exp.qualifier):
            raise DataError(f"{where}: source now holds {got_q}{out.at[idx, 'value']:,.0f}, expected "
                            f"{rec['expect_source_value']!r}; upstream fixed it? remove the record "
                            "from corrections/usgs_mcs.yml")
        if action == "drop":
            out = out.drop(index=idx)
        elif action == "override":
            new = parse_value(rec["value"])
            out.at[idx, "value"] = new.value
            if "qualifier" in out.columns:
                out.at[idx, "qualifier"] = new.qualifier
        else:
            raise DataError(f"{where}: action {action!r} not supported on {table}")
    return out


def _check_excluded_files(raw_root: Path, records: list[dict]) -> list[str]:
    """Verify the files recorded as 'not what their name says' still are; return their paths.

    The 2023/2024 salient CSVs are not read at all (``us_salient`` comes from MCS 2026), so the
    exclusion only has to be checked: if USGS/the mirror repairs a file, the record must go.
    """
    paths = []
    for rec in (r for r in records if r.get("table") == "files"):
        path = raw_root / rec["file"]
        if not path.exists():
            raise DataError(f"excluded file {rec['file']} is missing; review corrections/usgs_mcs.yml")
        header = path.read_text(encoding="utf-8-sig").splitlines()[0]
        if not header.startswith(rec["expect_source_value"]):
            raise DataError(f"excluded file {rec['file']} no longer starts with {rec['expect_source_value']!r}; "
                            "upstream fixed it? review corrections/usgs_mcs.yml")
        paths.append(rec["file"])
    return paths


# --------------------------------------------------------------------------- world production / reserves


_LONG_COLS = ["source", "table", "commodity", "stage", "basis", "label", "cell", "year", "factor",
              "estimated", "series", "file", "line"]


def _series_row(m: dict[str, str], key: tuple, file: str, line: int) -> float:
    if m["commodity"] not in _known_commodities():
        raise MappingError(f"commodity id {m['commodity']!r} of {key} is not in mappings/commodities.csv")
    unit = key[4]
    if unit not in _MASS_UNITS:
        raise DataError(f"unit {unit!r} of mapped series {key} is not a mass unit", file=file, row=line)
    return _to_tonnes()[unit]


def _world_2026(raw: pd.DataFrame) -> pd.DataFrame:
    sid, file = "usgs-mcs-2026", _MCS2026_CSV
    recs = []
    world = raw[raw["Section"].str.startswith("World")]
    for idx, r in world.iterrows():
        line = int(idx) + 2
        flag = r["Is critical mineral 2025"]
        if flag not in ("Yes", "No", ""):
            raise DataError(f"'Is critical mineral 2025' = {flag!r}: row shifted? (see corrections/usgs_mcs.yml)",
                            file=file, row=line)
        key = (sid, _ws(r["Commodity"]), _ws(r["Statistics_detail"]), _ws(r["Statistics"]), _ws(r["Unit"]))
        m = _lookup_series(key, file, line)
        if m["table"] == "skip":
            continue
        factor = _series_row(m, key, file, line)
        year = int(r["Year"])
        est = "estimated" in r["Notes"].lower() or year == _MCS2026_ESTIMATE_YEAR
        recs.append((sid, m["table"], m["commodity"], m["stage"], m["basis"], r["Country"], r["Value"], year,
                     factor, est, key[2], file, line))
    return pd.DataFrame.from_records(recs, columns=_LONG_COLS)


def _world_csv(raw_root: Path, sid: str, names: tuple[str, ...]) -> pd.DataFrame:
    folder = raw_root / sid / "world"
    present = {p.name for p in folder.glob("*_world.csv")}
    extra = sorted(present - set(names))
    if extra:
        raise MappingError(f"{sid}: world files not known to the parser: {extra}")
    reserves_year = _EDITIONS[sid][1]
    recs = []
    for name in names:
        file = f"{sid}/world/{name}"
        df = _read_world_file(folder / name)
        # Column 3 is the series label; MCS 2024 fluorspar names it 'Mine production, fluorspar'
        # instead of 'Type', so it is taken by position.
        type_col = df.columns[2]
        value_cols = []
        for col in df.columns[3:]:
            if _NOTE_COL.match(col):
                continue
            m = _WORLD_COL.match(col)
            if not m:
                raise DataError(f"unrecognised column {col!r}", file=file)
            value_cols.append((col, m))
        for idx, r in df.iterrows():
            line = int(idx) + 2
            detail = _ws(r[type_col])
            for col, cm in value_cols:
                key = (sid, name, detail, cm["measure"], cm["unit"])
                mp = _lookup_series(key, file, line)
                if mp["table"] == "skip":
                    continue
                if (mp["table"] == "reserves") != cm["measure"].startswith("Reserves"):
                    raise DataError(f"series {key} mapped to {mp['table']}", file=file, row=line)
                factor = _series_row(mp, key, file, line)
                year = int(cm["year"]) if cm["year"] else reserves_year
                recs.append((sid, mp["table"], mp["commodity"], mp["stage"], mp["basis"], r["Country"], r[col],
                             year, factor, bool(cm["est"]), detail, file, line))
    return pd.DataFrame.from_records(recs, columns=_LONG_COLS)


def _resolve(long: pd.DataFrame) -> pd.DataFrame:
    """Countries and values of the long world frame (one row per published cell)."""
    rows = []
    for r in long.itertuples(index=False):
        c = _country(r.label, f"{r.file} line {r.line}")
        if c is None:
            continue
        code, row_type, label_est = c
        p = parse_value(r.cell)
        if r.table == "production" and p.qualifier:
            # '<100' in a production table is not a quantity (production has no qualifier column):
            # dropped like 'W'. Only MCS 2023 zirconium (United States) has one.
            p = Parsed(math.nan, math.nan, math.nan, p.qualifier, p.code, p.estimated)
        series = r.series if p.low == p.high or math.isnan(p.low) or p.qualifier else \
            f"{r.series} (published as range {p.code})"
        rows.append((r.source, r.table, r.commodity, r.stage, r.basis, code, row_type, r.year,
                     p.value * r.factor, p.qualifier, bool(r.estimated or label_est or p.estimated), series,
                     r.file, r.line))
    return pd.DataFrame.from_records(rows, columns=["source", "table", "commodity", "stage", "basis", "country",
                                                    "row_type", "year", "value", "qualifier", "estimated",
                                                    "series", "file", "line"])


def _check_unique(df: pd.DataFrame, keys: list[str], what: str) -> None:
    dup = df[df.duplicated(keys, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise DataError(f"{what}: {len(dup)} rows share the key {dict(first[keys])}; "
                        "fix mappings/mcs_series.csv or mcs_country_labels.csv",
                        file=str(first.get("file", "")) or None, row=int(first["line"]) if "line" in dup else None)


def _finish(df: pd.DataFrame, table: str, keys: list[str]) -> pd.DataFrame:
    spec = TABLES[table]
    out = df[list(spec)].copy()
    for col, (dtype, _) in spec.items():
        out[col] = out[col].astype(dtype)
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _production(cells: pd.DataFrame) -> pd.DataFrame:
    prod = cells[cells["table"] == "production"].copy()
    _check_unique(prod, ["source", "commodity", "stage", "basis", "country", "year"], "production")
    # Latest revision wins, per (commodity, stage, basis, year) slice; decided before dropping
    # withheld cells so that a 'W' in the newest edition does not resurrect an older number.
    prod["rank"] = prod["source"].map(_EDITION_RANK)
    newest = prod.groupby(["commodity", "stage", "basis", "year"])["rank"].transform("max")
    prod = prod[prod["rank"] == newest]
    prod = prod[prod["value"].notna()].copy()
    prod["unit"] = "t"
    return _finish(prod, "production", ["commodity", "stage", "basis", "country", "year"])


def _reserves(cells: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    res = cells[cells["table"] == "reserves"].copy()
    _check_unique(res, ["source", "commodity", "basis", "country", "year"], "reserves")
    res["unit"] = "t"
    res = apply_corrections(res, records, "reserves")
    res = res[res["value"].notna()]
    return _finish(res, "reserves", ["commodity", "basis", "country", "year", "source"])


# --------------------------------------------------------------------------- U.S. salient statistics, import sources

#: MCS 2026 ``Statistics`` → critmin statistic ('Consumption' is refined by the detail text).
_STATISTIC = {
    "Production": "production", "Import": "imports", "Export": "exports", "Consumption": "apparent_consumption",
    "Net import reliance": "net_import_reliance", "Price": "price", "Stock": "stocks", "Employment": "employment",
    "Sold or used": "other", "Shipment": "other", "Sales": "other", "Sold": "other", "Supply": "other",
}


def _salient_value(cell: str, statistic: str, unit: str) -> tuple[float, float, float, str]:
    """(value, low, high, code) of one salient cell in the published unit. See parse()'s docstring."""
    p = parse_value(cell)
    nan = math.nan
    pct = unit == "percent"
    if p.code == "E" and statistic == "net_import_reliance":
        return 0.0, 0.0, 0.0, "E"  # net exporter: reliance is nil
    if p.code == "s":
        return nan, 0.0, 0.5, "s"  # less than half a unit
    if p.qualifier == ">":
        hi = 100.0 if pct else nan
        return ((p.low + hi) / 2 if pct else p.low), p.low, hi, p.code
    if p.qualifier == "<":
        return p.high / 2, 0.0, p.high, p.code
    return p.value, p.low, p.high, p.code


def _us_salient(raw: pd.DataFrame) -> pd.DataFrame:
    sid, file = "usgs-mcs-2026", _MCS2026_CSV
    rows = []
    sal = raw[raw["Section"].str.startswith("Salient Statistics")]
    for idx, r in sal.iterrows():
        line = int(idx) + 2
        commodity, prefix = _commodity(r["Commodity"], file)
        if not commodity:
            continue
        stat_label = _ws(r["Statistics"])
        if stat_label not in _STATISTIC:
            raise MappingError(f"unmapped salient statistic {stat_label!r}", file=file, row=line)
        statistic = _STATISTIC[stat_label]
        detail = _ws(r["Statistics_detail"])
        if statistic == "apparent_consumption" and "apparent" not in detail.lower():
            statistic = "other"  # reported / estimated consumption is not apparent consumption
        unit = _ws(r["Unit"])
        value, low, high, code = _salient_value(r["Value"], statistic, unit)
        factor = _to_tonnes().get(unit, 1.0)
        rows.append((commodity, int(r["Year"]), statistic, f"{prefix}: {detail}" if prefix else detail,
                     value * factor, low * factor, high * factor, code, "t" if unit in _MASS_UNITS else unit,
                     sid, file, line))
    df = pd.DataFrame.from_records(rows, columns=[*list(TABLES["us_salient"]), "file", "line"])
    _check_unique(df, ["commodity", "year", "statistic", "detail", "unit"], "us_salient")
    return _finish(df, "us_salient", ["commodity", "statistic", "detail", "unit", "year"])


def _import_sources(raw: pd.DataFrame) -> pd.DataFrame:
    sid, file = "usgs-mcs-2026", _MCS2026_CSV
    rows = []
    imp = raw[raw["Section"] == "Import Sources"]
    for idx, r in imp.iterrows():
        line = int(idx) + 2
        commodity, prefix = _commodity(r["Commodity"], file)
        if not commodity:
            continue
        if _ws(r["Unit"]) != "percent":
            raise DataError(f"import share in {r['Unit']!r}, expected percent", file=file, row=line)
        c = _country(r["Country"], f"{file} line {line}")
        if c is None:
            continue
        p = parse_value(r["Value"])
        # '<1' -> midpoint 0.5 %, '>99' -> 99.5 %: the share must stay a number in 0-1.
        pct = p.high / 2 if p.qualifier == "<" else (p.low + 100) / 2 if p.qualifier == ">" else p.value
        if math.isnan(pct):
            raise DataError(f"import share {r['Value']!r} is not a number", file=file, row=line)
        detail = _ws(r["Statistics_detail"])
        rows.append((commodity, c[0], _ws(r["Year"]).replace("–", "-"), pct / 100,
                     f"{prefix}: {detail}" if prefix else detail, sid, file, line))
    df = pd.DataFrame.from_records(rows, columns=[*list(TABLES["import_sources"]), "file", "line"])
    _check_unique(df, ["commodity", "detail", "partner", "period"], "import_sources")
    return _finish(df, "import_sources", ["commodity", "detail", "period", "partner"])


#: MCS 2026 column flagging the commodities of the USGS 2025 List of Critical Minerals, and the list's name.
_CRITICAL_COLUMN = "Is critical mineral 2025"
CRITICAL_LIST_2025 = "USGS 2025 critical minerals"


def _critical_lists(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per critmin id with at least one MCS row flagged critical ("Yes") in ``_CRITICAL_COLUMN``.

    Every row of the CSV counts, whatever its section. A label must carry one flag throughout (empty cells,
    two salient rows of wollastonite, are ignored); a label flagged "Yes" must map to a critmin id through
    ``mcs_commodities.csv`` (``list_commodity``, else ``commodity``), so no listed mineral is dropped silently.
    The USGS list also names thulium, uranium and metallurgical coal, which have no MCS 2026 chapter: they
    cannot appear here.
    """
    sid, file = "usgs-mcs-2026", _MCS2026_CSV
    if _CRITICAL_COLUMN not in raw.columns:
        raise DataError(f"column {_CRITICAL_COLUMN!r} not found", file=file, row=1)
    flags = raw[_CRITICAL_COLUMN].map(_ws)
    labels = raw["Commodity"].map(_ws)
    odd = ~flags.isin(["Yes", "No", ""])
    if odd.any():
        first = int(np.flatnonzero(odd.to_numpy())[0])
        raise DataError(f"{_CRITICAL_COLUMN!r} is {flags.iloc[first]!r}, expected Yes, No or empty",
                        file=file, row=first + 2, column=_CRITICAL_COLUMN)
    seen = pd.DataFrame({"label": labels, "flag": flags})
    seen = seen[seen["flag"] != ""].drop_duplicates()
    mixed = sorted(seen.loc[seen["label"].duplicated(), "label"])
    if mixed:
        raise DataError(f"commodity label(s) {mixed} flagged both Yes and No in {_CRITICAL_COLUMN!r}", file=file)
    rows = []
    for label in sorted(seen.loc[seen["flag"] == "Yes", "label"]):
        _commodity(label, file)  # the label must be listed at all (MappingError otherwise)
        commodity = _list_labels()[label]
        if not commodity:
            raise MappingError(f"MCS marks {label!r} critical but mappings/mcs_commodities.csv gives it no "
                               "critmin id (set commodity or list_commodity)", file=file)
        if commodity not in _known_commodities():
            raise MappingError(f"commodity id {commodity!r} of {label!r} is not in mappings/commodities.csv")
        rows.append((commodity, label))
    df = pd.DataFrame.from_records(rows, columns=["commodity", "label"])
    df = df.groupby("commodity", as_index=False)["label"].agg(lambda x: ";".join(sorted(x)))
    df["list"] = CRITICAL_LIST_2025
    df["source"] = sid
    return _finish(df, "critical_lists", ["list", "commodity"])


# --------------------------------------------------------------------------- public API


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Parse the three MCS editions.

    Parameters
    ----------
    raw_root : Path
        The raw data folder holding ``usgs-mcs-2023/``, ``usgs-mcs-2024/``, ``usgs-mcs-2026/``.

    Returns
    -------
    dict of str to DataFrame
        ``production``, ``reserves``, ``us_salient``, ``import_sources``, ``critical_lists`` with the
        columns of :data:`critmin.reference.schema.TABLES`, sorted by their key columns.

    Raises
    ------
    MappingError
        A series, country or commodity label that no mapping file covers.
    DataError
        Malformed files, duplicate keys, or a stale correction record.
    """
    raw_root = Path(raw_root)
    records = load_corrections()
    _check_excluded_files(raw_root, records)
    raw26 = apply_corrections(_read_mcs2026(raw_root), records, "raw:usgs-mcs-2026")
    long = pd.concat([_world_csv(raw_root, "usgs-mcs-2023", _WORLD_FILES_2023),
                      _world_csv(raw_root, "usgs-mcs-2024", _WORLD_FILES_2024),
                      _world_2026(raw26)], ignore_index=True)
    cells = _resolve(long)
    return {
        "production": _production(cells),
        "reserves": _reserves(cells, records),
        "us_salient": _us_salient(raw26),
        "import_sources": _import_sources(raw26),
        "critical_lists": _critical_lists(raw26),
    }


def cross_check(production: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Series whose country rows + residual do not add up to the reported world total.

    Parameters
    ----------
    production : DataFrame
        The ``production`` table.
    tolerance : float
        Largest accepted relative difference ``|sum - total| / total``. MCS world totals are
        rounded (usually to two significant figures), hence the 5 % default.

    Returns
    -------
    DataFrame
        Columns commodity, stage, year, basis, source, country_sum, world_total, rel_diff; one row
        per (commodity, stage, basis, year, source) slice that has both a world total and at
        least one country/residual row and differs by more than ``tolerance``.
    """
    keys = ["commodity", "stage", "year", "basis", "source"]
    cols = [*keys, "country_sum", "world_total", "rel_diff"]
    parts = production[production["row_type"] != ROW_TOTAL].groupby(keys)["value"].sum().rename("country_sum")
    totals = production[production["row_type"] == ROW_TOTAL].groupby(keys)["value"].sum().rename("world_total")
    both = pd.concat([parts, totals], axis=1, join="inner").reset_index()
    both["rel_diff"] = ((both["country_sum"] - both["world_total"]).abs()
                        / both["world_total"].where(both["world_total"] != 0))
    # A zero world total with a non-zero sum is an infinite difference, not a pass.
    both.loc[(both["world_total"] == 0) & (both["country_sum"] != 0), "rel_diff"] = math.inf
    flagged = both[both["rel_diff"] > tolerance]
    return flagged[cols].sort_values(keys, kind="mergesort").reset_index(drop=True)


"""European Commission critical-raw-materials assessments: scores 2011–2023, 2023 supply shares, 2017 inputs.

Three tables from the ``eu-crm-assessments`` folder:

* ``eu_crm_scores`` — published supply risk (SR) and economic importance (EI) of every assessed material
  in 2011, 2014, 2017, 2020 and 2023 (the 2023 report's trend table, Annex 4); ``-`` (not assessed) → NaN.
  The transcription keeps the 2023 score of the combined material bauxite/alumina/aluminium in its
  ``Aluminium`` row (2023 ``Bauxite`` is ``-``); that row is named ``Aluminium/bauxite`` here so that a
  label means one material across years.
* ``eu_crm_supply`` — 2023 shares of global supply and of EU sourcing by country and stage, with the
  export-restriction factor t (2023 report, Appendix 7). ``<0.1%`` → 0.0005 (half the bound), the
  published text kept in ``share_text``. The 2023 ``Aluminium`` rows are named ``Aluminium/bauxite`` too.
* ``eu_crm_2017`` — the 78 materials of the 2017 criticality assessments with the inputs of their SR
  (Tables 3, 18 and 19 of the 2017 study, transcribed from the PDF); percentages as fractions, ``N/A`` → NaN.

Material labels map to critmin ids through ``mappings/eu_materials.csv`` (exhaustive: an unlisted label
stops the build; ``skip`` or blank → ``commodity == ''``). Extraction → ``mine``, processing →
``refine``; at the mine stage the aluminium chain takes critmin's mine-stage id ``bauxite``. Countries
go through :func:`~critmin.reference.countries.to_iso3` (EU spellings such as ``Congo, D.R.`` or
``Turkyie`` are in ``mappings/country_aliases.csv``); rest-of-world labels → ``ROW``.

The CSVs are Windows-1252 with CRLF line endings; one trend-table name (``Natural Teak wood``) is a
quoted multi-line field, so labels are whitespace-normalised.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

from critmin.constants import RESIDUAL
from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES

SOURCE_ID = "eu-crm"
_DIR = "eu-crm-assessments"
_SCORES = f"{_DIR}/data/dimension_CRMsOverTime.csv"
_GLOBAL = f"{_DIR}/data/fact_GlobalSupplyShares&t.csv"
_EU = f"{_DIR}/data/fact_EUSupplyShares&t.csv"
_T2017 = f"{_DIR}/transcribed/eu_crm_2017_tables_3_18_19.csv"
_MAPPING = "critmin/reference/mappings/eu_materials.csv"

SOURCES: list[dict] = [
    {
        "id": SOURCE_ID,
        "publisher": "European Commission, DG GROW",
        "title": "Study on the Critical Raw Materials for the EU 2023 - Final Report (doi:10.2873/725585): SR/EI "
                 "2011-2023 and 2023 supply shares with t; Study on the review of the list of Critical Raw "
                 "Materials - Criticality Assessments (2017, doi:10.2873/876644): Tables 3, 18, 19",
        "licence": "EC reports: reuse authorised with acknowledgement (Commission Decision 2011/833/EU; the 2023 "
                   "report under CC BY 4.0). Transcription erikemilsson/EU-Critical-Raw-Materials-CRM-Reports-"
                   "Datasets: CC BY 4.0. Attribute the EC report and the transcription.",
        "url": "https://single-market-economy.ec.europa.eu/sectors/raw-materials/areas-specific-interest/"
               "critical-raw-materials_en",
        "version": "2023 tables from GitHub erikemilsson/EU-Critical-Raw-Materials-CRM-Reports-Datasets@5938350 "
                   "(2024-12-02); 2017 tables transcribed from the 2017 study's PDF",
        "files": [_SCORES, _GLOBAL, _EU, _T2017],
        "notes": "Labels mapped via mappings/eu_materials.csv ('' where no critmin id fits); extraction -> mine, "
                 "processing -> refine (the aluminium chain's mine stage -> bauxite); the 2023 'Aluminium' rows "
                 "(bauxite/alumina/aluminium assessed as one) named 'Aluminium/bauxite'; '<0.1%' -> 0.0005 with "
                 "the text kept; percentages as fractions; '-' and 'N/A' -> NaN. Method: Blengini et al. (2017), "
                 "doi:10.2873/769526.",
    },
]

#: The transcription's 2023 'Aluminium' stands for the combined material (bauxite, alumina, aluminium).
_ALUMINIUM_2023 = ("Aluminium", "Aluminium/bauxite")
#: critmin ids that change with the stage: the aluminium chain's mine stage is bauxite.
_MINE_STAGE_ID = {"aluminum": "bauxite"}
_STAGES = {"E": "mine", "P": "refine", "Extraction": "mine", "Processing": "refine"}
_RESIDUAL_LABELS = {"other", "others", "other countries", "rest of world", "rest of the world", "row"}
_SUPPLY_USED = ("GS + EUS", "GS only", "EUS only")
#: Shares printed without their percent sign: (file, material, stage, country) -> read as. The EU-sourcing
#: silicon-metal row of Germany reads '6'; the other 12 rows of that material sum to 90 %, with 6 % to 96 %.
_SHARE_FIXES = {(_EU, "Silicon metal", "P", "Germany"): "6%"}
_SKIP = "skip"


def _norm(label) -> str:
    """Whitespace-normalised label (joins the multi-line ``Natural Teak\\nwood``)."""
    return " ".join(str(label).split())


@cache
def material_mapping() -> dict[str, str]:
    """EU material label (casefolded) → critmin id or ``''``, from ``mappings/eu_materials.csv``, validated.

    Raises
    ------
    MappingError
        If a row names an unknown commodity id, a skipped or blank row lacks its reason, or a label is
        listed twice.
    """
    from critmin.reference.sources.baci import _commodity_ids

    text = resources.files("critmin.reference").joinpath("mappings/eu_materials.csv").read_text("utf-8")
    ids = _commodity_ids()
    out: dict[str, str] = {}
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        label, commodity, note = (_norm(row.get(k) or "") for k in ("material", "commodity", "note"))
        if commodity in ("", _SKIP) and not note:
            raise MappingError(f"EU material {label!r} is skipped without a reason in 'note'", file=_MAPPING,
                               row=line, column="note")
        if commodity not in ("", _SKIP) and commodity not in ids:
            raise MappingError(f"unknown commodity id {commodity!r} for EU material {label!r}", file=_MAPPING,
                               row=line, column="commodity")
        key = label.casefold()
        if key in out:
            raise MappingError(f"EU material {label!r} listed twice", file=_MAPPING, row=line, column="material")
        out[key] = "" if commodity == _SKIP else commodity
    return out


def map_materials(labels: pd.Series, *, file: str) -> pd.Series:
    """critmin ids of EU material labels (``''`` where none fits).

    Raises
    ------
    MappingError
        Naming every label of ``file`` that ``mappings/eu_materials.csv`` does not list.
    """
    mapping = material_mapping()
    unknown = sorted({m for m in labels if m.casefold() not in mapping})
    if unknown:
        raise MappingError(f"EU material label(s) {unknown} not listed in {_MAPPING}; add them (a critmin id, "
                           "or 'skip' with a reason)", file=file)
    return labels.map(lambda m: mapping[m.casefold()]).astype("string")


def _read(raw_root: Path, rel: str, columns: list[str], encoding: str) -> pd.DataFrame:
    path = Path(raw_root) / rel
    if not path.is_file():
        raise DataError("EU CRM file not found", file=str(path))
    frame = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False)
    frame.columns = [_norm(c) for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", file=rel)
    frame = frame[columns].map(_norm)
    return frame


def _number(values: pd.Series, *, file: str, column: str, missing: tuple[str, ...] = ()) -> pd.Series:
    """Floats of a text column; ``missing`` texts → NaN, anything else non-numeric is an error."""
    text = values.where(~values.isin(missing))
    num = pd.to_numeric(text, errors="coerce")
    bad = num.isna() & text.notna()
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"non-numeric value {values.iloc[first]!r}", file=file, row=first + 2, column=column)
    return num.astype("float64")


def _conform(frame: pd.DataFrame, table: str, keys: list[str]) -> pd.DataFrame:
    spec = TABLES[table]
    out = frame[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _unique(frame: pd.DataFrame, keys: list[str], *, file: str, what: str) -> None:
    """Stop on two rows for one key (a mapping that folds two labels onto one id would double-count)."""
    dup = frame[frame.duplicated(keys, keep=False)]
    if len(dup):
        raise DataError(f"{what}: rows share {keys}: {dup[keys].drop_duplicates().head(5).to_dict('records')}",
                        file=file)


def _scores(raw_root: Path) -> pd.DataFrame:
    raw = _read(raw_root, _SCORES, ["Material", "Year", "SR", "EI"], "cp1252")
    old, new = _ALUMINIUM_2023
    is_2023 = raw["Year"] == "2023"
    bauxite_2023 = raw.loc[is_2023 & (raw["Material"] == "Bauxite"), ["SR", "EI"]]
    if (bauxite_2023 != "-").any(axis=None):
        # The renaming rests on the 2023 report assessing bauxite and aluminium as one material.
        raise DataError("2023 'Bauxite' has a score: the 2023 'Aluminium' row may no longer stand for "
                        "aluminium/bauxite", file=_SCORES)
    material = raw["Material"].where(~(is_2023 & (raw["Material"] == old)), new)
    year = pd.to_numeric(raw["Year"], errors="coerce")
    if year.isna().any():
        raise DataError("non-numeric year", file=_SCORES, column="Year")
    out = pd.DataFrame({
        "material": material,
        "commodity": map_materials(material, file=_SCORES),
        "year": year.astype("int64"),
        "sr": _number(raw["SR"], file=_SCORES, column="SR", missing=("-",)),
        "ei": _number(raw["EI"], file=_SCORES, column="EI", missing=("-",)),
        "source": SOURCE_ID,
    })
    _unique(out, ["material", "year"], file=_SCORES, what="eu_crm_scores")
    _unique(out[out["commodity"] != ""], ["commodity", "year"], file=_SCORES, what="eu_crm_scores")
    return _conform(out, "eu_crm_scores", ["material", "year"])


_SHARE = re.compile(r"^(<)?\s*(\d+(?:\.\d+)?)\s*%$")


def _share(text: str, *, file: str, row: int) -> float:
    m = _SHARE.match(text)
    if not m:
        raise DataError(f"unreadable share {text!r}", file=file, row=row, column="Share")
    value = float(m.group(2)) / 100
    return value / 2 if m.group(1) else value     # '<0.1%' -> half the bound


def _country(label: str, *, file: str) -> str:
    if label.casefold() in _RESIDUAL_LABELS:
        return RESIDUAL
    return to_iso3(label, source=file)


def _supply_file(raw_root: Path, rel: str, scope: str) -> pd.DataFrame:
    raw = _read(raw_root, rel, ["Material", "Stage", "Country", "Share", "t"], "cp1252")
    bad = sorted(set(raw["Stage"]) - {"E", "P"})
    if bad:
        raise DataError(f"unknown stage(s) {bad} (expected E or P)", file=rel, column="Stage")
    material = raw["Material"].where(raw["Material"] != _ALUMINIUM_2023[0], _ALUMINIUM_2023[1])
    commodity = map_materials(material, file=rel)
    stage = raw["Stage"].map(_STAGES)
    commodity = commodity.where(stage != "mine", commodity.replace(_MINE_STAGE_ID))
    iso = {c: _country(c, file=rel) for c in sorted(raw["Country"].unique())}
    out = pd.DataFrame({
        "material": material,
        "commodity": commodity,
        "stage": stage,
        "scope": scope,
        "country": raw["Country"].map(iso),
        "share": [_share(_SHARE_FIXES.get((rel, m, st, c), s), file=rel, row=i + 2)
                  for i, (m, st, c, s) in enumerate(raw[["Material", "Stage", "Country", "Share"]].itertuples(
                      index=False))],
        "share_text": raw["Share"],
        "t": _number(raw["t"], file=rel, column="t"),
        "source": SOURCE_ID,
    })
    _unique(out, ["material", "stage", "country"], file=rel, what="eu_crm_supply")
    _unique(out[out["commodity"] != ""], ["commodity", "stage", "country"], file=rel, what="eu_crm_supply")
    return out


def _supply(raw_root: Path) -> pd.DataFrame:
    out = pd.concat([_supply_file(raw_root, _GLOBAL, "global"), _supply_file(raw_root, _EU, "eu_sourcing")],
                    ignore_index=True)
    return _conform(out, "eu_crm_supply", ["scope", "material", "stage", "country"])


def _t2017(raw_root: Path) -> pd.DataFrame:
    cols = ["material", "stage", "SR", "EI", "IR_pct", "EoL_RIR_pct", "supply_used_in_SR", "SI_EI", "SI_SR",
            "HHI_WGI_t_GS", "HHI_WGI_t_EU", "SR_GS_only", "SR_EU_only", "SR_GS_and_EU"]
    raw = _read(raw_root, _T2017, cols, "cp1252")
    bad = sorted(set(raw["stage"]) - {"Extraction", "Processing"})
    if bad:
        raise DataError(f"unknown stage(s) {bad}", file=_T2017, column="stage")
    bad = sorted(set(raw["supply_used_in_SR"]) - set(_SUPPLY_USED))
    if bad:
        raise DataError(f"unknown supply_used_in_SR value(s) {bad}", file=_T2017, column="supply_used_in_SR")
    stage = raw["stage"].map(_STAGES)
    commodity = map_materials(raw["material"], file=_T2017)
    commodity = commodity.where(stage != "mine", commodity.replace(_MINE_STAGE_ID))

    def num(col: str, scale: float = 1.0) -> pd.Series:
        return _number(raw[col], file=_T2017, column=col, missing=("N/A",)) / scale

    out = pd.DataFrame({
        "material": raw["material"], "commodity": commodity, "stage": stage,
        "sr": num("SR"), "ei": num("EI"), "ir": num("IR_pct", 100), "eol_rir": num("EoL_RIR_pct", 100),
        "supply_used_in_sr": raw["supply_used_in_SR"], "si_ei": num("SI_EI"), "si_sr": num("SI_SR"),
        "hhi_wgi_t_gs": num("HHI_WGI_t_GS"), "hhi_wgi_t_eu": num("HHI_WGI_t_EU"),
        "sr_gs_only": num("SR_GS_only"), "sr_eu_only": num("SR_EU_only"), "sr_gs_and_eu": num("SR_GS_and_EU"),
        "source": SOURCE_ID,
    })
    for col in ("ir", "eol_rir"):
        if ((out[col] < 0) | (out[col] > 1)).any():
            raise DataError(f"{col} outside 0-100 %", file=_T2017, column=col)
    _unique(out, ["material"], file=_T2017, what="eu_crm_2017")
    _unique(out[out["commodity"] != ""], ["commodity"], file=_T2017, what="eu_crm_2017")
    return _conform(out, "eu_crm_2017", ["material"])


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the EU CRM assessment tables.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders.

    Returns
    -------
    dict
        ``{"eu_crm_scores", "eu_crm_supply", "eu_crm_2017"}`` → DataFrames with the columns of
        ``schema.TABLES``.

    Raises
    ------
    DataError
        If a file or column is missing, or a value cannot be read.
    MappingError
        For a material label not in ``mappings/eu_materials.csv`` or an unknown country label.
    """
    return {"eu_crm_scores": _scores(raw_root), "eu_crm_supply": _supply(raw_root), "eu_crm_2017": _t2017(raw_root)}

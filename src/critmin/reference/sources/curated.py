"""Cited curated fact tables (``curated/*.csv``) with normalised key columns.

Every original column is kept with its text unchanged (blank cells become ``<NA>``), so the
row-level citations stay intact. Two original columns are renamed because their names are
taken by normalised columns:

* ``source`` → ``citation`` (the row's own citation text); the new ``source`` column is the
  critmin source id ``curated-<table>``, as in every other table;
* ``commodity`` → ``commodity_label`` (``export_controls`` calls it ``commodities``, which is kept).

Added columns:

* ``commodity`` — critmin ids, ``;``-separated element-wise (``rare_earths`` → ``rare-earths``,
  ``Ni`` → ``nickel`` …). Aggregates and non-commodity labels (``all``, ``critical minerals``,
  ``superhard materials`` …; :data:`AGGREGATE_LABELS`) are kept as-is. A label that is neither an
  id, a listed alias (:data:`COMMODITY_ALIASES`) nor a listed aggregate raises MappingError;
* ``country`` — ISO3 from ``country_iso3`` (element-wise for ``USA;JPN``); ``ROW`` and ``EUU``
  (World Bank code for the European Union, kept as a group code; not ISO) are allowed;
* ``stage_id`` — where the table has a ``stage`` column: mine|refine|metal|component via
  ``mappings/curated_stages.csv`` (exhaustive; blank = not a supply-chain stage, e.g. framework).

Numeric columns (shares, years, values, capacities, coordinates) are typed; ``verified`` stays text.

``export_controls`` = the raw register rows + critmin's own addenda (``curated/export_controls_addenda.csv``
in this package: later measures, each row citing its page and quoting it in ``scope_note``). Addenda rows
have the raw register's columns exactly, are normalised the same way and carry the source id
``critmin-addenda``; an addenda ``event_id`` that repeats a register id raises DataError naming both.
The links of suspensions to the measures they suspend (``mappings/export_control_links.csv``, see
:mod:`critmin.methods.controls`) are checked against the combined table: every id must exist.
"""

from __future__ import annotations

import csv
import io
import re
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

from critmin.constants import STAGES
from critmin.errors import DataError, MappingError
from critmin.reference.countries import GROUP_CODES, is_valid_code, to_iso3
from critmin.reference.schema import CURATED_TABLES

_STAGE_FILE = "critmin/reference/mappings/curated_stages.csv"
#: critmin's own cited additions to the export-controls register (packaged, not a raw source).
ADDENDA_FILE = "critmin/reference/curated/export_controls_addenda.csv"
ADDENDA_SOURCE = "critmin-addenda"
_ADDENDA_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


#: Curated commodity labels (casefolded) that are not spelled like a critmin id.
COMMODITY_ALIASES: dict[str, str] = {
    "rare_earths (magnets)": "rare-earths",
    "rare_earths (magnet rees)": "rare-earths",
    "rare earths (heavy, ion-adsorption clays)": "rare-earths",
    "rare earth magnets": "rare-earths",  # product of rare earths; the stage is in `stage`
    "permanent magnet scrap": "rare-earths",  # EU magnet-scrap restriction: REE content
    "graphite anode": "graphite",
    "artificial graphite anode materials": "graphite",  # synthetic graphite anode: graphite chain
    "aluminium scrap": "aluminum",
    "ni": "nickel", "cr": "chromium", "w": "tungsten", "co": "cobalt", "mo": "molybdenum",
    "mn": "manganese", "v": "vanadium",
}

#: Labels kept verbatim in ``commodity``: aggregates, classes and products that name no single
#: critmin commodity. Listed explicitly so that a new label is noticed (MappingError).
AGGREGATE_LABELS: frozenset[str] = frozenset({
    "all", "all (mines)", "all (127 precious/base metal mines)", "all (critical minerals projects)",
    "all unprocessed minerals", "all dual-use items (incl. listed rare earths)",
    "critical minerals", "critical raw materials", "35 critical raw materials", "strategic raw materials",
    "rare metals", "34 rare metals", "35 rare metals", "high geopolitical-risk metals",
    "non-ferrous base metals", "multiple (8 minerals incl. copper, nickel, silver)",
    "strategic minerals (20, iea set incl. gallium, graphite, rees)",
    "superhard materials", "lithium-ion batteries", "lithium batteries", "cathode materials",
    "synthetic diamond (critical mineral input)",
})

#: Numeric columns per table (everything else stays text).
_NUMERIC: dict[str, dict[str, str]] = {
    "processing_shares": {"year": "Int64", "share": "float64"},
    "export_controls": {},
    "projects": {"capacity_tpa": "float64", "capex_usd_m": "float64", "expected_start_year": "Int64",
                 "lat": "float64", "lon": "float64"},
    "stockpile_programs": {"value": "float64", "year": "Int64"},
    "demand_parameters": {"value": "float64"},
}

#: Row order: the natural key of each table.
_KEYS: dict[str, list[str]] = {
    "processing_shares": ["commodity_label", "stage", "year", "country_iso3", "basis"],
    "export_controls": ["event_id"],
    "projects": ["project_id"],
    "stockpile_programs": ["country_iso3", "program", "rule", "commodity_label", "year"],
    "demand_parameters": ["commodity_label", "parameter", "unit", "citation"],
}

SOURCES: list[dict] = [
    {
        "id": f"curated-{table}",
        "publisher": "critmin project (curated; each row cites its own source)",
        "title": f"Curated critical-minerals fact table: {table}",
        "licence": "Facts with row-level citations (see the citation and source_url columns); "
                   "IEA-derived rows CC BY 4.0, USGS-derived rows public domain",
        "url": "row-level: see the source_url column of each row",
        "version": "2026 compilation",
        "files": [f"curated/{table}.csv"],
        "notes": "Original columns kept; 'source' renamed 'citation', 'commodity' renamed 'commodity_label'; "
                 "added commodity (critmin ids, aggregates kept as-is), country (ISO3/ROW/EUU), "
                 "stage_id (mappings/curated_stages.csv) where a stage column exists.",
    }
    for table in CURATED_TABLES
] + [
    {
        "id": ADDENDA_SOURCE,
        "publisher": "critmin project",
        "title": "critmin additions to the export-controls register (export_controls table)",
        "licence": "critmin project (Apache-2.0); facts cite their own sources",
        "url": "row-level: see the source_url column of each row",
        "version": "2026",
        "files": [],
        "notes": "Packaged with critmin (reference/curated/export_controls_addenda.csv), not a raw file: "
                 "measures found after the register was compiled; each row quotes its page in scope_note "
                 "('quote: \"...\"') and gives the page in source_url. Same columns and normalisation as "
                 "curated/export_controls.csv.",
    },
]


@cache
def stage_mapping() -> dict[str, str]:
    """Curated stage label (casefolded) → critmin stage id (``""`` = not a supply-chain stage).

    Raises
    ------
    MappingError
        If a row names a stage outside :data:`critmin.constants.STAGES`, a blank stage lacks a
        reason, or a label is listed twice.
    """
    text = resources.files("critmin.reference").joinpath("mappings/curated_stages.csv").read_text("utf-8")
    out: dict[str, str] = {}
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        label, stage, note = (row[k].strip() for k in ("label", "stage_id", "note"))
        key = label.casefold()
        if key in out:
            raise MappingError(f"label {label!r} listed twice", file=_STAGE_FILE, row=line)
        if stage and stage not in STAGES:
            raise MappingError(f"unknown stage {stage!r} for {label!r}", file=_STAGE_FILE, row=line,
                               column="stage_id")
        if not stage and not note:
            raise MappingError(f"label {label!r} without stage needs a reason in 'note'", file=_STAGE_FILE,
                               row=line)
        out[key] = stage
    return out


def map_stages(text: str | None, *, source: str = "") -> str | None:
    """Map a ``;``-separated stage text to critmin stage ids (upstream to downstream order).

    Returns ``None`` when the text is blank or names no supply-chain stage.

    Raises
    ------
    MappingError
        If an element is not listed in ``mappings/curated_stages.csv``.
    """
    if text is None or pd.isna(text) or not str(text).strip():
        return None
    mapping = stage_mapping()
    found = set()
    for part in str(text).split(";"):
        key = part.strip().casefold()
        if key not in mapping:
            raise MappingError(f"unmapped stage label {part.strip()!r}" + (f" in {source}" if source else "")
                               + f"; add it to {_STAGE_FILE}")
        if mapping[key]:
            found.add(mapping[key])
    return ";".join(s for s in STAGES if s in found) or None


def map_commodity(text: str | None, *, source: str = "") -> str | None:
    """Map a curated commodity text (possibly ``;``-separated) to critmin ids element-wise.

    Aggregates listed in :data:`AGGREGATE_LABELS` are kept verbatim; element order is kept and
    duplicates are dropped.

    Raises
    ------
    MappingError
        If an element is neither a critmin id (after ``_``/space → ``-``), an alias nor a listed aggregate.
    """
    if text is None or pd.isna(text) or not str(text).strip():
        return None
    ids = _commodity_ids()
    out: list[str] = []
    for part in str(text).split(";"):
        label = part.strip()
        key = label.casefold()
        guess = key.replace("_", "-").replace(" ", "-")
        if guess in ids:
            value = guess
        elif key in COMMODITY_ALIASES:
            value = COMMODITY_ALIASES[key]
        elif key in AGGREGATE_LABELS:
            value = label
        else:
            raise MappingError(f"unmapped curated commodity label {label!r}" + (f" in {source}" if source else "")
                               + "; add it to curated.COMMODITY_ALIASES or AGGREGATE_LABELS")
        if value not in out:
            out.append(value)
    return ";".join(out)


def map_country(text: str | None, *, source: str = "") -> str | None:
    """Validate/normalise a curated ``country_iso3`` cell (``;``-separated allowed) to ISO3 codes."""
    if text is None or pd.isna(text) or not str(text).strip():
        return None
    codes = []
    for part in str(text).split(";"):
        code = part.strip()
        codes.append(code if code in GROUP_CODES or is_valid_code(code) else to_iso3(code, source=source))
    return ";".join(codes)


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the five curated tables.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders.

    Returns
    -------
    dict
        One DataFrame per name in :data:`critmin.reference.schema.CURATED_TABLES`: original columns
        (renamed as described in the module docstring), then ``commodity``, ``stage_id`` (if the
        table has ``stage``), ``country`` (if it has ``country_iso3``) and ``source``. ``export_controls``
        also holds the packaged addenda rows (source ``critmin-addenda``).

    Raises
    ------
    DataError
        If a file is missing, a numeric column holds text, or an expected column is absent; an addenda
        row that repeats a register id, lacks its citation or has the wrong columns.
    MappingError
        For an unknown commodity, stage or country label, or a suspension link naming an unknown event.
    """
    tables = {table: _table(Path(raw_root), table) for table in CURATED_TABLES}
    tables["export_controls"] = _with_addenda(Path(raw_root), _corrected(tables["export_controls"]))
    return tables


CORRECTIONS_FILE = "critmin/reference/corrections/export_controls.csv"


def _corrected(register: pd.DataFrame) -> pd.DataFrame:
    """Declared corrections of the register (``corrections/export_controls.csv``): each names the event, the
    column, the value the register holds (``expected``; blank = empty), the value used, the reason and a cited
    quote. A correction whose ``expected`` no longer matches (the register was fixed) stops the build."""
    text = resources.files("critmin.reference").joinpath("corrections/export_controls.csv").read_text("utf-8")
    fixes = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    out = register.copy()
    for i, f in enumerate(fixes.to_dict("records")):
        line = i + 2
        rows = out.index[out["event_id"].astype(str) == f["event_id"]]
        if len(rows) != 1:
            raise DataError(f"event {f['event_id']!r} is not in the register", file=CORRECTIONS_FILE, row=line,
                            column="event_id")
        if f["column"] not in out.columns:
            raise DataError(f"unknown column {f['column']!r}", file=CORRECTIONS_FILE, row=line, column="column")
        if not (f["reason"] and f["source_url"] and f["quote"]):
            raise DataError("a correction needs a reason, a source_url and a quote", file=CORRECTIONS_FILE, row=line)
        cur = out.at[rows[0], f["column"]]
        cur = "" if pd.isna(cur) else str(cur)
        if cur != f["expected"]:
            raise DataError(f"{f['event_id']}.{f['column']} is {cur!r} in the register, expected {f['expected']!r}: "
                            "the source changed; review and remove this correction", file=CORRECTIONS_FILE, row=line)
        out.at[rows[0], f["column"]] = f["value"]
    return out


def _with_addenda(raw_root: Path, register: pd.DataFrame) -> pd.DataFrame:
    """Register rows + addenda rows (source ``critmin-addenda``), checked, then the links validated."""
    from critmin.reference.control_links import load_links, validate_links

    text = resources.files("critmin.reference").joinpath("curated/export_controls_addenda.csv").read_text("utf-8")
    addenda = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    header = pd.read_csv(raw_root / "curated" / "export_controls.csv", dtype=str, nrows=0, encoding="utf-8").columns
    if list(addenda.columns) != list(header):
        raise DataError(f"columns {list(addenda.columns)} differ from the register's {list(header)}",
                        file=ADDENDA_FILE, row=1)
    _check_addenda(addenda)
    raw_ids = pd.read_csv(raw_root / "curated" / "export_controls.csv", dtype=str, keep_default_na=False,
                          usecols=["event_id"], encoding="utf-8")["event_id"].tolist()
    for i, eid in enumerate(addenda["event_id"]):
        if eid in raw_ids:
            raise DataError(f"addenda event_id {eid!r} duplicates the register's event_id {eid!r} "
                            f"(curated/export_controls.csv line {raw_ids.index(eid) + 2})",
                            file=ADDENDA_FILE, row=i + 2, column="event_id")
    extra = _normalise(addenda, "export_controls", ADDENDA_FILE, ADDENDA_SOURCE)
    combined = pd.concat([register, extra], ignore_index=True) if len(extra) else register
    combined = combined.sort_values(_KEYS["export_controls"], kind="mergesort").reset_index(drop=True)
    validate_links(load_links(), combined)
    return combined


def _check_addenda(addenda: pd.DataFrame) -> None:
    """critmin's own rows must be cited: URL, quote, verified yes|no, ISO dates, unique ids."""
    seen: dict[str, int] = {}
    for i, row in enumerate(addenda.to_dict("records")):
        line = i + 2

        def bad(column: str, message: str, _line: int = line) -> DataError:
            return DataError(message, file=ADDENDA_FILE, row=_line, column=column)

        eid = row["event_id"].strip()
        if not eid:
            raise bad("event_id", "blank event_id")
        if eid in seen:
            raise bad("event_id", f"event_id {eid!r} repeats line {seen[eid]}")
        seen[eid] = line
        if not row["source_url"].strip() or not row["source"].strip():
            raise bad("source_url", f"{eid}: every addenda row cites its page (source and source_url)")
        if not row["scope_note"].startswith('quote: "'):
            raise bad("scope_note", f"{eid}: scope_note must start with the page's words: quote: \"...\"")
        if row["verified"] not in ("yes", "no"):
            raise bad("verified", f"{eid}: verified must be 'yes' or 'no'")
        for col in ("announced", "effective", "ended"):
            if row[col] and not _ADDENDA_DATE.fullmatch(row[col]):
                raise bad(col, f"{eid}: {row[col]!r} is not YYYY, YYYY-MM or YYYY-MM-DD")


def _table(raw_root: Path, table: str) -> pd.DataFrame:
    rel = f"curated/{table}.csv"
    path = raw_root / rel
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    # Everything as text first: identifiers like years or '0.5' must not be reinterpreted silently.
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    frame = _normalise(raw, table, rel, f"curated-{table}")
    return frame.sort_values(_KEYS[table], kind="mergesort", na_position="first").reset_index(drop=True)


def _normalise(raw: pd.DataFrame, table: str, rel: str, source_id: str) -> pd.DataFrame:
    """Rename, type and add the normalised columns (module docstring) to a table read as text."""
    if "source" not in raw.columns:
        raise DataError("missing column 'source' (the row citation)", file=rel)
    frame = raw.rename(columns={"source": "citation", "commodity": "commodity_label"})
    # Blank = unknown/not applicable (curated SOURCE.md): store as missing, text otherwise unchanged.
    frame = frame.replace("", pd.NA).astype("string")
    for col, dtype in _NUMERIC[table].items():
        if col not in frame.columns:
            raise DataError(f"missing column {col!r}", file=rel)
        number = pd.to_numeric(frame[col], errors="coerce")
        bad = number.isna() & frame[col].notna()
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise DataError(f"non-numeric value {frame[col][bad].iloc[0]!r}", file=rel, row=line, column=col)
        frame[col] = number.astype(dtype)

    label_col = "commodities" if "commodities" in frame.columns else "commodity_label"
    frame["commodity"] = pd.array([map_commodity(v, source=rel) for v in frame[label_col]], dtype="string")
    if "stage" in frame.columns:
        frame["stage_id"] = pd.array([map_stages(v, source=rel) for v in frame["stage"]], dtype="string")
    if "country_iso3" in frame.columns:
        frame["country"] = pd.array([map_country(v, source=rel) for v in frame["country_iso3"]], dtype="string")
    frame["source"] = pd.array([source_id] * len(frame), dtype="string")
    return frame


@cache
def _commodity_ids() -> frozenset[str]:
    text = resources.files("critmin.reference").joinpath("mappings/commodities.csv").read_text("utf-8")
    return frozenset(row["id"] for row in csv.DictReader(text.splitlines()))

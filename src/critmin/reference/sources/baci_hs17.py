"""CEPII BACI bilateral trade (HS 2017, release V202601), 30 critical-material HS6 codes, 2024 and 2022.

Reads ``baci-hs17-2024-critical/`` (a Parquet file of 2024 flows with quantities, a CSV of 2022 values
without quantities, BACI's country table) and returns rows of the long ``trade`` table
(:data:`critmin.reference.schema.TABLES`) with ``nomenclature = "HS17"``. Its point is the processed forms
the HS92 subset (:mod:`critmin.reference.sources.baci`) lacks: magnets, unwrought magnesium, tungsten,
antimony, titanium, nickel, copper cathodes, silicon, the gallium/germanium group code 811292.

Every HS17 code present must be listed in ``mappings/hs17.csv`` (commodity id + stage, or ``skip`` with a
reason); an unlisted code raises :class:`~critmin.errors.MappingError`.

Judgements (also in ``SOURCES[0]["notes"]``):

* a code whose ``hs92_equivalent`` is filled in is **not emitted**: the HS92 subset already carries that
  product for every year 1995-2024, and two versions of one flow (HS92 and HS17 conversions of the same
  Comtrade reports) must never be summed. The equivalent must be a code of ``hs6.csv`` with the same
  commodity and stage, and an HS17 code that ``hs6.csv`` also lists must name one — so an emitted HS17
  product never duplicates an HS92 one;
* 2024: ``value_kusd`` (thousands of current USD) → ``value_usd`` ×1000, rounded to whole USD as for HS92;
  ``qty_t`` metric tons → ``quantity`` (gross weight), NULL stays NaN;
* 2022: ``value`` is in USD (not thousands), rounded to whole USD (the file carries float noise such as
  ``65034.00000000001``); there is no quantity, so ``quantity`` is NaN for every 2022 row;
* countries: the files give ISO3 codes; each must be in BACI's V202601 country table and is then mapped by
  :func:`~critmin.reference.countries.to_iso3` (``S19`` "Other Asia, nes" → TWN via the aliases);
* the packager's ``material`` label is not used: the mapping decides commodity and stage.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.errors import DataError, MappingError
from critmin.reference.countries import to_iso3
from critmin.reference.sources._codes import SKIP, lookup, read_code_mapping
from critmin.reference.sources.baci import _finish, hs6_mapping

SOURCE_ID = "baci-hs17-2024"
#: The ``nomenclature`` of every row: HS6 codes of this source are HS 2017 codes.
NOMENCLATURE = "HS17"
_DIR = "baci-hs17-2024-critical"
_PARQUET = f"{_DIR}/trade_baci_hs17_2024.parquet"
_CSV_2022 = f"{_DIR}/baci_hs17_2022_value_only.csv"
_COUNTRIES = f"{_DIR}/country_codes_V202601.csv"
_HS17_FILE = "critmin/reference/mappings/hs17.csv"
_MAPPING_COLUMNS = ["hs6", "commodity", "stage", "basis", "hs92_equivalent", "note"]

SOURCES: list[dict] = [
    {
        "id": SOURCE_ID,
        "publisher": "CEPII (BACI); extracted by the Critical Materials Atlas project",
        "title": "BACI: International Trade Database at the Product-Level, HS17, release V202601, "
                 "30 critical-material HS6 codes (2024 values and quantities, 2022 values)",
        "licence": "Etalab Open Licence 2.0 (attribute CEPII BACI V202601 and the data year)",
        "url": "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele_item.asp?id=37",
        "version": "BACI HS17 V202601; files from GitHub Varcolacus/critical-materials-atlas "
                   "commit 17b328d2239864e993895582a29fdd3b5ceb479b",
        "files": [_PARQUET, _CSV_2022, _COUNTRIES],
        "notes": "Mapped by mappings/hs17.csv. Codes the HS92 subset already carries (hs92_equivalent filled: "
                 "250490, 251110, 252800->252890, 252922, 260200, 260600, 280480, 282200, 283691, 711011, 711021, "
                 "720292, 720293, 810320->810310, 811212->811211) are not emitted, so no flow is counted twice; "
                 "251010 (unground phosphate rock) is emitted because the HS92 subset only holds 251020 (ground). "
                 "Skipped: 252910 feldspar, 270112 coking coal, 280429 helium, 280470 phosphorus (no critmin id). "
                 "811292 (Ga, Ge, Hf, In, Nb, Re, Tl) is the commodity gallium-germanium-group: partner shares "
                 "only, never per-element tonnage. 850511 metal permanent magnets -> rare-earths, component "
                 "(mostly NdFeB; includes SmCo and AlNiCo). Unwrought metals, ferro-alloys and elements are "
                 "metal stage (750210 nickel and 740311 copper cathodes too, which MCS calls refinery output). "
                 "2024: value_usd = value_kusd x 1000 rounded to whole USD, quantity = qty_t (gross weight). "
                 "2022: value in USD rounded to whole USD, no quantity (NaN). ISO3 codes checked against BACI's "
                 "V202601 country table; S19 'Other Asia, nes' -> TWN.",
    },
]


@cache
def hs17_mapping() -> pd.DataFrame:
    """The HS17 → commodity/stage mapping (``mappings/hs17.csv``), validated.

    Returns
    -------
    pandas.DataFrame
        Columns ``hs6, commodity, stage, basis, hs92_equivalent, note`` (strings), indexed by ``hs6``.

    Raises
    ------
    MappingError
        If a row names an unknown commodity id or stage, lacks a skip reason or repeats a code; if an
        ``hs92_equivalent`` is not a code of ``hs6.csv`` with the same commodity and stage; or if a code
        that ``hs6.csv`` also lists has no ``hs92_equivalent`` (its rows would double-count HS92 flows).
    """
    m = read_code_mapping("hs17.csv", key="hs6", digits=6, what="HS17 code", columns=_MAPPING_COLUMNS,
                          note_always=False)
    hs92 = hs6_mapping()
    for code, eq, commodity, stage in m[["hs6", "hs92_equivalent", "commodity", "stage"]].itertuples(index=False):
        if not eq:
            if code in hs92.index:
                raise MappingError(f"HS17 {code} is also listed in hs6.csv (HS92): give its hs92_equivalent, "
                                   "or the same product would be counted twice", file=_HS17_FILE,
                                   column="hs92_equivalent")
            continue
        if eq not in hs92.index:
            raise MappingError(f"hs92_equivalent {eq!r} of HS17 {code} is not listed in hs6.csv", file=_HS17_FILE,
                               column="hs92_equivalent")
        if (hs92.at[eq, "commodity"], hs92.at[eq, "stage"]) != (commodity, stage):
            raise MappingError(f"HS17 {code} ({commodity}, {stage}) and its hs92_equivalent {eq} "
                               f"({hs92.at[eq, 'commodity']}, {hs92.at[eq, 'stage']}) disagree", file=_HS17_FILE)
    return m


def map_hs17(codes: pd.Series | list[str]) -> pd.DataFrame:
    """Map HS 2017 six-digit codes to critmin commodity and stage.

    Parameters
    ----------
    codes : sequence of str
        Six-digit HS 2017 codes as text.

    Returns
    -------
    pandas.DataFrame
        One row per input code (same order), columns ``hs6, commodity, stage``;
        ``commodity == "skip"`` marks codes critmin does not cover.

    Raises
    ------
    MappingError
        If a code is not listed in ``mappings/hs17.csv`` (the file must be exhaustive).
    """
    return lookup(hs17_mapping(), codes, key="hs6", what="HS17 code(s)", file=_HS17_FILE)


def _read_2024(path: Path) -> pd.DataFrame:
    """The 2024 Parquet file as ``year, exporter, importer, hs6, quantity, value_usd``."""
    if not path.is_file():
        raise DataError("BACI HS17 2024 file not found", file=str(path))
    raw = pd.read_parquet(path, columns=["year", "exporter", "importer", "hs6", "value_kusd", "qty_t"])
    if set(raw["year"].unique()) != {2024}:
        raise DataError(f"expected only year 2024, found {sorted(raw['year'].unique())}", file=_PARQUET,
                        column="year")
    return pd.DataFrame({
        "year": raw["year"].astype("int64"), "exporter": raw["exporter"].astype(str),
        "importer": raw["importer"].astype(str), "hs6": raw["hs6"].astype(str),
        "quantity": raw["qty_t"].astype("float64"),
        # kUSD with three decimals = whole dollars; round away the float noise of x1000.
        "value_usd": np.round(raw["value_kusd"].to_numpy(dtype="float64") * 1000.0),
    })


def _read_2022(path: Path) -> pd.DataFrame:
    """The 2022 value-only CSV (``i, j, cmd, value`` in USD) in the same layout, quantity NaN."""
    if not path.is_file():
        raise DataError("BACI HS17 2022 file not found", file=str(path))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = sorted({"i", "j", "cmd", "value"} - set(raw.columns))
    if missing:
        raise DataError(f"missing column(s) {missing}", file=_CSV_2022, row=1)
    value = pd.to_numeric(raw["value"], errors="coerce")
    bad = value.isna() | (value < 0)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"value {raw['value'].iloc[first]!r} is not a non-negative number", file=_CSV_2022,
                        row=first + 2, column="value")
    return pd.DataFrame({
        "year": np.int64(2022), "exporter": raw["i"], "importer": raw["j"], "hs6": raw["cmd"],
        "quantity": np.nan,
        # USD (not thousands) with float noise (65034.00000000001): whole dollars.
        "value_usd": np.round(value.to_numpy(dtype="float64")),
    })


def _country_lookup(raw_root: Path, used: set[str]) -> dict[str, str]:
    """ISO3 code of the files → critmin ISO3, for the codes used; each must be in BACI's country table."""
    path = raw_root / _COUNTRIES
    if not path.is_file():
        raise DataError("BACI V202601 country table not found", file=str(path))
    table = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("country_iso3")
    unknown = sorted(used - set(table.index))
    if unknown:
        raise MappingError(f"country code(s) {unknown} not in BACI's country table", file=_COUNTRIES)
    return {code: to_iso3(code, source=f"BACI HS17 country table ({table.loc[code, 'country_name']})")
            for code in sorted(used)}


def parse(raw_root: Path) -> dict[str, pd.DataFrame]:
    """Read the BACI HS17 files into rows of the ``trade`` table.

    Parameters
    ----------
    raw_root : pathlib.Path
        Folder holding the raw source folders (the ``--raw`` of ``critmin data build``).

    Returns
    -------
    dict
        ``{"trade": DataFrame}`` with exactly the columns of ``schema.TABLES["trade"]``, only codes mapped to
        a commodity and absent from the HS92 subset, sorted by ``commodity, stage, hs6, exporter, importer,
        year``.

    Raises
    ------
    DataError
        If a file is missing or malformed, or two rows share hs6, exporter, importer and year.
    MappingError
        For an HS17 code not in ``mappings/hs17.csv`` or an unmapped country code.
    """
    raw_root = Path(raw_root)
    trade = pd.concat([_read_2024(raw_root / _PARQUET), _read_2022(raw_root / _CSV_2022)], ignore_index=True)

    map_hs17(sorted(trade["hs6"].unique()))  # raises for a code the mapping does not list
    m = hs17_mapping()
    emitted = m.loc[(m["commodity"] != SKIP) & (m["hs92_equivalent"] == ""), ["commodity", "stage"]]
    trade = trade.join(emitted, on="hs6", how="inner")

    iso = _country_lookup(raw_root, set(trade["exporter"]) | set(trade["importer"]))
    out = pd.DataFrame({
        "commodity": trade["commodity"],
        "stage": trade["stage"],
        "hs6": trade["hs6"],
        "nomenclature": NOMENCLATURE,
        "exporter": trade["exporter"].map(iso),
        "importer": trade["importer"].map(iso),
        "year": trade["year"],
        "quantity": trade["quantity"],
        "unit": "t",
        "value_usd": trade["value_usd"],
        "source": SOURCE_ID,
    })
    keys = ["commodity", "stage", "hs6", "exporter", "importer", "year"]
    if out.duplicated(keys[2:]).any():
        # two codes mapped to one ISO3 (or a repeated row) would double-count a flow; fail loudly instead
        raise DataError("duplicate hs6-exporter-importer-year after ISO3 mapping", file=_DIR)
    return {"trade": _finish(out, "trade", keys)}

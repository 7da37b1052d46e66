"""Tests of the USGS Mineral Commodity Summaries parser (critmin.reference.sources.usgs_mcs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import RAW, need_raw

from critmin.errors import DataError, MappingError
from critmin.reference.schema import TABLES
from critmin.reference.sources import usgs_mcs


@pytest.fixture(scope="module", autouse=True)
def _raw_mcs() -> None:
    """Every test here reads the raw USGS files: skipped without them, failed when CI requires them."""
    need_raw("usgs-mcs-2026")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return usgs_mcs.parse(RAW)


def _one(df: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        mask &= df[col] == val
    hit = df[mask]
    assert len(hit) == 1, f"{where}: {len(hit)} rows"
    return hit.iloc[0]


def test_schema_and_order(tables):
    assert set(tables) == {"production", "reserves", "us_salient", "import_sources", "critical_lists"}
    for name, df in tables.items():
        assert list(df.columns) == list(TABLES[name]), name
        for col, (dtype, _) in TABLES[name].items():
            assert str(df[col].dtype) == str(pd.Series([], dtype=dtype).dtype), (name, col)
        assert df.index.equals(pd.RangeIndex(len(df)))
        assert len(df) > 0


def test_deterministic():
    # How long parsing takes is measured by benchmarks/usgs_mcs_parse.py, not asserted here.
    a = usgs_mcs.parse(RAW)
    b = usgs_mcs.parse(RAW)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_pseudo_countries(tables):
    for name in ("production", "reserves"):
        df = tables[name]
        assert set(df.loc[df["country"] == "ROW", "row_type"]) <= {"residual"}
        assert set(df.loc[df["country"] == "WLD", "row_type"]) <= {"total"}
        assert set(df.loc[df["row_type"] == "total", "country"]) == {"WLD"}
        assert df["country"].str.len().eq(3).all()


def test_china_share_of_2025_rare_earth_mine_production(tables):
    # MCS 2026 CSV, RARE EARTHS / World Mine Production and Reserves / Mine production, 2025:
    # China "270,000" (line 6094: ...,China,Production,Mine production,metric tons,2025,"270,000",...)
    # and World total "390,000" (Mine production: rounded) - the figures SOURCE.md cites.
    p = tables["production"]
    ree = p[(p["commodity"] == "rare-earths") & (p["stage"] == "mine") & (p["year"] == 2025)]
    assert set(ree["source"]) == {"usgs-mcs-2026"}
    assert _one(ree, country="CHN")["value"] == 270_000
    assert _one(ree, country="WLD")["value"] == 390_000
    parts = ree[ree["row_type"] != "total"]["value"].sum()  # countries + ROW (550 t)
    assert parts == pytest.approx(389_310)
    assert 270_000 / parts == pytest.approx(0.6935, abs=5e-4)
    assert ree["estimated"].all()
    assert ree["unit"].eq("t").all() and ree["basis"].eq("REO equivalent").all()


def test_drc_cobalt_2025(tables):
    p = tables["production"]
    co = p[(p["commodity"] == "cobalt") & (p["stage"] == "mine") & (p["year"] == 2025)]
    assert _one(co, country="COD")["value"] == 230_000
    assert _one(co, country="WLD")["value"] == 310_000


def test_latest_revision_wins(tables):
    p = tables["production"]
    # 2022 is in MCS 2023 (estimate) and MCS 2024 (final): only the MCS 2024 rows remain.
    ree22 = p[(p["commodity"] == "rare-earths") & (p["year"] == 2022)]
    assert set(ree22["source"]) == {"usgs-mcs-2024"}
    assert _one(ree22, country="CHN")["value"] == 210_000
    assert not p.duplicated(["commodity", "stage", "basis", "country", "year"]).any()


def test_units_converted_to_tonnes(tables):
    p = tables["production"]
    assert p["unit"].eq("t").all()
    # Copper is published in thousand metric tons: Chile mine 2024 "5,310"-ish kt -> millions of t.
    cl = _one(p, commodity="copper", stage="mine", country="CHL", year=2024)
    assert cl["value"] > 1_000_000
    # Gallium is published in kilograms: world primary production is hundreds of tonnes.
    ga = p[(p["commodity"] == "gallium") & (p["country"] == "WLD") & (p["year"] == 2025)]
    assert 100 < ga["value"].iloc[0] < 10_000


def test_brazil_rare_earth_reserves_corrected(tables):
    r = tables["reserves"]
    ree = r[(r["commodity"] == "rare-earths") & (r["source"] == "usgs-mcs-2026")]
    assert _one(ree, country="BRA")["value"] == 11_000_000
    world = _one(ree, country="WLD")
    assert world["value"] == 75_000_000 and world["qualifier"] == ">"
    assert world["year"] == 2025


def test_yttrium_row_fixed(tables):
    y = _one(tables["production"], commodity="yttrium")
    assert y["country"] == "WLD" and y["row_type"] == "total" and y["year"] == 2025
    assert y["value"] == 12_500  # midpoint of the published range 10,000 - 15,000
    assert "10,000 - 15,000" in y["series"]
    raw = usgs_mcs.apply_corrections(usgs_mcs._read_mcs2026(RAW), usgs_mcs.load_corrections(), "raw:usgs-mcs-2026")
    row = raw[(raw["MCS chapter"] == "YTTRIUM") & (raw["Country"] == "World total")].iloc[0]
    assert (row["Notes"], row["Is critical mineral 2025"]) == ("", "Yes")


def test_shifted_row_without_fix_fails(monkeypatch):
    records = [r for r in usgs_mcs.load_corrections() if r["action"] != "fix_shift"]
    monkeypatch.setattr(usgs_mcs, "load_corrections", lambda: records)
    with pytest.raises(DataError, match="Is critical mineral 2025"):
        usgs_mcs.parse(RAW)


def test_stale_correction_fails_loudly(tables):
    res = tables["reserves"]
    rec = {"table": "reserves", "source": "usgs-mcs-2026", "commodity": "rare-earths", "country": "BRA",
           "year": 2025, "action": "override", "value": "1", "expect_source_value": "21,000,000"}
    # The parsed table already holds the corrected 11,000,000: as if upstream had fixed it.
    with pytest.raises(DataError, match="upstream fixed"):
        usgs_mcs.apply_corrections(res, [rec], "reserves")
    with pytest.raises(DataError, match="matches 0 rows"):
        usgs_mcs.apply_corrections(res, [{**rec, "country": "FRA"}], "reserves")


def test_net_import_reliance_2025(tables):
    s = tables["us_salient"]
    nir = s[(s["statistic"] == "net_import_reliance") & (s["year"] == 2025)]
    ree = _one(nir, commodity="rare-earths",
               detail="Net import reliance as a percentage of apparent consumption: Compounds and metals")
    assert (ree["value"], ree["code"], ree["unit"]) == (67, "", "percent")
    assert _one(nir, commodity="graphite")["value"] == 100
    conc = _one(nir, commodity="rare-earths",
                detail="Net import reliance as a percentage of apparent consumption: Mineral concentrates")
    assert (conc["value"], conc["value_low"], conc["value_high"], conc["code"]) == (0, 0, 0, "E")
    over = s[s["code"] == ">95"].iloc[0]
    assert (over["value_low"], over["value_high"], over["value"]) == (95, 100, 97.5)
    withheld = s[s["code"] == "W"]
    assert len(withheld) and withheld["value"].isna().all()


def test_import_sources(tables):
    imp = tables["import_sources"]
    ree = imp[(imp["commodity"] == "rare-earths") & (imp["detail"] == "Rare-earth compounds and metals")]
    assert _one(ree, partner="CHN")["share"] == pytest.approx(0.71)
    assert ree["share"].sum() == pytest.approx(1.0)
    assert imp["share"].between(0, 1).all() and set(imp["period"]) == {"2021-24"}


#: USGS, "Final 2025 List of Critical Minerals", Federal Register, 2025-11-07: 60 minerals (critmin ids where
#: they exist; metallurgical coal has none).
USGS_2025_LIST = {
    "aluminum", "antimony", "arsenic", "barite", "beryllium", "bismuth", "boron", "cerium", "cesium", "chromium",
    "cobalt", "copper", "dysprosium", "erbium", "europium", "fluorspar", "gadolinium", "gallium", "germanium",
    "graphite", "hafnium", "holmium", "indium", "iridium", "lanthanum", "lead", "lithium", "lutetium", "magnesium",
    "manganese", "metallurgical-coal", "neodymium", "nickel", "niobium", "palladium", "phosphate", "platinum",
    "potash", "praseodymium", "rhenium", "rhodium", "rubidium", "ruthenium", "samarium", "scandium", "silicon",
    "silver", "tantalum", "tellurium", "terbium", "thulium", "tin", "titanium", "tungsten", "uranium", "vanadium",
    "ytterbium", "yttrium", "zinc", "zirconium",
}


def test_critical_list_2025(tables):
    cl = tables["critical_lists"]
    ids = set(cl["commodity"])
    assert {"gallium", "germanium", "boron", "iridium", "silicon"} <= ids
    assert not {"molybdenum", "gold"} & ids
    assert set(cl["list"]) == {"USGS 2025 critical minerals"} and set(cl["source"]) == {"usgs-mcs-2026"}
    assert not cl["commodity"].duplicated().any()
    assert len(USGS_2025_LIST) == 60
    # Every listed mineral the MCS 2026 data release covers is there; these three have no MCS chapter ...
    assert USGS_2025_LIST - ids == {"thulium", "uranium", "metallurgical-coal"}
    # ... and the MCS also flags three aggregates critmin keeps as ids of their own.
    assert ids - USGS_2025_LIST == {"bauxite", "platinum-group-metals", "rare-earths"}
    assert _one(cl, commodity="aluminum")["label"] == "Alumina;Aluminum"
    assert _one(cl, commodity="rare-earths")["label"] == "Rare Earths;Rare Earths (Heavy)"
    assert _one(cl, commodity="zirconium")["label"] == "Zirconium;Zirconium And Hafnium"


def test_critical_flags_are_checked():
    col = "Is critical mineral 2025"
    raw = pd.DataFrame({"Commodity": ["Alumina", "Aluminum", "Aluminum", "Gold", "TiO2 pigment", "Wollastonite"],
                        col: ["Yes", "Yes", "", "No", "Yes", ""]})
    got = usgs_mcs._critical_lists(raw)
    assert list(got["commodity"]) == ["aluminum", "titanium"]
    assert list(got["label"]) == ["Alumina;Aluminum", "TiO2 pigment"]
    with pytest.raises(MappingError, match="Osmium"):  # flagged critical but mapped to no critmin id
        usgs_mcs._critical_lists(pd.DataFrame({"Commodity": ["Osmium"], col: ["Yes"]}))
    with pytest.raises(MappingError, match="Unobtainium"):
        usgs_mcs._critical_lists(pd.DataFrame({"Commodity": ["Unobtainium"], col: ["Yes"]}))
    with pytest.raises(DataError, match="both Yes and No"):
        usgs_mcs._critical_lists(pd.DataFrame({"Commodity": ["Gallium", "Gallium"], col: ["Yes", "No"]}))
    with pytest.raises(DataError, match="Yttrium"):
        usgs_mcs._critical_lists(pd.DataFrame({"Commodity": ["Gallium"], col: ["Yttrium"]}))


def _with_extra_row(monkeypatch, **changes) -> None:
    real = usgs_mcs._read_mcs2026

    def fake(raw_root: Path) -> pd.DataFrame:
        df = real(raw_root)
        row = df[(df["MCS chapter"] == "RARE EARTHS") & (df["Country"] == "China")
                 & (df["Statistics"] == "Production")].iloc[[0]].copy()
        for col, val in changes.items():
            row[col] = val
        return pd.concat([df, row], ignore_index=True)

    monkeypatch.setattr(usgs_mcs, "_read_mcs2026", fake)


def test_unmapped_country_raises(monkeypatch):
    _with_extra_row(monkeypatch, Country="Atlantis")
    with pytest.raises(MappingError, match="Atlantis"):
        usgs_mcs.parse(RAW)


def test_unmapped_series_raises_naming_file_and_label(monkeypatch):
    _with_extra_row(monkeypatch, Statistics_detail="Mine production: moon rock")
    with pytest.raises(MappingError, match="moon rock") as err:
        usgs_mcs.parse(RAW)
    assert "usgs_mcs2026_commodities_data.csv" in str(err.value)


def test_series_mapping_is_exhaustive_and_checked(monkeypatch):
    # Every series present in the raw files is in mcs_series.csv (parse() would raise otherwise) ...
    usgs_mcs.parse(RAW)
    # ... and deleting any one mapping row makes parsing fail.
    full = usgs_mcs._series_map()
    key = next(k for k, v in full.items() if k[0] == "usgs-mcs-2023" and v["commodity"] == "lithium")
    monkeypatch.setattr(usgs_mcs, "_series_map", lambda: {k: v for k, v in full.items() if k != key})
    with pytest.raises(MappingError, match=r"mcs2023-lithi_world\.csv"):
        usgs_mcs.parse(RAW)


def test_every_skip_has_a_reason():
    for key, row in usgs_mcs._series_map().items():
        assert row["table"] != "skip" or row["reason"], key


def test_cross_check(tables):
    p = tables["production"]
    ok = usgs_mcs.cross_check(p)
    assert isinstance(ok, pd.DataFrame)
    assert list(ok.columns) == ["commodity", "stage", "year", "basis", "source", "country_sum", "world_total",
                                "rel_diff"]
    assert ok.empty, ok
    broken = p.copy()
    mask = (broken["commodity"] == "rare-earths") & (broken["country"] == "WLD") & (broken["year"] == 2025)
    broken.loc[mask, "value"] = 500_000
    flagged = usgs_mcs.cross_check(broken)
    assert len(flagged) == 1
    row = flagged.iloc[0]
    assert (row["commodity"], row["year"], row["world_total"]) == ("rare-earths", 2025, 500_000)
    assert row["country_sum"] == pytest.approx(389_310)
    assert row["rel_diff"] == pytest.approx(abs(389_310 - 500_000) / 500_000)


def test_excluded_salient_files_are_checked(monkeypatch, tmp_path):
    recs = [r for r in usgs_mcs.load_corrections() if r["table"] == "files"]
    assert {Path(r["file"]).name for r in recs} == {"mcs2024-cobal_salient.csv", "mcs2024-gypsu_salient.csv",
                                                   "mcs2024-kyani_salient.csv"}
    fixed = tmp_path / recs[0]["file"]
    fixed.parent.mkdir(parents=True)
    fixed.write_text("DataSource,Commodity,Year\n", encoding="utf-8")
    with pytest.raises(DataError, match="upstream fixed"):
        usgs_mcs._check_excluded_files(tmp_path, recs[:1])


def test_sources_metadata():
    ids = [s["id"] for s in usgs_mcs.SOURCES]
    assert ids == ["usgs-mcs-2023", "usgs-mcs-2024", "usgs-mcs-2026"]
    for s in usgs_mcs.SOURCES:
        assert s["licence"] == "Public domain (U.S. Government work)"
        assert all((RAW / f).is_file() for f in s["files"]), s["id"]
    assert usgs_mcs.SOURCES[2]["url"] == "https://doi.org/10.5066/P1WKQ63T"

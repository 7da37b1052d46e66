"""Parsers of every raw source except USGS MCS: reproduce the checks of each SOURCE.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from critmin.constants import STAGES
from critmin.errors import MappingError
from critmin.reference.countries import is_valid_code
from critmin.reference.schema import CURATED_TABLES, TABLES

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not RAW.is_dir(), reason=f"raw public data folder {RAW} not available")


def _check_schema(frame: pd.DataFrame, table: str) -> None:
    spec = TABLES[table]
    assert list(frame.columns) == list(spec)
    for col, (dtype, _) in spec.items():
        assert str(frame[col].dtype) == dtype, col
    assert frame.index.equals(pd.RangeIndex(len(frame)))


# --------------------------------------------------------------------------- BACI
@pytest.fixture(scope="module")
def trade() -> pd.DataFrame:
    from critmin.reference.sources import baci

    return baci.parse(RAW)["trade"]


def _export_share(trade: pd.DataFrame, hs6: str, year: int) -> pd.Series:
    rows = trade[(trade["hs6"] == hs6) & (trade["year"] == year)]
    by_exporter = rows.groupby("exporter")["value_usd"].sum()
    return by_exporter / by_exporter.sum()


@pytest.mark.parametrize(("hs6", "country", "share"), [
    ("282520", "CHN", 0.747), ("283691", "CHL", 0.801), ("810510", "COD", 0.529), ("250410", "CHN", 0.552),
    ("284690", "MMR", 0.440),
])
def test_baci_2023_export_shares(trade, hs6, country, share):
    assert _export_share(trade, hs6, 2023)[country] == pytest.approx(share, abs=0.0005)


def test_baci_2024_japan_ree_imports(trade):
    rows = trade[(trade["hs6"] == "284690") & (trade["year"] == 2024) & (trade["importer"] == "JPN")]
    assert rows["value_usd"].sum() / 1e6 == pytest.approx(214, abs=0.5)
    by_exporter = rows.groupby("exporter")["value_usd"].sum() / 1e6
    assert by_exporter["CHN"] == pytest.approx(124, abs=0.5)
    assert by_exporter["MYS"] == pytest.approx(64, abs=0.5)
    usa = trade[(trade["hs6"] == "284690") & (trade["year"] == 2024) & (trade["importer"] == "USA")]
    assert usa.groupby("exporter")["value_usd"].sum().idxmax() == "CHN"


def test_baci_table_contract(trade, tmp_path):
    _check_schema(trade, "trade")
    assert "skip" not in set(trade["commodity"])
    assert set(trade["stage"]) <= set(STAGES)
    assert all(is_valid_code(c) for c in set(trade["exporter"]) | set(trade["importer"]))
    assert not trade.duplicated(["hs6", "exporter", "importer", "year"]).any()
    assert (trade["unit"] == "t").all() and (trade["value_usd"] > 0).all()
    assert trade["year"].between(1995, 2024).all()
    # 490 "Other Asia, nes" is Taiwan; SACU (1995-99) is attributed to South Africa.
    assert {"TWN", "ZAF"} <= set(trade["exporter"])
    path = tmp_path / "trade.parquet"
    trade.to_parquet(path, compression="zstd", index=False)
    assert path.stat().st_size < 12e6


def test_baci_hs6_mapping_is_exhaustive():
    from critmin.reference.sources import baci

    mapped = baci.map_hs6(["260400", "284690", "280530", "810510"])
    assert list(mapped["commodity"]) == ["nickel", "rare-earths", "rare-earths", "cobalt"]
    assert list(mapped["stage"]) == ["mine", "refine", "metal", "metal"]
    with pytest.raises(MappingError, match="999999"):
        baci.map_hs6(["260400", "999999"])


def test_baci_mapping_examples():
    from critmin.reference.sources import baci

    m = baci.hs6_mapping().set_index("hs6")
    expected = {"260200": ("manganese", "mine"), "250410": ("graphite", "mine"), "250490": ("graphite", "mine"),
                "284610": ("rare-earths", "refine"), "282520": ("lithium", "refine"),
                "283691": ("lithium", "refine"), "282200": ("cobalt", "refine"), "811230": ("germanium", "metal"),
                "711011": ("platinum", "metal"), "711021": ("palladium", "metal")}
    for code, (commodity, stage) in expected.items():
        assert (m.at[code, "commodity"], m.at[code, "stage"]) == (commodity, stage), code
    assert (m.loc[m["commodity"] == "skip", "note"].str.len() > 0).all()


# --------------------------------------------------------------------------- WGI
@pytest.fixture(scope="module")
def governance() -> pd.DataFrame:
    from critmin.reference.sources import wgi

    return wgi.parse(RAW)["governance"]


def test_wgi_values(governance):
    _check_schema(governance, "governance")
    g = governance.set_index(["country", "year", "indicator"])["value"]
    assert g["CHN", 2023, "pv"] == pytest.approx(-0.51, abs=0.005)
    assert g["JPN", 2023, "pv"] == pytest.approx(0.95, abs=0.005)
    assert g["JPN", 2023, "ge"] == pytest.approx(1.63, abs=0.005)
    assert g["USA", 2023, "pv"] == pytest.approx(0.03, abs=0.005)
    # 32,100 cells minus 1,126 '..' estimates; aliased codes land on ISO3.
    assert len(governance) == 32100 - 1126
    assert governance["value"].notna().all()
    assert {"COD", "ROU", "XKX", "PSE", "AND", "TLS"} <= set(governance["country"])
    assert not {"ZAR", "ROM", "KSV"} & set(governance["country"])


# --------------------------------------------------------------------------- prices
@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    from critmin.reference.sources import prices

    return prices.parse(RAW)["prices"]


def _price(prices: pd.DataFrame, series: str, period: str) -> float:
    rows = prices[(prices["series"] == series) & (prices["period"] == period)]
    assert len(rows) == 1, (series, period)
    return float(rows["value"].iloc[0])


def test_prices(prices):
    _check_schema(prices, "prices")
    assert _price(prices, "NICKEL", "2022-03") == pytest.approx(33924, abs=1)
    assert _price(prices, "NICKEL", "2024-01") == pytest.approx(16104, abs=1)
    assert _price(prices, "COPPER", "2025-11") == pytest.approx(10812, abs=1)
    assert _price(prices, "Nd2O3", "2021") == 98
    assert _price(prices, "Nd2O3", "2022") == 134
    assert _price(prices, "Dy2O3", "2022") == 382
    assert _price(prices, "Tb4O7", "2022") == 2050
    assert _price(prices, "ds140-unit-value", "2020") == 5130
    nickel = prices[prices["series"] == "NICKEL"]
    assert set(nickel["unit"]) == {"USD/t"} and set(nickel["commodity"]) == {"nickel"}
    assert set(prices.loc[prices["series"] == "GOLD", "unit"]) == {"USD/troy oz"}
    assert set(prices.loc[prices["series"] == "IRON_ORE", "unit"]) == {"USD/dmtu"}
    assert prices["value"].notna().all()
    monthly = prices["frequency"] == "monthly"
    assert prices.loc[monthly, "period"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert prices.loc[~monthly, "period"].str.fullmatch(r"\d{4}").all()


# --------------------------------------------------------------------------- deposits
@pytest.fixture(scope="module")
def deposits() -> pd.DataFrame:
    from critmin.reference.sources import deposits

    return deposits.parse(RAW)["deposits"]


def test_deposits(deposits):
    _check_schema(deposits, "deposits")
    assert deposits["dataset"].value_counts().to_dict() == {"major": 3168, "pp1802": 2121, "lithium-us": 21}
    assert deposits["deposit_id"].is_unique
    assert all(is_valid_code(c) for c in set(deposits["country"]))
    by_id = deposits.set_index("deposit_id")
    assert by_id.at["lithium-us-NV00144", "commodities"] == "lithium;potash"
    assert by_id.at["major-322", "country"] == "PRK" and by_id.at["major-326", "country"] == "KOR"
    pp = deposits[deposits["dataset"] == "pp1802"]
    assert (pp["commodities"] != "").all()
    mentions = pp["commodities"].str.split(";").explode().value_counts()
    assert mentions["gallium"] == 452 and mentions["lithium"] == 118
    assert pp["country"].value_counts()["JPN"] == 10
    major = deposits[deposits["dataset"] == "major"]
    assert major["country"].value_counts()["JPN"] == 29
    assert deposits["lat"].dropna().between(-90, 90).all() and deposits["lon"].dropna().between(-180, 180).all()


def test_deposit_labels_are_exhaustive():
    from critmin.reference.sources import deposits

    assert deposits.map_commodities(["Niobium and Tantalum", "Tin"]) == "niobium;tantalum;tin"
    assert deposits.map_commodities(["salt", "diamond"]) == ""
    with pytest.raises(MappingError, match="unobtainium"):
        deposits.map_commodities(["Cu", "unobtainium"], source="test")


# --------------------------------------------------------------------------- curated
@pytest.fixture(scope="module")
def curated() -> dict[str, pd.DataFrame]:
    from critmin.reference.sources import curated

    return curated.parse(RAW)


def test_curated_row_counts_and_citations(curated):
    counts = {"processing_shares": 93, "export_controls": 29, "projects": 29, "stockpile_programs": 30,
              "demand_parameters": 21}
    assert set(curated) == set(CURATED_TABLES)
    for table, n in counts.items():
        frame = curated[table]
        own = frame[frame["source"] == f"curated-{table}"]
        assert len(own) == n, table
        # critmin's own cited additions (export controls after the register's last update) are the rest
        assert set(frame["source"]) - {f"curated-{table}"} <= {"critmin-addenda"}
        assert frame["citation"].notna().all() and (frame["verified"] == "yes").all()
        assert frame["commodity"].notna().all()
    # Original text is unchanged: the raw citation text round-trips.
    raw = pd.read_csv(RAW / "curated" / "projects.csv", dtype=str, keep_default_na=False)
    assert sorted(raw["source"]) == sorted(curated["projects"]["citation"])


def test_curated_normalised_columns(curated):
    shares = curated["processing_shares"]
    assert "rare_earths" not in set(shares["commodity"]) and "rare-earths" in set(shares["commodity"])
    assert set(shares["stage_id"].dropna()) <= set(STAGES)
    assert shares["stage_id"].notna().all()
    assert shares.groupby(["commodity_label", "stage", "year", "basis"])["share"].sum().max() <= 1.0005
    controls = curated["export_controls"]
    assert "EUU" in set(controls["country"])
    ids = controls.set_index("event_id")
    assert all(isinstance(v, str) for v in ids["commodity"])
    projects = curated["projects"]
    assert {"USA;JPN", "USA;AUS"} <= set(projects["country"])
    stock = curated["stockpile_programs"]
    assert "nickel;chromium;tungsten;cobalt;molybdenum;manganese;vanadium" in set(stock["commodity"])
    assert "all" in set(stock["commodity"])


def test_curated_labels_are_exhaustive():
    from critmin.reference.sources import curated

    assert curated.map_commodity("rare_earths;Ni") == "rare-earths;nickel"
    assert curated.map_stages("mine;separation;magnet;recycling") == "mine;refine;component"
    with pytest.raises(MappingError):
        curated.map_commodity("kryptonite")
    with pytest.raises(MappingError):
        curated.map_stages("alchemy")
    with pytest.raises(MappingError):
        curated.map_country("XYZ")


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("module", ["prices", "deposits", "curated"])
def test_deterministic(module):
    import importlib

    parse = importlib.import_module(f"critmin.reference.sources.{module}").parse
    first, second = parse(RAW), parse(RAW)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])


@pytest.mark.parametrize("module", ["baci", "wgi", "prices", "deposits", "curated"])
def test_sources_metadata(module):
    import importlib

    mod = importlib.import_module(f"critmin.reference.sources.{module}")
    for src in mod.SOURCES:
        assert {"id", "publisher", "title", "licence", "url", "version", "files"} <= set(src)
        assert all((RAW / f).is_file() for f in src["files"]), src["id"]

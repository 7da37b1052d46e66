"""The shipped dataset: rebuilt from the raw public files it is identical; headline figures; provenance."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from critmin.reference.build import content_hash, verify
from critmin.reference.catalog import Catalog, bundled_dir
from critmin.reference.countries import valid_codes
from critmin.reference.schema import CURATED_TABLES, TABLES

cat = Catalog()


@pytest.mark.rebuild
def test_rebuild_from_raw_is_identical(raw_dir):
    assert verify(raw_dir) == []


def test_manifest_covers_every_table_with_sources_and_licences():
    man = json.loads((bundled_dir() / "MANIFEST.json").read_text("utf-8"))
    assert set(TABLES) | set(CURATED_TABLES) <= set(man["tables"])
    ids = {s["id"] for s in man["sources"]}
    for s in man["sources"]:
        assert s["publisher"] and s["licence"] and s["url"], s["id"]
        # every source names the raw files it was read from, except critmin's own packaged additions
        assert s["files"] or s["id"] == "critmin-addenda", f"{s['id']} lists no raw files"
    for name, info in man["tables"].items():
        frame = cat.table(name)
        assert len(frame) == info["rows"]
        assert content_hash(frame) == info["content_sha256"], name
        if "source" in frame and name in TABLES:
            assert set(frame["source"].astype(str)) <= ids, name


def test_shipped_dataset_is_compact():
    size = sum(p.stat().st_size for p in bundled_dir().iterdir())
    assert size < 25 * 2**20


@pytest.mark.parametrize("table,cols", [("production", ["country"]), ("reserves", ["country"]),
                                        ("trade", ["exporter", "importer"]), ("governance", ["country"]),
                                        ("deposits", ["country"])])
def test_country_columns_are_iso3(table, cols):
    frame = cat.table(table)
    for c in cols:
        bad = set(frame[c].astype(str)) - valid_codes()
        assert not bad, f"{table}.{c}: {sorted(bad)[:10]}"


def test_residual_and_total_rows_are_not_countries():
    prod = cat.table("production")
    assert set(prod.loc[prod.country == "ROW", "row_type"]) <= {"residual"}
    assert set(prod.loc[prod.country == "WLD", "row_type"]) <= {"total"}
    assert not prod.loc[prod.row_type == "country", "country"].isin(["ROW", "WLD"]).any()


def _share(commodity: str, country: str, year: int) -> float:
    prod = cat.table("production")
    sel = prod[(prod.commodity == commodity) & (prod.stage == "mine") & (prod.year == year)
               & (prod.row_type != "total")]
    return float(sel.loc[sel.country == country, "value"].sum() / sel["value"].sum())


def test_headline_china_rare_earth_mine_share_2025():
    # USGS MCS 2026 data release, RARE EARTHS, World Mine Production and Reserves, 2025 (estimate):
    # China 270,000 t REO of a world total of 390,000 t (rounded) -> about 69 %.
    share = _share("rare-earths", "CHN", 2025)
    assert share == pytest.approx(270_000 / 390_000, abs=0.02)


def test_headline_drc_cobalt_mine_share_2025():
    # USGS MCS 2026, COBALT, World Mine Production and Reserves, 2025: Congo (Kinshasa) 230,000 of 310,000 t.
    assert _share("cobalt", "COD", 2025) == pytest.approx(230_000 / 310_000, abs=0.02)


def test_brazil_rare_earth_reserves_corrected():
    # MCS 2026 v1.3 (2026-05-27) revised Brazil from 21,000,000 t to 11,000,000 t; the CSV was not updated.
    res = cat.table("reserves")
    sel = res[(res.commodity == "rare-earths") & (res.country == "BRA") & (res.source == "usgs-mcs-2026")]
    assert sel["value"].tolist() == [11_000_000]


def test_us_net_import_reliance_codes_kept():
    sal = cat.table("us_salient")
    nir = sal[(sal.statistic == "net_import_reliance") & (sal.year == 2025)]
    graphite = nir[nir.commodity == "graphite"]
    assert (graphite["value"] == 100).any()
    assert (nir["code"] == "E").any()           # net exporters stay meaningful, not NaN
    assert (nir["code"].str.startswith(">")).any()


def test_trade_is_bilateral_baci_in_usd_and_tonnes():
    trade = cat.table("trade")
    # CEPII BACI, HS 282520 (lithium oxide and hydroxide), 2023 world exports: China 74.7 % by value.
    li = trade[(trade.hs6 == "282520") & (trade.year == 2023)]
    share = li.loc[li.exporter == "CHN", "value_usd"].sum() / li["value_usd"].sum()
    assert share == pytest.approx(0.747, abs=0.002)
    assert set(trade.unit) == {"t"}


def test_governance_has_six_wgi_dimensions():
    gov = cat.table("governance")
    assert set(gov.indicator) == {"va", "pv", "ge", "rq", "rl", "cc"}
    chn = gov[(gov.country == "CHN") & (gov.year == 2023) & (gov.indicator == "pv")]["value"].item()
    assert chn == pytest.approx(-0.51, abs=0.005)


def test_curated_tables_keep_citations():
    for name in CURATED_TABLES:
        frame = cat.table(name)
        assert len(frame) > 0
        assert any(c in frame.columns for c in ("citation", "source_url")), name


def test_prices_have_units_and_sources():
    prices = cat.table("prices")
    assert prices["unit"].notna().all() and (prices["unit"] != "").all()
    ni = prices[(prices.commodity == "nickel") & (prices.period == "2022-03")]
    assert ni["value"].iloc[0] == pytest.approx(33924, rel=1e-3)


def test_deposits_have_coordinates():
    dep = cat.table("deposits")
    located = dep.dropna(subset=["lat", "lon"])
    assert len(dep) - len(located) <= 7        # 7 major deposits are published without coordinates
    assert located["lat"].between(-90, 90).all() and located["lon"].between(-180, 180).all()
    assert set(dep["dataset"]) >= {"pp1802", "major", "lithium-us"}
    assert not dep.empty and isinstance(dep, pd.DataFrame)


def test_prices_include_usgs_ndpr_unit_value():
    # USGS MCS 2026, RARE EARTHS salient statistics: NdPr oxide (99 % minimum), average price 2024, 55 $/kg.
    prices = cat.table("prices")
    ndpr = prices[(prices.commodity == "rare-earths") & prices.series.str.contains("NdPr") & (prices.period == "2024")]
    assert ndpr["value"].tolist() == [55.0] and ndpr["unit"].tolist() == ["USD/kg"]

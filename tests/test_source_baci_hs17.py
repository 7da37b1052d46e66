"""CEPII BACI HS17 subset (critmin.reference.sources.baci_hs17): the checks of its SOURCE.md, the mapping's
guards against double counting with the HS92 subset, and a 3-row raw fixture checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from critmin.errors import MappingError
from critmin.reference.countries import is_valid_code
from critmin.reference.schema import TABLES
from critmin.reference.sources import baci, baci_hs17

#: The HS17 codes that add products the HS92 subset lacks (hs92_equivalent blank, not skipped).
EMITTED = {"251010", "280469", "283692", "740311", "750210", "810194", "810411", "810820", "811010", "811292",
           "850511"}


@pytest.fixture(scope="module")
def trade(raw_dir) -> pd.DataFrame:
    return baci_hs17.parse(raw_dir)["trade"]


def _japan_2024_from(trade: pd.DataFrame, hs6: str) -> pd.DataFrame:
    rows = trade[(trade["hs6"] == hs6) & (trade["year"] == 2024) & (trade["importer"] == "JPN")]
    return rows.set_index("exporter")


def test_japan_2024_imports_from_china(trade):
    # SOURCE.md, "Checks done": Japan 2024 imports from China.
    mg = _japan_2024_from(trade, "810411").loc["CHN"]
    assert mg["value_usd"] / 1e3 == pytest.approx(54_208, abs=0.5)
    assert mg["quantity"] == pytest.approx(20_069, abs=0.5)
    magnets = _japan_2024_from(trade, "850511").loc["CHN"]
    assert magnets["value_usd"] / 1e3 == pytest.approx(156_880, abs=0.5)
    assert magnets["quantity"] == pytest.approx(3_714.5, abs=0.05)
    w = _japan_2024_from(trade, "810194").loc["CHN"]
    assert w["value_usd"] / 1e3 == pytest.approx(34_630, abs=0.5)
    assert w["quantity"] == pytest.approx(690.9, abs=0.05)
    assert (mg["commodity"], mg["stage"]) == ("magnesium", "metal")
    assert (magnets["commodity"], magnets["stage"]) == ("rare-earths", "component")


def test_japan_2024_antimony_suppliers(trade):
    sb = _japan_2024_from(trade, "811010")["value_usd"] / 1e3
    for country, kusd in {"CHN": 25_125, "VNM": 24_960, "THA": 15_259, "KOR": 13_729}.items():
        assert sb[country] == pytest.approx(kusd, abs=0.5), country
    assert list(sb.sort_values(ascending=False).index[:4]) == ["CHN", "VNM", "THA", "KOR"]


def test_table_contract(trade):
    spec = TABLES["trade"]
    assert list(trade.columns) == list(spec)
    for col, (dtype, _) in spec.items():
        assert str(trade[col].dtype) == dtype, col
    assert trade.index.equals(pd.RangeIndex(len(trade)))
    assert set(trade["nomenclature"]) == {"HS17"} and set(trade["source"]) == {"baci-hs17-2024"}
    assert set(trade["year"]) == {2022, 2024}
    assert (trade["unit"] == "t").all() and (trade["value_usd"] >= 0).all()
    assert (trade["value_usd"] == np.round(trade["value_usd"])).all()
    assert all(is_valid_code(c) for c in set(trade["exporter"]) | set(trade["importer"]))
    assert "TWN" in set(trade["exporter"])  # BACI's S19 "Other Asia, nes"
    assert not trade.duplicated(["hs6", "exporter", "importer", "year"]).any()
    # 2022 carries values only; 2024 has quantities for most flows.
    assert trade.loc[trade["year"] == 2022, "quantity"].isna().all()
    assert trade.loc[trade["year"] == 2024, "quantity"].notna().mean() > 0.9


def test_overlap_codes_are_not_duplicated(trade):
    # Products the HS92 subset already carries are not emitted again: e.g. lithium carbonate 283691.
    assert set(trade["hs6"]) == EMITTED
    assert not (trade["hs6"] == "283691").any()
    assert not set(trade["hs6"]) & set(baci.hs6_mapping().index)
    m = baci_hs17.hs17_mapping()
    assert not set(trade["hs6"]) & set(m.index[m["hs92_equivalent"] != ""])


def test_mapping_covers_the_30_codes(raw_dir):
    m = baci_hs17.hs17_mapping()
    codes = set(pd.read_parquet(raw_dir / "baci-hs17-2024-critical/trade_baci_hs17_2024.parquet")["hs6"])
    assert len(codes) == 30 and set(m.index) == codes
    expected = {"850511": ("rare-earths", "component"), "811292": ("gallium-germanium-group", "metal"),
                "283692": ("strontium", "refine"), "251010": ("phosphate", "mine"), "280429": ("skip", ""),
                "810320": ("tantalum", "metal"), "252800": ("boron", "mine")}
    for code, pair in expected.items():
        assert (m.at[code, "commodity"], m.at[code, "stage"]) == pair, code
    assert (m.at["810320", "hs92_equivalent"], m.at["811212", "hs92_equivalent"]) == ("810310", "811211")
    assert (m.loc[m["commodity"] == "skip", "note"].str.len() > 0).all()


def test_unlisted_code_raises():
    assert list(baci_hs17.map_hs17(["810411", "850511"])["commodity"]) == ["magnesium", "rare-earths"]
    with pytest.raises(MappingError, match="999999"):
        baci_hs17.map_hs17(["810411", "999999"])


def test_equivalence_guards(monkeypatch):
    real = baci_hs17.hs17_mapping()
    build = baci_hs17.hs17_mapping.__wrapped__
    blank = real.copy()
    blank.loc["283691", "hs92_equivalent"] = ""   # same code as HS92 but no equivalent: would double-count
    monkeypatch.setattr(baci_hs17, "read_code_mapping", lambda *a, **k: blank)
    with pytest.raises(MappingError, match="283691"):
        build()
    wrong = real.copy()
    wrong.loc["810320", "commodity"] = "niobium"  # disagrees with HS92 810310 (tantalum)
    monkeypatch.setattr(baci_hs17, "read_code_mapping", lambda *a, **k: wrong)
    with pytest.raises(MappingError, match="disagree"):
        build()


# --------------------------------------------------------------------------- hand-checkable raw fixture
def _fake_raw(root: Path, *, hs6: str = "810411", exporter: str = "CHN") -> Path:
    d = root / "baci-hs17-2024-critical"
    d.mkdir(parents=True)
    pd.DataFrame({
        "year": np.array([2024, 2024, 2024], dtype="int32"), "exporter": [exporter, "S19", "CHN"],
        "exporter_name": ["x", "Other Asia, nes", "China"], "importer": ["JPN", "USA", "JPN"],
        "importer_name": ["Japan", "USA", "Japan"], "hs6": [hs6, "850511", "283691"],
        "material": ["m", "magnets", "lithium"], "value_kusd": [1.5, 2.0, 7.0], "qty_t": [0.25, np.nan, 1.0],
    }).to_parquet(d / "trade_baci_hs17_2024.parquet", index=False)
    (d / "baci_hs17_2022_value_only.csv").write_text("i,j,cmd,value\nCHN,JPN,810411,999.9999999999999\n",
                                                     encoding="utf-8")
    (d / "country_codes_V202601.csv").write_text(
        "country_code,country_name,country_iso2,country_iso3\n156,China,CN,CHN\n392,Japan,JP,JPN\n"
        "490,\"Other Asia, nes\",,S19\n842,USA,US,USA\n", encoding="utf-8")
    return root


def test_fake_raw_by_hand(tmp_path):
    t = baci_hs17.parse(_fake_raw(tmp_path))["trade"]
    # 283691 (in the HS92 subset) is dropped; kUSD x 1000; 2022 USD rounded, quantity NaN; S19 -> TWN.
    got = {(r.hs6, r.exporter, r.year): (r.value_usd, r.quantity) for r in t.itertuples()}
    assert set(got) == {("810411", "CHN", 2024), ("850511", "TWN", 2024), ("810411", "CHN", 2022)}
    assert got[("810411", "CHN", 2024)] == (1500.0, 0.25)
    assert got[("850511", "TWN", 2024)][0] == 2000.0 and np.isnan(got[("850511", "TWN", 2024)][1])
    assert got[("810411", "CHN", 2022)][0] == 1000.0 and np.isnan(got[("810411", "CHN", 2022)][1])


def test_fake_raw_unlisted_code_and_country(tmp_path):
    with pytest.raises(MappingError, match="123456"):
        baci_hs17.parse(_fake_raw(tmp_path / "a", hs6="123456"))
    with pytest.raises(MappingError, match="XYZ"):
        baci_hs17.parse(_fake_raw(tmp_path / "b", exporter="XYZ"))


def test_deterministic_and_metadata(raw_dir, trade):
    pd.testing.assert_frame_equal(trade, baci_hs17.parse(raw_dir)["trade"])
    for src in baci_hs17.SOURCES:
        assert {"id", "publisher", "title", "licence", "url", "version", "files", "notes"} <= set(src)
        assert all((raw_dir / f).is_file() for f in src["files"]), src["id"]

"""USITC DataWeb parser (``us_trade``): reproduce the checks of usitc-us-trade/SOURCE.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from critmin.reference.countries import is_valid_code
from critmin.reference.schema import TABLES

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not RAW.is_dir(), reason=f"raw public data folder {RAW} not available")


@pytest.fixture(scope="module")
def us_trade() -> pd.DataFrame:
    from critmin.reference.sources import usitc

    return usitc.parse(RAW)["us_trade"]


def _shares(frame: pd.DataFrame, flow: str, hts4: str, period: str) -> pd.Series:
    rows = frame[(frame.flow == flow) & (frame.hts4 == hts4) & (frame.period == period)]
    return rows.groupby("partner")["value_usd"].sum()


def test_schema_and_keys(us_trade):
    spec = TABLES["us_trade"]
    assert list(us_trade.columns) == list(spec)
    for col, (dtype, _) in spec.items():
        assert str(us_trade[col].dtype) == dtype, col
    assert us_trade.index.equals(pd.RangeIndex(len(us_trade)))
    assert not us_trade.duplicated(["flow", "hts4", "partner", "period", "quantity_unit"]).any()
    assert set(us_trade.flow) == {"import", "export"}
    assert set(us_trade.source) == {"usitc-dataweb"}
    assert all(is_valid_code(p) for p in us_trade.partner.unique())
    assert us_trade.partner.nunique() == 18
    assert (us_trade.value_usd >= 0).all()


def test_periods_and_months(us_trade):
    annual = us_trade[us_trade.months == 12]
    ytd = us_trade[us_trade.months == 4]
    assert annual.period.str.fullmatch(r"\d{4}").all()
    assert ytd.period.str.fullmatch(r"\d{4}-YTD04").all()
    assert annual.period.min() == "1993" and annual.period.max() == "2025"
    assert ytd.period.max() == "2026-YTD04"
    assert "2026" not in set(annual.period)  # the annual sheet's 2026 column is empty, not a year


def test_source_md_check_2846_imports_2024(us_trade):
    # SOURCE.md: 2024 U.S. imports of HTS 2846 from the 18 partners 150.8 M USD, China 74.7 %, Japan 12.9 %,
    # South Africa 2.8 %, France 2.3 %.
    by = _shares(us_trade, "import", "2846", "2024")
    assert by.sum() / 1e6 == pytest.approx(150.8, abs=0.05)
    share = by / by.sum()
    assert share["CHN"] == pytest.approx(0.747, abs=0.0005)
    assert share["JPN"] == pytest.approx(0.129, abs=0.0005)
    assert share["ZAF"] == pytest.approx(0.028, abs=0.0005)
    assert share["FRA"] == pytest.approx(0.023, abs=0.0005)


def test_mapping_and_skips(us_trade):
    heads = us_trade.drop_duplicates("hts4").set_index("hts4")
    assert tuple(heads.loc["2846", ["commodity", "stage"]]) == ("rare-earths", "refine")
    assert tuple(heads.loc["2504", ["commodity", "stage"]]) == ("graphite", "mine")
    assert tuple(heads.loc["8505", ["commodity", "stage"]]) == ("rare-earths", "component")
    assert tuple(heads.loc["2825", ["commodity", "stage"]]) == ("lithium", "refine")
    assert tuple(heads.loc["8105", ["commodity", "stage"]]) == ("cobalt", "metal")
    # Mixed headings without a single critmin id are skipped with a reason in hts4.csv.
    assert not {"2805", "7202", "8112"} & set(us_trade.hts4)


def test_mapping_file_is_exhaustive_and_explained():
    from critmin.reference.sources.usitc import hts4_mapping

    m = hts4_mapping()
    assert len(m) == 25
    assert m["note"].str.len().min() > 10
    assert "mixed" in m.loc["8505", "note"].lower() and "electromagnet" in m.loc["8505", "note"].lower()
    assert "mixed" in m.loc["2825", "note"].lower()


def test_units_mass_in_tonnes_and_suppressed_is_nan(us_trade):
    # Graphite (2504) is published in kilograms: converted to t.
    g = us_trade[(us_trade.hts4 == "2504")]
    assert set(g.quantity_unit) == {"t"}
    # Non-mass units stay as published.
    assert {"number", "component kilograms"} <= set(us_trade.quantity_unit)
    # Australia 2825 imports 1996: DataWeb flags 12 suppressed records -> quantity unknown.
    row = us_trade[(us_trade.flow == "import") & (us_trade.hts4 == "2825") & (us_trade.partner == "AUS")
                   & (us_trade.period == "1996")]
    assert len(row) == 1 and np.isnan(row.quantity.item()) and row.value_usd.item() > 0
    assert us_trade.loc[us_trade.quantity_unit == "no units collected", "quantity"].isna().all()


def test_ytd_is_smaller_than_the_year(us_trade):
    full = _shares(us_trade, "import", "2846", "2025").sum()
    part = _shares(us_trade, "import", "2846", "2025-YTD04").sum()
    assert 0 < part < full

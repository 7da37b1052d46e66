"""Indicator kernels: hand-computable fixtures and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from critmin.importers import parse_importers
from critmin.indicators import allied_share, hhi, import_reliance, shares, top_k_share
from critmin.methods.geopolrisk import geopolrisk
from critmin.methods.inputs import build_inputs


def _arr(values, countries=None):
    countries = countries or [f"C{i}" for i in range(len(values))]
    return xr.DataArray(np.asarray(values, float), dims=["country"], coords={"country": countries})


def test_hand_computed_hhi_with_residual():
    # 60 + 30 from named countries, 10 "Other countries": shares .6 .3 (.1 residual)
    p = _arr([60, 30, 10], ["CHN", "AUS", "ROW"])
    s = shares(p)
    named = xr.DataArray([True, True, False], dims=["country"], coords={"country": ["CHN", "AUS", "ROW"]})
    assert float(s.sum()) == pytest.approx(1.0)
    assert float(hhi(s, named=named)) == pytest.approx(0.6**2 + 0.3**2)
    assert float(top_k_share(s, 1, named=named)) == pytest.approx(0.6)
    assert float(allied_share(s, xr.DataArray([False, True, False], dims=["country"],
                                              coords={"country": ["CHN", "AUS", "ROW"]}))) == pytest.approx(0.3)


def test_import_reliance_bounds_and_net_exporter():
    assert float(import_reliance(_arr([0.0]), _arr([10.0]), _arr([0.0])).item()) == 1.0
    assert float(import_reliance(_arr([100.0]), _arr([10.0]), _arr([50.0])).item()) == 0.0   # net exporter
    assert float(import_reliance(_arr([30.0]), _arr([10.0]), _arr([0.0])).item()) == pytest.approx(0.25)


positive = st.lists(st.floats(min_value=0.001, max_value=1e9, allow_nan=False), min_size=1, max_size=30)


@given(positive)
@settings(max_examples=200, deadline=None)
def test_hhi_bounds(values):
    s = shares(_arr(values))
    h = float(hhi(s))
    n = len(values)
    assert 1.0 / n - 1e-12 <= h <= 1.0 + 1e-12
    assert float(s.sum()) == pytest.approx(1.0)


@given(positive, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_hhi_invariant_to_country_order(values, rnd):
    countries = [f"C{i}" for i in range(len(values))]
    order = list(range(len(values)))
    rnd.shuffle(order)
    a = float(hhi(shares(_arr(values, countries))))
    b = float(hhi(shares(_arr([values[i] for i in order], [countries[i] for i in order]))))
    assert a == pytest.approx(b, rel=1e-12)


def _tables(rows_prod, rows_trade, rows_gov):
    prod = pd.DataFrame(rows_prod, columns=["commodity", "stage", "country", "year", "value"])
    prod["row_type"], prod["basis"], prod["source"] = "country", "t", "test"
    trade = pd.DataFrame(rows_trade, columns=["commodity", "stage", "exporter", "importer", "year", "quantity",
                                              "value_usd"])
    trade["source"] = "test"
    gov = pd.DataFrame(rows_gov, columns=["country", "year", "indicator", "value"])
    gov["source"] = "test"
    return prod, trade, gov


@given(st.lists(st.tuples(st.sampled_from(["CHN", "AUS", "CAN", "BRA"]), st.sampled_from(["USA", "JPN"]),
                          st.floats(min_value=1, max_value=1e6)), min_size=1, max_size=8, unique_by=lambda t: t[:2]),
       st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1e6))
@settings(max_examples=60, deadline=None)
def test_bloc_is_union_of_members(flows, p_usa, p_jpn):
    """Bloc USA+JPN: imports and domestic production are the sums over members; members carry g = 0."""
    prod, trade, gov = _tables(
        [("x", "mine", "USA", 2022, p_usa), ("x", "mine", "JPN", 2022, p_jpn), ("x", "mine", "CHN", 2022, 100.0)],
        [("x", "mine", e, i, 2022, q, q * 1000) for e, i, q in flows],
        [(c, 2022, "pv", v) for c, v in (("CHN", -0.5), ("AUS", 0.9), ("CAN", 1.0), ("BRA", -0.3),
                                         ("USA", 0.0), ("JPN", 1.0))])
    inp = build_inputs(prod, trade, gov, importers=parse_importers("USA,JPN,USA+JPN"), years=[2022], stage="mine")
    ds = geopolrisk(inp)
    bloc = ds.sel(commodity="x", year=2022, importer="USA+JPN")
    assert float(bloc["total_imports"]) == pytest.approx(sum(q for _, _, q in flows))
    assert float(bloc["domestic_production"]) == pytest.approx(p_usa + p_jpn)
    g = {"CHN": 0.6, "AUS": 0.32, "CAN": 0.3, "BRA": 0.56}
    num = sum(q * g[e] for e, _, q in flows)
    assert float(bloc["numerator"]) == pytest.approx(num, rel=1e-9)


def test_member_exporter_has_no_risk_and_missing_governance_is_half():
    prod, trade, gov = _tables([("x", "mine", "CHN", 2022, 10.0)],
                               [("x", "mine", "JPN", "USA", 2022, 10.0, 1e4), ("x", "mine", "ZAF", "USA", 2022, 10.0,
                                                                               1e4)],
                               [("JPN", 2022, "pv", -2.5)])
    inp = build_inputs(prod, trade, gov, importers=parse_importers("USA,USA+JPN"), years=[2022], stage="mine")
    ds = geopolrisk(inp).sel(commodity="x", year=2022)
    # USA alone: JPN pv -2.5 -> g = 1; ZAF missing -> 0.5; (10*1 + 10*0.5)/20
    assert float(ds["import_risk"].sel(importer="USA")) == pytest.approx(0.75)
    # bloc: JPN inside -> 0; only ZAF counts
    assert float(ds["import_risk"].sel(importer="USA+JPN")) == pytest.approx(0.25)
    assert float(ds["price"].sel(importer="USA")) == pytest.approx(1.0)    # 2e4 USD / 2e4 kg

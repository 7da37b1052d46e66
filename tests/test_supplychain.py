"""Properties of the propagation on small hand-built networks, and the network built from the bundled data.

Mass conservation in the kernel's terms, at every stage and month: what a consumer receives
(supply = demand − shortfall) equals its own production that still arrives (domestic) + imports + replacement
from spare capacity + extra recycling + stock released (the stock change) — the identity
``supply = production + imports − exports ± stock change`` written per consumer (its exports are other
consumers' imports).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from critmin.supplychain.kernel import Baseline, Responses, cascade, simulate

SUP = ["CHN", "AUS", "USA"]
CONS = ["USA", "ROW"]
STG = ["mine", "refine"]


def tiny(d_usa=(10.0, 12.0), d_row=(100.0, 90.0), chn=(0.6, 0.8), u_usa=(0.2, 0.1)) -> Baseline:
    """One commodity, two stages, three suppliers, two consumers; every number checkable by hand."""
    share = np.zeros((1, 2, 3, 2))
    for s in range(2):
        share[0, s, :, 0] = [chn[s] * (1 - u_usa[s]), (1 - chn[s]) * (1 - u_usa[s]), u_usa[s]]
        share[0, s, :, 1] = [chn[s], 1 - chn[s], 0.0]
    dims4 = ["commodity", "stage", "supplier", "consumer"]
    coords = {"commodity": ["x"], "stage": STG, "supplier": SUP, "consumer": CONS}
    demand = xr.DataArray(np.array([[[d_usa[0], d_row[0]], [d_usa[1], d_row[1]]]]),
                          dims=["commodity", "stage", "consumer"],
                          coords={k: coords[k] for k in ("commodity", "stage", "consumer")})
    domestic = xr.DataArray(np.array([[[u_usa[0], 0.0], [u_usa[1], 0.0]]]), dims=demand.dims, coords=demand.coords)
    one = xr.DataArray([1.0], dims=["commodity"], coords={"commodity": ["x"]})
    return Baseline(demand=demand, share=xr.DataArray(share, dims=dims4, coords=coords), domestic=domestic,
                    price0=one * 1000.0, elasticity=one * -0.3, price_cap=one * 10.0)


def chn_cut(base: Baseline, frac: float, months: int) -> xr.DataArray:
    sup = xr.DataArray([1.0, 0.0, 0.0], dims=["supplier"], coords={"supplier": SUP})
    return (xr.zeros_like(base.share) + sup * frac).expand_dims(month=np.arange(months), axis=-1)


responses_st = st.builds(
    Responses, leakage=st.floats(0, 0.5), ramp=st.floats(0, 0.3), substitution=st.floats(0, 0.3),
    recycling=st.floats(0, 0.2), stock0=st.floats(0, 50), release_max=st.floats(0, 20),
    stock_stage=st.sampled_from(STG), response_start=st.integers(0, 3))
base_st = st.builds(tiny, d_usa=st.tuples(st.floats(0.1, 100), st.floats(0.1, 100)),
                    d_row=st.tuples(st.floats(0.1, 1000), st.floats(0.1, 1000)),
                    chn=st.tuples(st.floats(0, 1), st.floats(0, 1)), u_usa=st.tuples(st.floats(0, 1), st.floats(0, 1)))


@settings(max_examples=12, deadline=None)
@given(base=base_st, frac=st.floats(0, 1), resp=responses_st, surge=st.floats(0, 0.5))
def test_mass_conservation_and_nonnegative_shortfall(base, frac, resp, surge):
    ds = simulate(base, chn_cut(base, frac, 4), resp, months=4, surge=surge)
    parts = ds["domestic"] + ds["imports"] + ds["replaced"] + ds["recycled"] + ds["released"]
    np.testing.assert_allclose(ds["supply"], parts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ds["supply"], ds["demand"] - ds["shortfall"], rtol=1e-9, atol=1e-9)
    assert float(ds["shortfall"].min()) >= -1e-12
    # stock change is the release: stock_t = stock_{t-1} − released_t at the stock stage
    st_ = ds["stock"].sel(stage=resp.stock_stage)
    prev = xr.concat([xr.zeros_like(st_.isel(month=0)) + resp.stock0, st_.isel(month=slice(None, -1))], "month")
    np.testing.assert_allclose(prev.values - st_.values, ds["released"].sel(stage=resp.stock_stage).values,
                               atol=1e-9)


@settings(max_examples=12, deadline=None)
@given(base=base_st, a=st.floats(0, 1), b=st.floats(0, 1), resp=responses_st)
def test_larger_cut_never_lowers_shortfall(base, a, b, resp):
    lo, hi = sorted((a, b))
    s_lo = simulate(base, chn_cut(base, lo, 4), resp, months=4)["shortfall"]
    s_hi = simulate(base, chn_cut(base, hi, 4), resp, months=4)["shortfall"]
    assert bool((s_hi >= s_lo - 1e-9).all())


@settings(max_examples=12, deadline=None)
@given(base=base_st, frac=st.floats(0, 1), stock=st.floats(0, 200), rmax=st.floats(0, 200))
def test_release_lowers_shortfall_by_min_release_shortfall(base, frac, stock, rmax):
    """One month, stockpile at the refine stage: Δshortfall = min(release, shortfall without release)."""
    plain = Responses(stock_stage="refine")
    with_stock = Responses(stock0=stock, release_max=rmax, stock_stage="refine")
    s0 = simulate(base, chn_cut(base, frac, 1), plain, months=1)["shortfall"].sel(stage="refine")
    s1 = simulate(base, chn_cut(base, frac, 1), with_stock, months=1)["shortfall"].sel(stage="refine")
    release = min(stock, rmax)
    np.testing.assert_allclose((s0 - s1).values, np.minimum(release, s0.values), atol=1e-9)


@settings(max_examples=8, deadline=None)
@given(base=base_st, resp=responses_st)
def test_zero_disruption_zero_shortfall(base, resp):
    ds = simulate(base, chn_cut(base, 0.0, 4), resp, months=4)
    assert float(abs(ds["shortfall"]).max()) == 0.0
    np.testing.assert_allclose(ds["price"], 1000.0)


def test_hand_computed_month():
    """CHN withholds half; USA refine: lost = 0.8·0.9·12·0.5 = 4.32 t plus its starved domestic refiners
    0.1·12·(mine shortfall fraction); no responses → shortfall = lost."""
    base = tiny()
    ds = simulate(base, chn_cut(base, 0.5, 1), Responses(), months=1)
    mine = float(ds["shortfall"].sel(stage="mine", consumer="USA").squeeze())
    assert mine == pytest.approx(0.6 * 0.8 * 10 * 0.5)   # 2.4 t
    refine = float(ds["shortfall"].sel(stage="refine", consumer="USA").squeeze())
    assert refine == pytest.approx(0.8 * 0.9 * 12 * 0.5 + 0.1 * 12 * (2.4 / 10))


# --- the cascade kernel on plain arrays (what simulate and the Monte Carlo both run) ------------------------

def _cascade_inputs(seed: int, n: int = 40, S: int = 3, K: int = 4, T: int = 6):
    """Random withheld flows with whole (stage, consumer) cells left undisturbed, and the reach they imply."""
    rng = np.random.default_rng(seed)
    demand = rng.uniform(1.0, 100.0, (S, K)) * (rng.random((S, K)) < 0.8)      # some cells without demand
    domestic = rng.uniform(0.0, 0.6, (S, K)) * (rng.random((S, K)) < 0.8)
    touched = (rng.random((S, K)) < np.array([[0.6], [0.3], [0.2]])[:S]) & (demand > 0)   # mostly upstream
    withheld = (rng.uniform(0.0, 1.0, (n, S, K, T)) * (rng.random((n, 1, 1, T)) < 0.7)
                * touched[None, :, :, None] * demand[None, :, :, None])
    reach, prev = np.zeros((S, K), dtype=bool), np.zeros(K, dtype=bool)
    for s in range(S):   # a cut there, or the consumer's own processors fed by a reached stage upstream
        reach[s] = touched[s] | ((domestic[s] > 0) & (demand[s] > 0) & prev)
        prev = np.where(demand[s] > 0, reach[s], prev)
    kw = {"ramp": rng.uniform(0, 0.3, K) * (rng.random(K) < 0.7), "substitution": rng.uniform(0, 0.2, K),
          "recycling": 0.0, "stock0": rng.uniform(0, 30, K), "release_max": rng.uniform(0, 10, K), "stock_stage": 1}
    return withheld, demand, domestic, np.arange(1.0, T + 1.0), reach, kw


@pytest.mark.parametrize("seed", range(6))
def test_cascade_vectorised_over_draws(seed):
    """Leading draw axis: the whole ensemble at once equals each draw alone, bit for bit."""
    w, d, u, m, _, kw = _cascade_inputs(seed)
    whole = cascade(w, d, u, m, full=True, **kw)
    for i in (0, 7, len(w) - 1):
        one = cascade(w[i:i + 1], d, u, m, full=True, **kw)
        for name in ("shortfall", "lost", "replaced", "substituted", "released", "stock", "demand"):
            np.testing.assert_array_equal(getattr(whole, name)[i], getattr(one, name)[0])
    assert (whole.shortfall >= 0).all() and (whole.shortfall <= whole.demand + 1e-9).all()


@pytest.mark.parametrize("seed", range(6))
def test_cascade_reach_skips_only_undisturbed_cells(seed):
    """The Monte Carlo's skip of unreached cells changes nothing: same shortfall to the bit, 0 where skipped."""
    w, d, u, m, reach, kw = _cascade_inputs(seed)
    full = cascade(w, d, u, m, **kw).shortfall
    skipped = cascade(np.moveaxis(np.ascontiguousarray(np.moveaxis(w, 0, -1)), -1, 0), d, u, m, reach=reach,
                      **kw).shortfall                                   # the ensemble's layout: draws last in memory
    np.testing.assert_array_equal(skipped, full)
    assert (~reach).any() and (full[:, ~reach, :] == 0).all()
    assert full.max() > 0


# --- the network from the bundled data -------------------------------------------------------------------

@pytest.fixture(scope="module")
def network():
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network

    return build_network(Catalog())


def test_network_shares_and_demand(network):
    base = network.baseline
    tot = base.share.sum("supplier")
    has = (base.demand > 0) & network.known
    np.testing.assert_allclose(tot.where(has).fillna(1.0), 1.0, atol=1e-9)
    assert {"rare-earths", "gallium", "germanium", "graphite", "antimony", "tungsten", "cobalt", "nickel",
            "lithium"} <= set(network.stages)
    assert network.stages["rare-earths"][:2] == ["mine", "refine"]
    # ROW = world output − USA − JPN at a production stage (rare-earth mining: 384,000 t REO in 2024)
    d = (base.demand.sel(commodity="rare-earths", stage="refine") * 12)
    assert float(d.sum("consumer")) == pytest.approx(384_000, rel=1e-6)
    assert float(d.sel(consumer="USA")) == pytest.approx(9_010)    # USGS apparent consumption
    assert any("processing-shares" in a for a in network.assumptions)
    assert float(base.domestic.min()) >= 0 and float(base.domestic.max()) <= 1


def test_with_bloc_is_sum_of_members(network):
    from critmin.supplychain.network import with_bloc
    from critmin.supplychain.presets import load_preset
    from critmin.supplychain.run import simulate_scenario

    ds = with_bloc(simulate_scenario(load_preset("china-graphite-2023"), network))
    for v in ("demand", "shortfall", "cumulative_unmet", "unmet_value"):
        np.testing.assert_allclose(ds[v].sel(consumer="USA+JPN"),
                                   ds[v].sel(consumer="USA") + ds[v].sel(consumer="JPN"), rtol=1e-12)

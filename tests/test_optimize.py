"""Stockpile LP and finance MILP: hand-solvable optima, properties, diagnosis, hook.

Fixtures are synthetic and labelled as such: 1 commodity ``cobalt``, holders USA and JPN, two equally
likely scenarios in which one holder loses 10 t. Price 1 USD/t, unmet value 10 USD/t, no holding cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("linopy")
pytest.importorskip("highspy")

from critmin.errors import CritminError, DataError
from critmin.optimize import stockpile as sp
from critmin.optimize.inputs import StockpileInputs
from critmin.optimize.portfolio import PortfolioProblem, eligibility, read_candidates

H = ["USA", "JPN"]


def hand_inputs(shortfall=((10.0, 0.0), (0.0, 10.0))) -> StockpileInputs:
    """SYNTHETIC test fixture (not data): scenario × holder shortfall of one commodity, t."""
    s = xr.DataArray(np.array(shortfall, dtype=float)[:, None, :], dims=["scenario", "commodity", "holder"],
                     coords={"scenario": list(range(len(shortfall))), "commodity": ["cobalt"], "holder": H})
    dem = xr.DataArray([[365.0, 365.0]], dims=["commodity", "holder"], coords={"commodity": ["cobalt"], "holder": H})
    price = xr.DataArray([1.0], dims=["commodity"], coords={"commodity": ["cobalt"]})
    return StockpileInputs(shortfall=s, demand_annual=dem, price=price, unmet_value=10.0, holding_cost=0.0)


def test_hand_lp_joint_and_alone():
    # Alone (σ=0): newsvendor per holder; P(short)=½, ½·10 > 1 so each buys 10 t: cost 20.
    # Joint (σ=1): 10 t anywhere covers whichever holder is hit: cost 10.
    prob = sp.StockpileProblem(hand_inputs(), transfer_cost=0.0)
    res = prob.run()
    assert res.attrs["objective_usd"] == pytest.approx(10.0)
    assert float(res["stock"].sum()) == pytest.approx(10.0)
    assert float(res["expected_unmet"].sum()) == pytest.approx(0.0, abs=1e-9)
    cmp = sp.alone_vs_joint(prob)
    assert cmp["objective_alone_usd"] == pytest.approx(20.0)
    assert cmp["value_usd"] == pytest.approx(10.0)
    assert res["days_of_consumption"].attrs["units"] == "d" and res["stock"].attrs["units"] == "t"


def test_hand_lp_budget_binds():
    # Budget 4 USD per holder: stock 4 + 4. Joint: each scenario 10 − 8 = 2 t unmet → 8 + 10·2 = 28.
    # Alone: the hit holder has 4 t → 6 t unmet → 8 + ½·60 + ½·60 = 68.
    prob = sp.StockpileProblem(hand_inputs(), budget=4.0, transfer_cost=0.0)
    cmp = sp.alone_vs_joint(prob)
    assert cmp["objective_joint_usd"] == pytest.approx(28.0)
    assert cmp["objective_alone_usd"] == pytest.approx(68.0)
    np.testing.assert_allclose(cmp["joint"]["stock"].values, [[4.0, 4.0]])


def test_transfer_cost_and_own_first():
    res = sp.StockpileProblem(hand_inputs(((10.0, 4.0), (0.0, 10.0))), budget=6.0, transfer_cost=0.5).run()
    assert res.attrs["own_first_violations"] == 0


def test_cvar_matches_empirical():
    inp = hand_inputs(((10.0, 0.0), (0.0, 4.0), (2.0, 2.0), (0.0, 0.0)))
    res = sp.StockpileProblem(inp, joint_budget=3.0, cvar_weight=1.0, cvar_alpha=0.75, transfer_cost=0.0).run()
    loss = (res["unmet"] * inp.unmet_value).sum(["commodity", "holder"])
    worst = float(loss.max())  # α = 0.75 with four equal scenarios: CVaR = the worst one
    assert float(res["cvar_joint"]) == pytest.approx(worst)


def test_feasible_as_budget_grows_and_frontier_monotone():
    prob = sp.StockpileProblem(hand_inputs(((10.0, 0.0), (0.0, 10.0), (6.0, 6.0))), min_days=1.0)
    for b in (2.0, 5.0, 50.0, 500.0):
        assert prob.replace(joint_budget=b).solve().condition == "optimal"
    fr = sp.efficient_frontier(prob, [2.0, 4.0, 8.0, 16.0, 32.0])
    cost = fr["expected_unmet_cost"].values
    assert fr.attrs["monotone"] and np.all(np.diff(cost) <= 1e-6)
    assert np.all(np.diff(fr["cvar_unmet_cost"].values) <= 1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joint_never_worse_than_alone(seed):
    rng = np.random.default_rng(seed)  # SYNTHETIC random shortfalls, seeded
    s = rng.gamma(0.5, 20.0, size=(30, 3, 2)) * (rng.random((30, 3, 2)) < 0.4)
    inp = StockpileInputs(
        shortfall=xr.DataArray(s, dims=["scenario", "commodity", "holder"],
                               coords={"scenario": range(30), "commodity": ["a", "b", "c"], "holder": H}),
        demand_annual=xr.DataArray(rng.uniform(50, 100, (3, 2)), dims=["commodity", "holder"],
                                   coords={"commodity": ["a", "b", "c"], "holder": H}),
        price=xr.DataArray([1.0, 2.0, 3.0], dims=["commodity"], coords={"commodity": ["a", "b", "c"]}))
    cmp = sp.alone_vs_joint(sp.StockpileProblem(inp, budget=30.0, cvar_weight=0.5))
    assert cmp["value_usd"] >= -1e-6
    again = sp.alone_vs_joint(sp.StockpileProblem(inp, budget=30.0, cvar_weight=0.5))
    assert again["objective_joint_usd"] == cmp["objective_joint_usd"]  # same data → same result


def test_infeasible_names_constraint_and_data():
    prob = sp.StockpileProblem(hand_inputs(), budget={"USA": 1.0}, min_days=5.0)
    with pytest.raises(sp.InfeasibleError) as exc:
        prob.run()
    msg = str(exc.value)
    assert "Minimum-stock" in msg and "Budget" in msg and "holder=USA" in msg and "min_days" in msg
    assert isinstance(exc.value, CritminError)


def test_bad_inputs_are_data_errors():
    inp = hand_inputs()
    with pytest.raises(DataError, match="shortfall"):
        StockpileInputs(shortfall=-inp.shortfall, demand_annual=inp.demand_annual, price=inp.price)
    with pytest.raises(DataError, match="price has no value"):
        StockpileInputs(shortfall=inp.shortfall, demand_annual=inp.demand_annual,
                        price=xr.DataArray([1.0], dims=["commodity"], coords={"commodity": ["nickel"]}))
    with pytest.raises(DataError, match="unknown holder"):
        sp.StockpileProblem(inp, budget={"KOR": 3.0})


def test_hook_adds_binding_constraint():
    def cap_usa(model, problem):
        x = model.variables["Stockpile-level"]
        model.add_constraints(x.sel(holder="USA") <= 2.0, name="User-cap-USA")

    base = sp.StockpileProblem(hand_inputs(), transfer_cost=0.0, share=0.0).run()
    res = sp.StockpileProblem(hand_inputs(), transfer_cost=0.0, share=0.0, extra_functionality=cap_usa).run()
    assert float(res["stock"].sel(holder="USA").sum()) == pytest.approx(2.0)
    assert res.attrs["objective_usd"] > base.attrs["objective_usd"]


def test_drawdown_matches_kernel_when_alone():
    from critmin.supplychain import kernel

    rng = np.random.default_rng(3)  # SYNTHETIC monthly gaps
    gaps = rng.uniform(0, 5, size=(1, 2, 6))
    path = xr.DataArray(gaps, dims=["commodity", "holder", "month"],
                        coords={"commodity": ["cobalt"], "holder": H, "month": range(6)})
    stock = xr.DataArray([[8.0, 3.0]], dims=["commodity", "holder"], coords={"commodity": ["cobalt"], "holder": H})
    sim = sp.simulate_drawdown(stock, path, share=0.0, release_max=4.0)
    # the kernel with one stage, one supplier cutting the whole flow: gap = demand · cut
    demand = xr.DataArray(np.full((1, 1, 2), 5.0), dims=["commodity", "stage", "consumer"],
                          coords={"commodity": ["cobalt"], "stage": ["refine"], "consumer": H})
    base = kernel.Baseline(demand=demand,
                           share=xr.ones_like(demand).expand_dims(supplier=["X"]).transpose("commodity", "stage",
                                                                                          "supplier", "consumer"),
                           domestic=xr.zeros_like(demand),
                           price0=xr.DataArray([1.0], dims=["commodity"], coords={"commodity": ["cobalt"]}),
                           elasticity=xr.DataArray([-0.5], dims=["commodity"], coords={"commodity": ["cobalt"]}),
                           price_cap=xr.DataArray([10.0], dims=["commodity"], coords={"commodity": ["cobalt"]}))
    cut = (path.rename(holder="consumer") / 5.0).expand_dims(stage=["refine"], supplier=["X"])
    out = kernel.simulate(base, cut, kernel.Responses(stock0=stock.rename(holder="consumer"), release_max=4.0,
                                                      stock_stage="refine"), months=6)
    np.testing.assert_allclose(sim["release_own"].values,
                               out["released"].sel(stage="refine").transpose("commodity", "consumer", "month").values)
    shared = sp.simulate_drawdown(stock, path, share=1.0, release_max=4.0)
    assert float(shared["unmet"].sum()) <= float(sim["unmet"].sum()) + 1e-9


def test_rules_of_thumb_from_cited_table():
    from critmin.reference.catalog import Catalog

    dem = xr.DataArray([[365.0, 730.0]], dims=["commodity", "holder"], coords={"commodity": ["cobalt"], "holder": H})
    rules = sp.rules_of_thumb(dem, Catalog(), high_risk=["cobalt"])
    jog = rules[rules["rule"].str.contains("JOGMEC") & rules["applies"]]
    assert set(jog["days"]) == {60.0, 180.0}
    row = jog[(jog["days"] == 60.0) & (jog["holder"] == "JPN")].iloc[0]
    assert row["stock_t"] == pytest.approx(120.0)
    assert (~rules["applies"]).any()  # KOMIR labels are reported, not guessed


# ---------------------------------------------------------------------- portfolio MILP
def hand_projects() -> pd.DataFrame:
    """SYNTHETIC: three projects on one commodity 'x'; shortfall 100 t; value 1e6 USD/t; grants only."""
    return pd.DataFrame({"project_id": ["A", "B", "C"], "commodity": ["x"] * 3, "country_iso3": ["USA", "JPN", "AUS"],
                         "stage_id": ["refine"] * 3, "capacity_tpa": [60.0, 50.0, 40.0], "gap_usd_m": [3.0, 2.0, 2.0],
                         "p_produces_within": [1.0, 1.0, 1.0]})


def _shortfall(v=100.0):
    return xr.DataArray([[v]], dims=["scenario", "commodity"], coords={"scenario": [0], "commodity": ["x"]})


def test_hand_milp():
    # budget 4: A alone 60e6 − 3e6 = 57e6; B+C: min(90,100)·1e6 − 4e6 = 86e6; A+B/A+C exceed the budget.
    p = PortfolioProblem(hand_projects(), _shortfall(), xr.DataArray([1e6], dims=["commodity"],
                                                                    coords={"commodity": ["x"]}), {"grant": 4.0})
    p.solve()
    df, tot = p.assign()
    assert set(df.loc[df["selected"], "project_id"]) == {"B", "C"}
    assert tot["objective_usd"] == pytest.approx(86e6)
    assert tot["expected_shortfall_avoided_t"] == pytest.approx(90.0)
    assert tot["shortfall_avoided_t_per_musd"] == pytest.approx(22.5)


def test_milp_country_share_and_infeasible_hook():
    val = xr.DataArray([1e6], dims=["commodity"], coords={"commodity": ["x"]})
    p = PortfolioProblem(hand_projects(), _shortfall(), val, {"grant": 10.0}, max_country_share=0.5)
    p.solve()
    df, _ = p.assign()
    assert df["selected"].sum() >= 2

    def force_a(model, problem):
        model.add_constraints(model.variables["Project-select"].sel(project="A") >= 1, name="Must-fund-A")

    p = PortfolioProblem(hand_projects(), _shortfall(), val, {"grant": 2.0}, extra_functionality=force_a)
    with pytest.raises(sp.InfeasibleError, match=r"Instrument-budget|Must-fund-A"):
        p.solve()


def test_eligibility_reports_reasons_and_csv_errors(tmp_path):
    from critmin.reference.catalog import Catalog

    _ok, bad = eligibility(Catalog().table("projects"), ["rare-earths", "lithium"], start_year=2026, horizon_years=1.0)
    assert not bad.empty and bad["reason"].str.len().gt(0).all()
    assert bad["reason"].str.contains("no capex").any()
    f = tmp_path / "c.csv"
    f.write_text("project_id,country_iso3,commodity,stage_id,capacity_tpa,capex_usd_m,status\n"
                 "P1,USA,lithium,refine,abc,10,feasibility\n")
    with pytest.raises(DataError) as exc:
        read_candidates(f)
    assert "line 2" in str(exc.value) and "capacity_tpa" in str(exc.value)

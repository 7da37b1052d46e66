"""Stockpile LP and finance MILP: hand-solvable optima, properties, diagnosis, hook.

Fixtures are synthetic and labelled as such: 1 commodity ``cobalt``, holders USA and JPN, two equally
likely scenarios in which one holder loses 10 t. Price 1 USD/t, unmet value 10 USD/t, no holding cost.
"""

from __future__ import annotations

import highspy  # noqa: F401  (hard dependencies: a missing solver fails here, it never skips the module)
import linopy  # noqa: F401
import numpy as np
import pandas as pd
import pytest
import xarray as xr

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


# ---------------------------------------------------------------------- portfolio: permitting and the re-run
def _unmet(usa=(0.0, 10.0, 30.0, 100.0), jpn=(0.0, 0.0, 10.0, 0.0)) -> xr.DataArray:
    """SYNTHETIC per-draw unmet demand (draw, commodity, stage, consumer), t over a 12-month horizon."""
    arr = np.zeros((len(usa), 1, 1, 3))
    arr[:, 0, 0, 0], arr[:, 0, 0, 1] = usa, jpn
    arr[:, 0, 0, 2] = 1e6  # ROW is not a holder: never relieved
    return xr.DataArray(arr, dims=["draw", "commodity", "stage", "consumer"],
                        coords={"draw": range(len(usa)), "commodity": ["x"], "stage": ["refine"],
                                "consumer": ["USA", "JPN", "ROW"]})


def _cell(ids):
    return pd.DataFrame({"project_id": ids, "commodity": "x", "capacity_stage": "refine"}).set_index("project_id")


def test_rerun_hand_checked():
    from critmin.optimize import rerun as rr

    # pool L = USA + JPN = [0, 10, 40, 100] t; 360 t/yr for 1 month = 30 t each draw → after [0, 0, 10, 70]
    cap = xr.DataArray([360.0], dims=["project"], coords={"project": ["P"]})
    months = xr.DataArray(np.ones((4, 1)), dims=["draw", "project"], coords={"draw": range(4), "project": ["P"]})
    supply = rr.added_supply(cap, months)
    np.testing.assert_allclose(supply.values[:, 0], 30.0)
    res = rr.rerun_portfolio(_unmet(), supply, _cell(["P"]), ["USA", "JPN"], alphas=(0.75,))
    pool = res.cells.set_index("consumer").loc["USA+JPN"]
    assert pool["expected_shortfall_before_t"] == pytest.approx(37.5)
    assert pool["expected_shortfall_after_t"] == pytest.approx(20.0)
    assert res.totals["expected_shortfall_avoided_t"] == pytest.approx(17.5)
    # α = 0.75, n = 4: VaR = 3rd smallest; CVaR = VaR + Σ(L − VaR)⁺ / (0.25·4)
    assert pool["var_75_before_t"] == pytest.approx(40.0) and pool["cvar_75_before_t"] == pytest.approx(100.0)
    assert pool["var_75_after_t"] == pytest.approx(10.0) and pool["cvar_75_after_t"] == pytest.approx(70.0)
    assert res.totals["cvar_75_avoided_t"] == pytest.approx(30.0)
    # pro rata to the holders: draw 2 leaves 10 t of USA 30 / JPN 10 → USA 7.5; draw 3 leaves 70 t, all USA's
    usa = res.cells.set_index("consumer").loc["USA"]
    assert usa["expected_shortfall_after_t"] == pytest.approx((7.5 + 70.0) / 4)
    assert float(res.after.sel(consumer="JPN").isel(draw=2).item()) == pytest.approx(2.5)
    row = res.projects.iloc[0]
    assert row["standalone_shortfall_avoided_t"] == pytest.approx(17.5) == row["marginal_shortfall_avoided_t"]


def test_rerun_overlap_and_production_probability():
    from critmin.optimize import rerun as rr

    ids = ["A", "B"]
    cap = xr.DataArray([360.0, 360.0], dims=["project"], coords={"project": ids})
    always = xr.DataArray(np.ones((4, 2)), dims=["draw", "project"], coords={"draw": range(4), "project": ids})
    res = rr.rerun_portfolio(_unmet(), rr.added_supply(cap, always), _cell(ids), ["USA", "JPN"])
    # 60 t in each draw: after [0, 0, 0, 40] → 25 t avoided of 37.5; each alone avoids 17.5 (no double count)
    assert res.totals["expected_shortfall_avoided_t"] == pytest.approx(27.5)
    p = res.projects.set_index("project_id")
    assert p.loc["A", "standalone_shortfall_avoided_t"] == pytest.approx(17.5)
    assert p.loc["A", "marginal_shortfall_avoided_t"] == pytest.approx(27.5 - 17.5)
    # production in half the draws (the ones that matter least and most): relief falls
    half = always.copy(data=np.array([[1, 1], [0, 0], [1, 1], [0, 0]], dtype=float))
    res_half = rr.rerun_portfolio(_unmet(), rr.added_supply(cap, half), _cell(ids), ["USA", "JPN"])
    assert res_half.totals["expected_shortfall_avoided_t"] == pytest.approx(40.0 / 4)
    assert res_half.totals["expected_shortfall_avoided_t"] < res.totals["expected_shortfall_avoided_t"]
    # through permitting_draws: a user p (Bernoulli per draw) — lower p, less relief on the same draws
    unmet = _unmet(usa=np.full(2000, 50.0), jpn=np.zeros(2000))
    out = []
    for pp in (1.0, 0.6, 0.2):
        cand = pd.DataFrame({"project_id": ["A"], "country_iso3": ["AUS"], "commodity": ["x"], "stage_id": ["refine"],
                             "status": ["construction"], "p_produces_within": [pp]})
        info, months = rr.permitting_draws(cand, 12, track="ordinary", n=2000, seed=7, start_year=2026)
        assert info.loc["A", "p_produces_within"] == pp
        sup = rr.added_supply(cap.sel(project=["A"]), months)
        out.append(rr.rerun_portfolio(unmet, sup, _cell(["A"]), ["USA", "JPN"]).totals["expected_shortfall_avoided_t"])
    assert out[0] == pytest.approx(50.0) and out[0] > out[1] > out[2] > 0
    assert out[1] == pytest.approx(0.6 * 50.0, rel=0.08) and out[2] == pytest.approx(0.2 * 50.0, rel=0.2)


def test_var_cvar_is_the_risk_estimator():
    from critmin.optimize.rerun import var_cvar
    from critmin.reference.catalog import Catalog
    from critmin.supplychain import risk
    from critmin.supplychain.network import build_network

    net = build_network(Catalog(), commodities=["rare-earths"])
    hz = risk.estimate_hazards(Catalog().table("export_controls"))
    n, seed = 3000, 11
    ens = risk.run_ensemble(net, hz, n_draws=n, months=12, seed=seed, chunk=n)
    # one chunk: run_ensemble's generator is default_rng(SeedSequence(seed).spawn(1)[0]) — same draws here
    L = risk.simulate_unmet(net, hz, n_draws=n, months=12,
                            rng=np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]))
    for a in (0.95, 0.99):
        var, cvar = var_cvar(L, a)
        ref = ens[f"cvar_{round(a * 100)}"].sel(consumer=list(L["consumer"].values))
        np.testing.assert_allclose(cvar.transpose(*ref.dims).values, ref.values, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(var.transpose(*ref.dims).values,
                                   ens[f"var_{round(a * 100)}"].sel(consumer=ref["consumer"]).values, atol=1e-9)


def test_capacity_bases_and_permitting_feed():
    from critmin.optimize import rerun as rr
    from critmin.policy import permitting
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network

    net = build_network(Catalog(), commodities=["rare-earths", "lithium"])
    pr = pd.DataFrame({"project_id": ["ox", "li", "mag", "raw"], "commodity": ["rare-earths", "lithium", "rare-earths",
                                                                             "rare-earths"],
                       "stage_id": ["mine;refine", "mine;refine", "refine;metal;component", "refine"],
                       "capacity_tpa": [4440.0, 40000.0, 10000.0, 100.0],
                       "capacity_unit_basis": ["t/yr NdPr oxide", "t/yr Li2CO3", "t/yr NdFeB magnets", ""]})
    cap = rr.capacity_in_network_basis(pr, net, "refine")
    assert cap.loc["ox", "capacity_tpa_network"] == 4440.0
    assert cap.loc["li", "capacity_tpa_network"] == pytest.approx(40000 * 2 * 6.941 / 73.891)
    assert np.isnan(cap.loc["mag", "capacity_tpa_network"]) and "NdFeB" in cap.loc["mag", "basis_note"]
    assert cap.loc["raw", "capacity_tpa_network"] == 100.0 and "taken to be" in cap.loc["raw", "basis_note"]
    # p equals permitting.p_produces_within on the same generator; tracks apply by country only
    row = Catalog().table("projects").set_index("project_id").loc[["AU-ILUKA-ENEABBA", "US-LAC-THACKER"]].reset_index()
    info, months = rr.permitting_draws(row, 36, track="fast41", n=4000, seed=5, start_year=2026)
    assert info.loc["AU-ILUKA-ENEABBA", "track_used"] == "ordinary" and info.loc["US-LAC-THACKER", "track_used"] == "fast41"
    sub = int(info.loc["US-LAC-THACKER", "permitting_seed"].split(", ")[1].rstrip("])"))
    ref = permitting.p_produces_within(row.iloc[1].to_dict(), 36, "fast41", 4000,
                                       np.random.default_rng(np.random.SeedSequence([5, sub])))
    assert info.loc["US-LAC-THACKER", "p_produces_within"] == ref
    assert float((months.sel(project="US-LAC-THACKER") > 0).mean()) == pytest.approx(ref)
    assert float(months.max()) <= 36.0 and float(months.min()) >= 0.0


def test_invest_select_seeded_and_track_option():
    from typer.testing import CliRunner

    from critmin.cli.main import app
    from critmin.optimize.workflow import invest_select
    from critmin.reference.catalog import Catalog

    kw = dict(candidates=None, budgets={"grant": 500.0, "loan": 3000.0}, draws=300, months=36, holders=["USA", "JPN"],
              start_year=2026, max_country_share=1.0, instruments=None, certified_only=False,
              commodities=["rare-earths"])
    a = invest_select(Catalog(), seed=3, **kw)
    b = invest_select(Catalog(), seed=3, **kw)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    assert a.attrs["seed"] == 3 and "same seed, same draws" in a.attrs["rerun_method"]
    port = a.tables["portfolio"].set_index("project_id")
    assert "p_produces_within" in port and port["p_produces_within"].between(0, 1).all()
    assert port.loc["AU-ILUKA-ENEABBA", "p_source"].startswith("critmin.policy.permitting")
    assert "US-USAR" in set(a.tables["ineligible"]["project_id"])   # NdFeB tonnes are not countable
    c = invest_select(Catalog(), seed=4, **kw)
    assert not c.tables["portfolio"]["p_produces_within"].equals(a.tables["portfolio"]["p_produces_within"])
    res = CliRunner().invoke(app, ["invest", "select", "--budgets", "grant=1", "--track", "fast-41"])
    assert res.exit_code == 2 and "track" in res.output


def test_stockpile_plan_commodity_option():
    from typer.testing import CliRunner

    from critmin.cli.main import app

    res = CliRunner().invoke(app, ["stockpile", "plan", "--commodity", "gallium", "--draws", "100", "--seed", "1",
                                   "--format", "csv"])
    assert res.exit_code == 0, res.output
    body = res.stdout[res.stdout.index("commodity,holder"):]
    plan = pd.read_csv(__import__("io").StringIO(body))
    assert set(plan["commodity"]) == {"gallium"}
    bad = CliRunner().invoke(app, ["stockpile", "plan", "--commodity", "unobtainium", "--draws", "10"])
    assert bad.exit_code == 2


def test_cli_stockpile_frontier_is_monotone(tmp_path):
    """`critmin stockpile plan --frontier`: spend grows and expected unmet cost falls with the budget."""
    import typer
    from typer.testing import CliRunner

    from critmin.cli.optimize_cmd import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    out = tmp_path / "plan.csv"
    res = CliRunner().invoke(app, ["stockpile", "plan", "--commodity", "rare-earths", "--draws", "300", "--seed", "3",
                                   "--frontier", "0,5e6,2e7,1e8", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    fr = pd.read_csv(tmp_path / "plan_frontier.csv").sort_values("budget_usd")
    assert (fr["spend_usd"].diff().dropna() >= -1e-6).all()
    assert (fr["expected_unmet_cost_usd"].diff().dropna() <= 1e-6 * fr["expected_unmet_cost_usd"].max()).all()
    bad = CliRunner().invoke(app, ["stockpile", "plan", "--draws", "50", "--frontier", "a,b"])
    assert bad.exit_code == 2


def test_price_floor_instrument_cost_comes_from_the_pricing_model():
    """The floor instrument's public cost is the §3 floor payout per USD of covered revenue, not a declared rate."""
    from critmin.optimize.workflow import floor_cost_rate
    from critmin.policy.workflow import evaluate_measure

    rate, why = floor_cost_rate(seed=7, paths=500)
    frame, _ = evaluate_measure("floor", preset="dod_mp_ndpr_floor", volume_t=1000.0, paths=500, seed=7)
    cost = float(frame.loc[frame["quantity"] == "government cost, present value", "mean"].iloc[0])
    # covered revenue: 110 USD/kg x 1,000 t/yr for 10 years, monthly, discounted at 5 %/yr (USD M)
    months = np.arange(1, 121) / 12.0
    covered = float((110_000 * 1000 / 12 * 1.05 ** -months).sum()) / 1e6
    assert rate == pytest.approx(cost / covered, rel=1e-9)
    assert 0 < rate < 1 and "pricing model" in why

"""Pricing measures (floor, CfD, offtake, tariff), the price model, NPV/IRR and permitting timelines."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from critmin.errors import ConfigError, DataError
from critmin.policy import measures as M
from critmin.policy import permitting as PM
from critmin.policy import prices as PR
from critmin.policy import workflow as W
from critmin.reference.catalog import Catalog


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog()


# ---------------------------------------------------------------------------------------------------------
# DoD–MP preset


def test_dod_mp_floor_payout_exact():
    # (110 − 60) USD/kg × 1,000 t × 1,000 kg/t = 50,000,000 USD, exactly.
    assert M.floor_payout(60.0, 110.0, 1000 * 1000.0) == 50_000_000.0
    preset = W.load_preset("dod_mp_ndpr_floor")
    assert W.worked_example(preset) == 50_000_000.0 == preset["worked_example"]["payout_usd"]
    assert preset["floor"]["value"] == 110 and preset["years"]["value"] == 10
    assert preset["volume_basis"] == "sold or stockpiled"
    # above the floor nothing is paid; the optional upside share pays the government back
    assert list(M.floor_payout(np.array([60.0, 110.0, 150.0]), 110.0, 1.0)) == [50.0, 0.0, 0.0]
    assert M.floor_payout(150.0, 110.0, 1.0, upside_share=0.3) == pytest.approx(-12.0)


def test_preset_cites_the_curated_projects_row(cat):
    preset = W.load_preset("dod_mp_ndpr_floor")
    cp = preset["cited_project"]
    row = PM.project_row(cat, cp["project_id"])
    assert cp["citation"] == row["citation"] and cp["source_url"] == row["source_url"]
    assert "NdPr price floor $110/kg for 10 yrs" in row["public_support"]
    mtp = PM.project_row(cat, "US-MP-MTP")
    assert "NdPr oxide 1,294 t in 2024" in mtp["capacity_unit_basis"]
    assert preset["volume_t_per_year"]["value"] == 1294


def test_unknown_preset_and_wrong_measure():
    with pytest.raises(ConfigError, match="unknown preset"):
        W.load_preset("nope")
    with pytest.raises(ConfigError, match="floor preset, not cfd"):
        W.evaluate_measure("cfd", preset="dod_mp_ndpr_floor", paths=100)


# ---------------------------------------------------------------------------------------------------------
# Measures, NPV, IRR


def test_cfd_is_antisymmetric_about_the_strike():
    d = np.array([0.0, 5.0, 17.5, 40.0])
    up, down = M.cfd_payments(100.0 + d, 100.0, 3.0), M.cfd_payments(100.0 - d, 100.0, 3.0)
    np.testing.assert_array_equal(up, -down)
    assert M.cfd_payments(90.0, 100.0, 2.0) == 20.0  # price below strike: the government pays


def test_offtake_and_tariff_definitions():
    p = np.array([50.0, 100.0, 150.0])
    np.testing.assert_array_equal(M.offtake_cost(p, 100.0, 2.0), M.cfd_payments(p, 100.0, 2.0))
    np.testing.assert_allclose(M.offtake_cost(p, 100.0, 2.0, resale_haircut=0.1), 200.0 - 0.9 * p * 2.0)
    np.testing.assert_array_equal(M.reference_price(p, reference=120.0), [120.0, 120.0, 150.0])
    np.testing.assert_array_equal(M.tariff_revenue(p, 2.0, reference=120.0), [140.0, 40.0, 0.0])
    np.testing.assert_allclose(M.tariff_revenue(p, 2.0, rate=0.25), 0.5 * p)
    with pytest.raises(ConfigError, match="exactly one"):
        M.tariff_revenue(p, 1.0, rate=0.1, reference=100.0)


def test_npv_and_irr_hand_cases():
    assert M.npv([-100.0, 110.0], 0.10) == pytest.approx(0.0, abs=1e-12)
    assert M.npv([-100.0, 50.0, 60.0], 0.0) == pytest.approx(10.0)
    assert M.npv([-100.0, 0.0, 121.0], 0.10) == pytest.approx(0.0, abs=1e-12)
    assert M.irr([-100.0, 110.0]).rate == pytest.approx(0.10, abs=1e-9)
    assert M.irr([-100.0, 0.0, 121.0]).rate == pytest.approx(0.10, abs=1e-9)
    # annuity: 100 now, 3 × 40.21148036 → 10 %
    assert M.irr([-100.0, 40.21148036, 40.21148036, 40.21148036]).rate == pytest.approx(0.10, abs=1e-8)
    r = M.irr([10.0, 5.0])
    assert math.isnan(r.rate) and "no investment" in r.reason
    r = M.irr([-10.0, -5.0])
    assert math.isnan(r.rate) and "never pays back" in r.reason
    rows = np.array([[-100.0, 110.0], [-100.0, 121.0], [5.0, 5.0]])
    res = M.irr(rows)
    np.testing.assert_allclose(res.rate[:2], [0.10, 0.21], atol=1e-9)
    assert math.isnan(res.rate[2]) and res.reason[0] == ""


def test_project_cashflows_hand_check():
    prices = np.full((2, 24), 10.0)                 # 2 paths, 2 years of monthly steps, USD/M
    cf = M.project_cashflows(100.0, 12.0, 5.0, prices, 2)
    np.testing.assert_allclose(cf, [[-100.0, 60.0, 60.0]] * 2)
    floor = M.Measure("floor", price=20.0, years=1)  # +10 USD/M × 12 M in year 1 only
    np.testing.assert_allclose(M.project_cashflows(100.0, 12.0, 5.0, prices, 2, floor), [[-100.0, 180.0, 60.0]] * 2)
    with pytest.raises(ConfigError):
        M.Measure("floor", price=0.0)


# ---------------------------------------------------------------------------------------------------------
# Price model


def _ou_path(kappa, mu, sigma, dt, n, rng, lam=0.0, jm=0.0, js=0.0):
    phi = math.exp(-kappa * dt)
    sd = sigma * math.sqrt((1 - phi**2) / (2 * kappa))
    x = np.empty(n)
    x[0] = mu
    jumps = rng.poisson(lam * dt, n) * (jm + js * rng.standard_normal(n))
    eps = rng.standard_normal(n)
    for t in range(1, n):
        x[t] = mu + phi * (x[t - 1] - mu) + sd * eps[t] + jumps[t]
    return pd.Series(np.exp(x))


def test_calibration_recovers_known_parameters():
    # 3,000 monthly points (250 years), seed 7. Tolerances ≈ 3 standard errors of each estimator:
    # se(kappa) ≈ sqrt(2 kappa / T) = 0.08, se(sigma) ≈ sigma / sqrt(2 n) = 0.003, se(mu) ≈ sigma/(kappa sqrt T) = 0.02.
    s = _ou_path(0.8, math.log(100.0), 0.25, 1 / 12, 3000, np.random.default_rng(7))
    fit = PR.calibrate_ou_log(s, 1 / 12)
    assert fit["kappa"] == pytest.approx(0.8, abs=0.25)
    assert fit["sigma"] == pytest.approx(0.25, abs=0.015)
    assert fit["mu"] == pytest.approx(math.log(100.0), abs=0.07)
    assert fit["jump_intensity"] < 0.1            # no jumps simulated: only ~0.27 % false flags
    assert fit["n_obs"] == 3000 and fit["mean_reversion"]


def test_calibration_recovers_jumps():
    # lambda 0.5/yr of +0.4 (sd 0.1) log jumps on a monthly residual sd of 0.07: most jumps exceed 3 s.
    s = _ou_path(0.8, math.log(100.0), 0.25, 1 / 12, 3000, np.random.default_rng(11), lam=0.5, jm=0.4, js=0.1)
    fit = PR.calibrate_ou_log(s, 1 / 12)
    assert fit["jump_intensity"] == pytest.approx(0.5, abs=0.15)
    assert fit["jump_mean"] == pytest.approx(0.4, abs=0.06)
    assert fit["sigma"] == pytest.approx(0.25, abs=0.02)


def test_calibration_rejects_short_or_bad_series():
    with pytest.raises(DataError, match="needs at least 11"):
        PR.calibrate_ou_log(pd.Series([1.0, 2.0, 3.0, 2.0, 1.0]), 1.0)
    with pytest.raises(DataError, match="> 0"):
        PR.calibrate_ou_log(pd.Series([1.0, -2.0] * 10), 1.0)


def test_simulation_same_seed_identical_and_stationary_variance():
    params = {"kappa": 1.0, "mu": math.log(50.0), "sigma": 0.3, "jump_intensity": 0.2, "jump_mean": 0.5,
              "jump_sd": 0.1}
    a = PR.simulate_paths(params, 50.0, 5, 12, 500, np.random.default_rng(3))
    b = PR.simulate_paths(params, 50.0, 5, 12, 500, np.random.default_rng(3))
    c = PR.simulate_paths(params, 50.0, 5, 12, 500, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.shape == (500, 60)
    # exact transition: after many half-lives, Var(ln P) = sigma^2 / (2 kappa) without jumps
    no_jump = dict(params, jump_intensity=0.0)
    x = np.log(PR.simulate_paths(no_jump, 50.0, 10, 4, 20_000, np.random.default_rng(5))[:, -1])
    assert x.var() == pytest.approx(0.045, rel=0.05)


def test_calibrate_for_bundled_series(cat):
    cu = PR.calibrate_for(cat, "copper")
    assert cu["frequency"] == "monthly" and cu["n"] == 240 and cu["series"] == "COPPER"
    nd = PR.calibrate_for(cat, "ndpr")
    assert nd["n"] == 5 and nd["p0"] == 69.0 and nd["unit"] == "USD/kg"
    assert any("too short" in n for n in nd["notes"])
    # every simulation parameter is estimated, and says from what
    for key in ("kappa", "mu", "sigma", "jump_intensity", "jump_mean", "jump_sd"):
        assert nd["provenance"][key].startswith("estimated")
        assert math.isfinite(nd["params"][key])
    assert "n = 31" in nd["provenance"]["kappa"] and "n = 5" in nd["provenance"]["mu"]
    with pytest.raises(DataError, match="needs at least 11"):
        PR.calibrate_for(cat, "cobalt")
    with pytest.raises(ConfigError, match="no price series"):
        PR.calibrate_for(cat, "unobtainium")


def test_floor_workflow_records_seed_and_is_reproducible(cat):
    kw = dict(preset="dod_mp_ndpr_floor", paths=500, seed=9, capex_usd_m=500.0, unit_cost=40.0, catalog=cat)
    f1, meta = W.evaluate_measure("floor", **kw)
    f2, _ = W.evaluate_measure("floor", **kw)
    pd.testing.assert_frame_equal(f1, f2)
    run = f1[f1["section"] == "run"].set_index("quantity")
    assert run.loc["seed", "mean"] == 9 and meta["seed"] == 9
    assert set(f1.loc[f1["section"] == "parameter", "quantity"]) >= {"kappa (mean-reversion speed)",
                                                                     "sigma (diffusion volatility)", "jump intensity"}
    res = f1.set_index("quantity")
    cost = res.loc["government cost, present value"]
    assert cost["p5"] <= cost["p50"] <= cost["p95"] and cost["mean"] > 0
    # the floor only adds to the project's cash: NPV with ≥ NPV without at every percentile
    for stat in ("mean", "p5", "p50", "p95"):
        assert res.loc["NPV with measure", stat] >= res.loc["NPV without measure", stat]


def test_cfd_workflow_fixes_the_project_price(cat):
    f, _ = W.evaluate_measure("cfd", commodity="copper", price=9000.0, volume_t=10_000, years=5, paths=300,
                              capex_usd_m=100.0, unit_cost=6000.0, catalog=cat)
    npv_with = f.set_index("quantity").loc["NPV with measure"]
    # (9000 − 6000) USD/t × 10,000 t = 30 USD m a year, 5 years at 5 %, minus 100: the same on every path
    expected = -100.0 + sum(30.0 / 1.05**t for t in range(1, 6))
    assert npv_with["p5"] == pytest.approx(expected) and npv_with["p95"] == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(preset="dod_mp_ndpr_floor", volume_t=-5), "volume"),
    (dict(commodity="ndpr", price=0.0, volume_t=10), "--floor must be > 0"),
    (dict(commodity="ndpr", price=100.0), "--volume"),
    (dict(preset="dod_mp_ndpr_floor", years=0), "--years"),
    (dict(preset="dod_mp_ndpr_floor", discount_rate=5.0), "--rate"),
])
def test_bad_measure_inputs(cat, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        W.evaluate_measure("floor", paths=100, catalog=cat, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Permitting

GREENFIELD = {"project_id": "T-MINE", "stage_id": "mine", "status": "exploration", "country": "USA"}


def test_anchor_mean_and_range_match_the_cited_lead_time():
    years = PM.time_to_first_production(GREENFIELD, "ordinary", 100_000, np.random.default_rng(1)) / 12
    assert years.mean() == pytest.approx(15.7, rel=0.01)        # S&P 2023 mean, demand_parameters
    lo, hi = np.quantile(years, [1 / 128, 127 / 128])           # expected min/max of 127 mines: S&P 6–32 yr
    assert 5.0 < lo < 8.0 and 28.0 < hi < 37.0


def test_remaining_stages_from_curated_rows(cat):
    def stages(pid):
        return PM.remaining_stages(PM.project_row(cat, pid)).stages

    assert stages("US-PPTA-STIBNITE") == ("construction",)                     # final federal permit
    assert stages("US-TALON-TAMARACK") == ("environmental_review", "permits", "construction")
    assert stages("US-ALB-KINGSMTN") == ("permits", "construction")
    assert stages("US-IONEER-RR") == ("feasibility", "construction")           # fully permitted, pre-FID
    assert stages("US-MP-DOD-2025") == ("environmental_review", "permits", "construction")  # site to be chosen
    assert stages("US-MP-IND") == () and stages("US-MP-MTP") == ()
    assert PM.remaining_stages(PM.project_row(cat, "US-LAC-THACKER")).partial_construction
    with pytest.raises(ConfigError, match="programme or framework"):
        PM.remaining_stages(PM.project_row(cat, "US-JP-FRAMEWORK"))
    with pytest.raises(DataError, match="not mapped"):
        PM.remaining_stages({"project_id": "X", "stage_id": "mine", "status": "dreaming"})
    with pytest.raises(ConfigError, match="unknown project"):
        PM.project_row(cat, "NOPE")


@pytest.mark.parametrize("stage_id, cap", [("mine", 27.0), ("refine", 15.0)])
def test_eu_crma_cap_respected(stage_id, cap):
    proj = {"project_id": "EU-T", "stage_id": stage_id, "status": "permitting", "country": "SWE"}
    crma = PM.sample_timeline(proj, "eu_crma", 20_000, np.random.default_rng(2))
    ordinary = PM.sample_timeline(proj, "ordinary", 20_000, np.random.default_rng(2))
    assert crma.permit.max() <= cap and ordinary.permit.max() > cap   # the cap binds
    assert np.all(crma.total <= ordinary.total)
    with pytest.raises(ConfigError, match="does not apply"):
        PM.sample_timeline(dict(proj, country="USA"), "eu_crma", 10, np.random.default_rng(0))


def test_fast_track_not_slower_than_ordinary(cat):
    row = PM.project_row(cat, "US-TALON-TAMARACK")
    fast = PM.time_to_first_production(row, "fast41", 20_000, np.random.default_rng(3))
    slow = PM.time_to_first_production(row, "ordinary", 20_000, np.random.default_rng(3))
    assert np.all(fast <= slow)                                      # path by path (common random numbers)
    assert np.all(np.quantile(fast, [0.05, 0.5, 0.95]) <= np.quantile(slow, [0.05, 0.5, 0.95]))
    assert PM.p_produces_within(row, 60, "fast41", 5000, np.random.default_rng(3)) >= PM.p_produces_within(
        row, 60, "ordinary", 5000, np.random.default_rng(3))
    with pytest.raises(ConfigError, match="does not apply"):
        PM.time_to_first_production(PM.project_row(cat, "AU-ARAFURA-NOLANS"), "fast41", 10)


def test_value_of_faster_permitting_non_negative_and_monotone(cat):
    row = PM.project_row(cat, "US-TALON-TAMARACK")
    vals = [PM.value_of_faster_permitting(row, m, 100.0, 72.0, "ordinary", 5000, np.random.default_rng(4))
            ["expected_avoided_t"] for m in (0, 1, 3, 6, 12, 24, 120)]
    assert vals[0] == 0.0 and all(v >= 0 for v in vals)
    assert all(b >= a for a, b in itertools.pairwise(vals))
    # no permit stage left: faster permitting is worth nothing
    done = PM.value_of_faster_permitting(PM.project_row(cat, "US-PPTA-STIBNITE"), 6, 100.0, 72.0, n=1000,
                                         rng=np.random.default_rng(0))
    assert done["expected_avoided_t"] == 0.0
    assert PM.p_produces_within(PM.project_row(cat, "US-MP-MTP"), 1, n=10, rng=np.random.default_rng(0)) == 1.0
    with pytest.raises(ConfigError):
        PM.value_of_faster_permitting(row, -1, 100.0, 72.0)


# ---------------------------------------------------------------------------------------------------------
# CLI


def _cli() -> typer.Typer:
    from critmin.cli.policy_cmd import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return app


def test_cli_floor_json_and_permitting_csv(tmp_path):
    app, runner = _cli(), CliRunner()
    res = runner.invoke(app, ["policy", "floor", "--preset", "dod_mp_ndpr_floor", "--paths", "300", "--seed", "5",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = {(r["section"], r["quantity"]): r for r in doc["rows"]}
    assert rows[("run", "seed")]["mean"] == 5 and ("parameter", "jump intensity") in rows
    assert {s["id"] for s in doc["sources"]} >= {"usgs-mcs-2026", "usgs-ds140-rare-earths", "curated-projects"}
    out = tmp_path / "p.csv"
    res = runner.invoke(app, ["policy", "permitting", "--project", "US-TALON-TAMARACK", "--track", "fast41",
                              "--paths", "500", "--relief", "50", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "time to first production (fast41)" in set(pd.read_csv(out)["quantity"])


@pytest.mark.parametrize("args", [
    ["floor", "--preset", "dod_mp_ndpr_floor", "--volume", "-5"],
    ["floor", "--commodity", "ndpr", "--floor", "0", "--volume", "10"],
    ["floor", "--commodity", "unobtainium", "--floor", "10", "--volume", "10"],
    ["cfd", "--commodity", "cobalt", "--strike", "10", "--volume", "10"],
    ["tariff", "--commodity", "ndpr", "--reference", "90", "--tariff-rate", "0.1", "--nonmarket-volume", "5"],
    ["permitting", "--project", "NOPE"],
    ["permitting", "--project", "US-TALON-TAMARACK", "--track", "eu_crma"],
    ["permitting", "--project", "US-TALON-TAMARACK", "--months-saved", "a,b"],
])
def test_cli_bad_input_exits_2(args):
    res = CliRunner().invoke(_cli(), ["policy", *args])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output


def test_tariff_ad_valorem_runs_end_to_end():
    """An ad valorem tariff (no reference price) is described as such and prices without error."""
    from critmin.policy.workflow import evaluate_measure

    frame, _meta = evaluate_measure("tariff", commodity="copper", rate=0.25, nonmarket_volume_t=5000.0,
                                   volume_t=1000.0, paths=200, seed=1)
    cost = frame[frame["metric"] == "government cost, present value"] if "metric" in frame else frame.iloc[:1]
    assert len(cost) == 1
    assert any("ad valorem 25.0%" in str(v) for v in frame.astype(str).to_numpy().ravel())

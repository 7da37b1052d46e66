"""Monte Carlo supply risk: hazard estimator, sampling, the ensemble vs kernel.simulate, statistics, Dask, CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from critmin.errors import DataError
from critmin.supplychain import kernel, risk
from critmin.supplychain.kernel import Baseline, Responses

# --- a hand-made catalogue: counts you can check on paper ------------------------------------------------


def _events() -> pd.DataFrame:
    rows = [
        # CHN, widget ore: 2 events in 2010–2019 (one ended after 12 months, one open)
        ("E1", "CHN", "widget", "mine", "ban", "all", "2012-01", "2012-01-01", "2013-01-01"),
        ("E2", "CHN", "widget", "mine", "quota", "all", "2016-06", "2016-06-01", ""),
        # AUS: one licensing event on refined widget, targeted at JPN
        ("E3", "AUS", "widget", "refine", "licensing", "JPN", "2018-01", "2018-01-01", ""),
        # outside the window: not counted
        ("E4", "CHN", "widget", "refine", "ban", "all", "2009-01", "2009-01-01", ""),
        # technology: moves no tonnes
        ("E5", "CHN", "widget", "", "ban", "all", "2015-01", "2015-01-01", ""),
    ]
    cols = ["event_id", "country", "commodity", "stage_id", "measure", "targets", "announced", "effective", "ended"]
    return pd.DataFrame(rows, columns=cols)


def test_estimator_known_counts():
    hz = risk.estimate_hazards(_events(), start_year=2010, end_year=2019, as_of="2020-01-01")
    T = 10.0
    assert hz.attrs["exposure_years"] == pytest.approx(T, rel=1e-3)
    row = hz[(hz.country == "CHN") & (hz.commodity == "widget") & (hz.stage == "mine")].iloc[0]
    assert row.n_events == 2
    # Jeffreys–Poisson predictive: 1 − (T/(T+1))^(n+½)
    assert row.p_annual == pytest.approx(1 - (hz.attrs["exposure_years"] / (hz.attrs["exposure_years"] + 1)) ** 2.5)
    assert row.w_ban == 0.5 and row.w_quota == 0.5
    prior = hz[(hz.country == "CHN") & (hz.commodity == "*")].iloc[0]
    assert prior.n_events == 0 and prior.p_annual == pytest.approx(1 - (T / (T + 1)) ** 0.5, rel=1e-3)
    aus = hz[(hz.country == "AUS") & (hz.commodity == "widget") & (hz.stage == "refine")].iloc[0]
    assert aus.target == "JPN" and aus.stage == "refine" and aus.w_licensing == 1.0
    # refine events also cover the metal stage (PROCESSED_STAGES)
    assert ((hz.country == "AUS") & (hz.stage == "metal")).any()
    assert not (hz.events.str.contains("E4") | hz.events.str.contains("E5")).any()
    # Kaplan–Meier over E1 (12.0 months, ended), E2 (censored), E3 (censored): one step at ~12 months, 1/3
    km = hz.attrs["duration_km"]
    assert km["n"] == 3 and km["observed"] == 1
    assert km["months"][0] == pytest.approx(12.0, abs=0.1) and km["cdf"][0] == pytest.approx(1 / 3)


def test_estimator_bundled_catalogue_judgements():
    from critmin.reference.catalog import Catalog

    hz = risk.estimate_hazards(Catalog().table("export_controls"))
    counted = set(hz.attrs["counted_events"])
    assert "CHN-WTO-DS431" not in counted and "CHN-2025-NOV-70-SUSP" not in counted
    assert {"CHN-2010-REE-QUOTA", "COD-2025-CO-SUSP", "IDN-2020-NI-BAN"} <= counted
    assert hz.attrs["exposure_years"] == pytest.approx(16.0, abs=0.01)
    ree = hz[(hz.country == "CHN") & (hz.commodity == "rare-earths") & (hz.stage == "refine") & (hz.target == "all")]
    assert int(ree.n_events.iloc[0]) == 2


def test_overrides_yaml_and_csv(tmp_path):
    y = tmp_path / "h.yml"
    y.write_text("background_rate: 0.01\nmagnitudes:\n  licensing: [0.2, 0.3]\nhazards:\n"
                 "  - {country: AUS, commodity: widget, stage: mine, p_annual: 0.2, duration_months: 6}\n")
    hz = risk.estimate_hazards(_events(), start_year=2010, end_year=2019, overrides=y)
    row = hz[(hz.country == "AUS") & (hz.stage == "mine")].iloc[0]
    assert row.p_annual == 0.2 and row.duration_months == 6 and "h.yml, line 5" in row.source
    assert hz.attrs["magnitudes"]["licensing"]["lo"] == 0.2
    assert (hz.country == "*").any()
    c = tmp_path / "h.csv"
    c.write_text("country,commodity,stage,p_annual\nAUS,widget,mine,0.3\n")
    hz = risk.estimate_hazards(_events(), overrides=c)
    assert hz[(hz.country == "AUS") & (hz.stage == "mine")].p_annual.iloc[0] == 0.3


@pytest.mark.parametrize(("name", "text", "line", "column"), [
    ("bad.csv", "country,commodity,stage,p_annual\nAUS,widget,mine,0.3\nCHN,widget,mine,1.7\n", 3, "p_annual"),
    ("bad.csv", "country,colour\nAUS,red\n", 1, "colour"),
    ("bad.yml", "hazards:\n  - {country: AUS, p_annual: 0.1}\n  - {country: CHN, stage: smelt}\n", 3, "stage"),
    ("bad.yml", "magnitudes:\n  ban: [0.5, 0.2]\n", 2, "ban"),
    ("bad.yml", "hazards:\n  - {country: AUS, measure: embargo}\n", 2, "measure"),
])
def test_bad_hazards_file(tmp_path, name, text, line, column):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError) as exc:
        risk.load_overrides(p)
    assert exc.value.file == name and exc.value.row == line and exc.value.column == column
    assert f"line {line}" in str(exc.value)


# --- a hand-built network --------------------------------------------------------------------------------

COMMS, STAGES_, SUPP, CONS = ["widget", "gadget"], ["mine", "refine"], ["CHN", "AUS", "USA", "ROW"], ["USA", "JPN",
                                                                                                       "ROW"]


def _baseline() -> Baseline:
    demand = xr.DataArray(np.array([[[100.0, 50.0, 800.0], [120.0, 60.0, 700.0]],
                                    [[10.0, 0.0, 90.0], [20.0, 5.0, 70.0]]]),
                          dims=["commodity", "stage", "consumer"],
                          coords={"commodity": COMMS, "stage": STAGES_, "consumer": CONS})
    share = xr.zeros_like(demand.expand_dims(supplier=SUPP).transpose("commodity", "stage", "supplier", "consumer"))
    # consumer USA: 30 % home, CHN 50 %, AUS 20 %; JPN: CHN 70 %, AUS 30 %; ROW: CHN 60 %, AUS 10 %, ROW 30 %
    mix = {"USA": {"USA": 0.3, "CHN": 0.5, "AUS": 0.2}, "JPN": {"CHN": 0.7, "AUS": 0.3},
           "ROW": {"CHN": 0.6, "AUS": 0.1, "ROW": 0.3}}
    for k, m in mix.items():
        for i, v in m.items():
            share.loc[{"supplier": i, "consumer": k}] = v
    domestic = xr.zeros_like(demand)
    domestic.loc[{"consumer": "USA"}] = 0.3
    one = xr.DataArray(np.ones(2), dims=["commodity"], coords={"commodity": COMMS})
    return Baseline(demand=demand, share=share, domestic=domestic, price0=one * 1000, elasticity=one * -0.3,
                    price_cap=one * 10)


def _hazards() -> pd.DataFrame:
    ev = pd.DataFrame([
        ("E1", "CHN", "widget;gadget", "mine;refine", "ban", "all", "2012-01", "2012-01-01", "2013-01-01"),
        ("E2", "CHN", "widget", "refine", "quota", "all", "2016-06", "2016-06-01", ""),
        ("E3", "AUS", "widget", "mine", "licensing", "JPN", "2018-01", "2018-01-01", "2018-04-01"),
        ("E4", "CHN", "gadget", "refine", "licensing", "USA", "2019-01", "2019-01-01", ""),
    ], columns=["event_id", "country", "commodity", "stage_id", "measure", "targets", "announced", "effective",
                "ended"])
    return risk.estimate_hazards(ev, start_year=2010, end_year=2019, as_of="2020-06-01")


def _responses(stock: bool = True) -> Responses:
    c = xr.DataArray(np.zeros((2, 3)), dims=["commodity", "consumer"], coords={"commodity": COMMS, "consumer": CONS})
    return Responses(leakage=0.1, ramp=0.2, substitution=0.1, recycling=0.05,
                     stock0=c + (40.0 if stock else 0.0), release_max=c + 15.0, stock_stage="refine",
                     response_start=1)


@pytest.mark.parametrize("stock", [True, False])
def test_fast_path_equals_kernel(stock):
    base, hz, resp = _baseline(), _hazards(), _responses(stock)
    n = 1000
    cut = risk.sample_cuts(hz, base, n, 12, np.random.default_rng(11), responses=resp)
    assert cut.dims == ("draw", "commodity", "stage", "supplier", "consumer", "month")
    ref = kernel.simulate(base, cut, resp, months=12)["cumulative_unmet"].isel(month=-1)
    fast = risk.simulate_unmet(base, hz, resp, n_draws=n, months=12, rng=np.random.default_rng(11))
    ref = ref.transpose(*fast.dims)
    assert float(ref.max()) > 0 and int((fast > 0).sum()) > 50
    np.testing.assert_allclose(fast.values, ref.values, rtol=1e-9, atol=1e-9)


def test_seed_reproducible_and_statistics_consistent():
    base, hz, resp = _baseline(), _hazards(), _responses()
    a = risk.run_ensemble(base, hz, resp, n_draws=30_000, seed=5, chunk=7_000)
    b = risk.run_ensemble(base, hz, resp, n_draws=30_000, seed=5, chunk=7_000)
    c = risk.run_ensemble(base, hz, resp, n_draws=30_000, seed=6, chunk=7_000)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert not np.array_equal(a["expected_shortfall"].values, c["expected_shortfall"].values)
    assert a.attrs["seed"] == 5 and a.attrs["n_draws"] == 30_000 and "Jeffreys" in a.attrs["estimator"]
    assert "USA+JPN" in a["consumer"].values
    assert bool(((a.p_shortfall >= 0) & (a.p_shortfall <= 1)).all())
    assert bool((a.var_95 <= a.cvar_95 + 1e-9).all()) and bool((a.var_99 <= a.cvar_99 + 1e-9).all())
    assert bool((a.cvar_95 <= a.cvar_99 + 1e-9).all()) and bool((a.var_95 <= a.var_99).all())
    assert bool((a.expected_shortfall <= a.cvar_95 + 1e-9).all())
    np.testing.assert_allclose(a.contribution.sum("supplier").values, a.expected_shortfall.values, rtol=1e-9,
                               atol=1e-9)
    assert float(a.expected_shortfall.sum()) > 0


def test_bloc_quantiles_from_summed_draws():
    base, hz, resp = _baseline(), _hazards(), _responses()
    n, seed = 20_000, 9
    ds = risk.run_ensemble(base, hz, resp, n_draws=n, seed=seed, chunk=n)   # one chunk: the same draws as below
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    L = risk.simulate_unmet(base, hz, resp, n_draws=n, months=12, rng=rng).sel(commodity="widget", stage="refine")
    bloc = np.sort((L.sel(consumer="USA") + L.sel(consumer="JPN")).values)
    var95 = bloc[math.ceil(0.95 * n) - 1]
    got = ds.sel(commodity="widget", stage="refine", consumer="USA+JPN")
    assert float(got.var_95) == var95
    assert float(got.cvar_95) == pytest.approx(var95 + np.sum(np.clip(bloc - var95, 0, None)) / (0.05 * n), rel=1e-12)
    assert float(got.expected_shortfall) == pytest.approx(bloc.mean(), rel=1e-12)
    members = ds.sel(commodity="widget", stage="refine", consumer=["USA", "JPN"])
    assert float(got.var_99) != pytest.approx(float(members.var_99.sum()), rel=1e-6)   # not the sum of quantiles


def test_one_var_cvar_estimator():
    """The ensemble's VaR/CVaR (from merged tails) and var_cvar on the same draws are one estimator: equal to the
    bit; the portfolio re-run uses that function."""
    from critmin.optimize import rerun
    from critmin.supplychain import reporting

    assert rerun.var_cvar is reporting.var_cvar is risk.var_cvar
    base, hz, resp = _baseline(), _hazards(), _responses()
    n, seed = 20_000, 9
    ds = risk.run_ensemble(base, hz, resp, n_draws=n, seed=seed, chunk=n)   # one chunk: the draws below
    L = risk.simulate_unmet(base, hz, resp, n_draws=n, months=12,
                            rng=np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]))
    for a in risk.ALPHAS:
        var, cvar = risk.var_cvar(L, a)
        tag = round(a * 100)
        ref = ds.sel(consumer=list(L["consumer"].values))
        np.testing.assert_array_equal(var.transpose(*ref[f"var_{tag}"].dims).values, ref[f"var_{tag}"].values)
        np.testing.assert_array_equal(cvar.transpose(*ref[f"cvar_{tag}"].dims).values, ref[f"cvar_{tag}"].values)
    assert float(ds["cvar_99"].max()) > 0
    # by hand: 10 losses, α = 0.8 → VaR the 8th smallest (7), CVaR = 7 + (1 + 2) / (0.2 · 10) = 8.5
    x = xr.DataArray(np.array([0, 0, 1, 2, 3, 4, 5, 7, 8, 9.0]), dims=["draw"])
    var, cvar = risk.var_cvar(x, 0.8)
    assert float(var) == 7.0 and float(cvar) == 8.5
    assert reporting.var_cvar_tail(np.array([7.0, 8.0, 9.0]), 10, 0.8) == (7.0, 8.5)


def test_dask_local_cluster_bit_identical():
    pytest.importorskip("distributed")
    from distributed import Client

    base, hz, resp = _baseline(), _hazards(), _responses()
    local = risk.run_ensemble(base, hz, resp, n_draws=20_000, seed=42, chunk=2_500)
    with risk.local_cluster(2) as cluster, Client(cluster) as client:
        remote = risk.run_ensemble(base, hz, resp, n_draws=20_000, seed=42, chunk=2_500, scheduler=client)
    for v in local.data_vars:
        np.testing.assert_array_equal(local[v].values, remote[v].values)
    assert remote.attrs["seed"] == 42


# --- CLI ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_app():

    from critmin.cli import risk_cmd
    from critmin.cli.main import app

    if not any(getattr(c, "name", None) == "risk" for c in app.registered_commands):
        risk_cmd.register(app)
    return app


@pytest.mark.parametrize("args", [["--draws", "0"], ["--format", "yaml"], ["--workers", "2", "--scheduler", "x:1"],
                                  ["--months", "0"], ["--importer", "XXX"], ["--commodity", "unobtainium"],
                                  ["--format", "xlsx"]])
def test_cli_bad_options_exit_2(cli_app, args):
    res = CliRunner().invoke(cli_app, ["risk", *args])
    assert res.exit_code == 2, res.output
    assert "error" in res.output


def test_cli_bad_hazards_file_exit_2(cli_app, tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("country,p_annual\nCHN,2\n")
    res = CliRunner().invoke(cli_app, ["risk", "--hazards", str(p), "--draws", "100"])
    assert res.exit_code == 2 and "h.csv" in res.output and "line 2" in res.output and "p_annual" in res.output


def test_cli_runs_on_bundled_data(cli_app, tmp_path):
    out = tmp_path / "r.csv"
    res = CliRunner().invoke(cli_app, ["risk", "--commodity", "gallium,germanium,graphite", "--draws", "5000",
                                       "--seed", "3", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert set(frame.consumer) == {"USA", "JPN", "USA+JPN"} and (frame.seed == 3).all()
    assert (frame.n_draws == 5000).all()
    g = frame[(frame.commodity == "graphite") & (frame.consumer == "USA")]
    assert (g.expected_shortfall_t > 0).any() and g.top_contributors.str.contains("CHN").any()


def test_bloc_with_a_member_of_unknown_demand_is_unknown():
    """USA+JPN nickel refine: Japan's demand is unknown in the network, so the bloc's figures are unknown (NaN),
    not the USA's alone, and a note says why."""
    import math

    from critmin.supplychain.risk import assess_risk

    _ds, frame, meta = assess_risk("USA,USA+JPN", ["nickel"], draws=500, seed=3)
    row = frame[(frame["consumer"] == "USA+JPN") & (frame["stage"] == "refine")].iloc[0]
    assert math.isnan(row["demand_t"]) and math.isnan(row["expected_shortfall_t"])
    assert any("USA+JPN nickel refine: unknown" in n and "JPN" in n for n in meta["notes"])
    usa = frame[(frame["consumer"] == "USA") & (frame["stage"] == "refine")].iloc[0]
    assert usa["demand_t"] > 0

"""Workflows behind ``critmin stockpile plan|simulate`` and ``critmin invest select`` (the CLI only calls these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY
from critmin.errors import ConfigError
from critmin.optimize.inputs import HOLDER, StockpileInputs, from_ensemble
from critmin.supplychain.shared_ensemble import Ensemble, build_ensemble


@dataclass
class Outcome:
    """Tables to print/write and notes for the user."""

    tables: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


def _ensemble(catalog, ensemble, seed: int, commodities: list[str] | None):
    """The ensemble given (the analysis's one), or the one ``critmin risk --seed SEED`` runs."""
    if ensemble is not None:
        return ensemble
    return build_ensemble(catalog, seed=seed, commodities=commodities)


def ensemble_inputs(catalog, *, draws: int, months: int, seed: int, holders: list[str],
                    commodities: list[str] | None = None, stage: str = "refine",
                    ensemble: Ensemble | None = None) -> StockpileInputs:
    """The supply-chain ensemble's per-draw unmet demand adapted to the stockpile contract.

    Shortfall t over ``months`` at ``stage`` per draw; demand t/yr and price USD/t from the network baseline.
    ``ensemble``: the analysis's one :class:`~critmin.supplychain.shared_ensemble.Ensemble` (default: the one
    ``critmin risk`` runs with ``seed``); its first ``draws`` draws over ``months`` are used.
    """
    ens = _ensemble(catalog, ensemble, seed, commodities)
    net, unmet = ens.network, ens.unmet(months, draws)
    ds = xr.Dataset({"shortfall": unmet, "demand": net.baseline.demand, "price0": net.baseline.price0})
    ds.attrs.update({"seed": ens.seed, "n_draws": draws, "horizon_months": months, "stock_stage": stage})
    missing = [h for h in holders if h not in list(unmet["consumer"].values)]
    if missing:
        raise ConfigError(f"holder(s) {missing} are not consumers of the network "
                          f"({', '.join(map(str, unmet['consumer'].values))})")
    if commodities:   # the ensemble covers critmin risk's commodities too; keep those asked for
        ds = ds.sel({COMMODITY: [c for c in ds[COMMODITY].values if c in set(commodities)]})
    inp = from_ensemble(ds, stage=stage, holders=holders)
    # commodities with no demand at this stage for every holder cannot be stockpiled meaningfully
    keep = (inp.demand_annual > 0).any(HOLDER)
    if not bool(keep.all()):
        sel = {COMMODITY: keep[COMMODITY][keep].values}
        inp = StockpileInputs(shortfall=inp.shortfall.sel(sel), demand_annual=inp.demand_annual.sel(sel),
                              price=inp.price.sel(sel), weight=inp.weight, horizon_years=inp.horizon_years,
                              provenance=inp.provenance)
    return inp


#: Stage at which the stockpile is held (and its tonnes counted): refined material.
STOCK_STAGE = "refine"


def with_stock_basis(plan: pd.DataFrame, basis: dict[tuple[str, str], str], stage: str) -> pd.DataFrame:
    """``plan`` with ``unit`` (of ``stock_t`` and the other ``*_t`` columns: metric tonnes) and ``basis`` (what a
    tonne is of: the network's basis of each commodity at ``stage``, e.g. "REO equivalent", "Ga content")
    after ``stock_t``; the existing columns are kept as they are."""
    out = plan.copy()
    at = list(out.columns).index("stock_t") + 1 if "stock_t" in out else len(out.columns)
    out.insert(at, "unit", "t")
    out.insert(at + 1, "basis", [basis.get((str(c), stage), f"not stated at the {stage} stage")
                                 for c in out[COMMODITY]])
    return out


def stockpile_plan(catalog, *, holders: list[str], draws: int, months: int, seed: int,
                   budget: float | None, joint_budget: float | None, share: float, cvar_alpha: float,
                   cvar_weight: float, min_days: float | None, high_risk: list[str],
                   commodities: list[str] | None = None, frontier: list[float] | None = None,
                   ensemble: Ensemble | None = None) -> Outcome:
    """Optimal complementary plan, its comparison with stockpiling alone and with rules of thumb.

    ``ensemble``: the analysis's one ensemble (e.g. the brief's); otherwise the one ``critmin risk`` runs with
    ``seed``. The LP solves on its first ``draws`` draws over ``months``."""
    from critmin.optimize import stockpile as sp

    ens = _ensemble(catalog, ensemble, seed, commodities)
    net = ens.network
    inp = ensemble_inputs(catalog, draws=draws, months=months, seed=seed, holders=holders, commodities=commodities,
                          ensemble=ens, stage=STOCK_STAGE)
    prob = sp.StockpileProblem(inp, budget=budget, joint_budget=joint_budget, share=share, cvar_alpha=cvar_alpha,
                               cvar_weight=cvar_weight, min_days=min_days)
    cmp = sp.alone_vs_joint(prob)
    res = cmp["joint"]
    plan = res[["stock", "days_of_consumption", "stock_value", "expected_shortfall_no_stock",
                "expected_unmet"]].to_dataframe().reset_index()
    plan = plan.rename(columns={"stock": "stock_t", "days_of_consumption": "days", "stock_value": "stock_usd",
                                "expected_shortfall_no_stock": "expected_shortfall_no_stock_t",
                                "expected_unmet": "expected_unmet_t"})
    plan = with_stock_basis(plan, net.basis, STOCK_STAGE)
    holders_tab = res[["spend", "holding_cost", "expected_unmet_cost_no_stock", "expected_unmet_cost",
                       "risk_reduction", "cvar_unmet_cost_no_stock", "cvar_unmet_cost"]].to_dataframe().reset_index()
    holders_tab.columns = [c if c == HOLDER else f"{c}_usd" for c in holders_tab.columns]
    rules = sp.rules_of_thumb(inp.demand_annual, catalog, high_risk=high_risk)
    comparison = sp.compare_with_rules(prob, rules, optimum=res)
    comparison = pd.concat([comparison, pd.DataFrame([{
        "plan": "each holder alone (share 0)", "spend_usd": float(cmp["alone"]["spend"].sum()),
        "expected_unmet_t": float(cmp["alone"]["expected_unmet"].sum()),
        "expected_unmet_cost_usd": float(cmp["alone"]["expected_unmet_cost"].sum()),
        "cvar_unmet_cost_usd": float(cmp["alone"]["cvar_joint"]),
        "objective_usd": cmp["objective_alone_usd"]}])], ignore_index=True)
    notes = [f"ensemble: {ens.describe(months, draws)}; stage {STOCK_STAGE}; "
             "stock_t, expected_shortfall_no_stock_t and expected_unmet_t in tonnes of the basis column",
             f"value of complementarity (alone − joint expected cost): {cmp['value_usd']:,.0f} USD",
             f"own-first violations: {res.attrs['own_first_violations']}",
             *res.attrs["assumptions"]]
    unmapped = rules[~rules["applies"]]
    notes += [f"rule not applied: {r.rule} ({r.note})" for r in unmapped.itertuples()]
    tables = {"plan": plan, "holders": holders_tab, "comparison": comparison}
    if frontier:
        if any(b < 0 for b in frontier):
            raise ConfigError(f"--frontier budgets must be >= 0 USD (got {frontier})")
        fr = sp.efficient_frontier(prob, frontier)
        tables["frontier"] = fr.to_dataframe().reset_index().rename(columns={
            "budget": "budget_usd", "spend": "spend_usd", "expected_unmet": "expected_unmet_t",
            "expected_unmet_cost": "expected_unmet_cost_usd", "cvar_unmet_cost": "cvar_unmet_cost_usd",
            "days_of_consumption": "mean_days"})
        notes.append(f"efficient frontier over {len(frontier)} joint budgets (monotone: {fr.attrs.get('monotone')})")
    return Outcome(tables, notes,
                   {"value_usd": cmp["value_usd"], "objective_usd": res.attrs["objective_usd"]})


def stockpile_simulate(catalog, *, plan_csv: Path, holders: list[str], draws: int, months: int, seed: int,
                       share: float) -> Outcome:
    """Drawdown of a plan (CSV commodity, holder, stock_t) month by month against the ensemble's mean path."""
    from critmin.frames import read_csv
    from critmin.optimize.stockpile import simulate_drawdown

    plan = read_csv(plan_csv, ("commodity", "holder", "stock_t"), "plan")
    inp = ensemble_inputs(catalog, draws=draws, months=months, seed=seed, holders=holders)
    stock = plan.set_index(["commodity", "holder"])["stock_t"].to_xarray().fillna(0.0)
    stock = stock.reindex_like(inp.demand_annual).fillna(0.0)
    # spread each draw's horizon shortfall evenly over the months (the per-month path is not returned per draw)
    month = xr.DataArray(np.arange(months), dims=["month"], coords={"month": np.arange(months)})
    path = inp.shortfall / months + 0.0 * month
    sim = simulate_drawdown(stock, path, share=share)
    w = inp.weight
    out = (sim[["release_own", "release_to_partner", "unmet", "stock"]] * w).sum("scenario")
    table = out.to_dataframe().reset_index()
    return Outcome({"drawdown": table}, [f"expected path over {draws} draws (seed {seed}); shortfall spread "
                                         "evenly over the months of each draw"])


def invest_select(catalog, *, candidates: Path | None, budgets: dict[str, float], draws: int, months: int,
                  seed: int, holders: list[str], start_year: int, max_country_share: float,
                  instruments: Path | None, certified_only: bool, track: str = "ordinary",
                  commodities: list[str] | None = None, stage: str = "refine", allied_group: str = "msp",
                  ensemble: Ensemble | None = None) -> Outcome:
    """Select projects × instruments (MILP), then evaluate the selection by re-running the ensemble's draws.

    Steps: (1) the supply-chain ensemble, ``draws`` draws over ``months`` with ``default_rng(seed)``;
    (2) each candidate's time to first production from :mod:`critmin.policy.permitting` on ``track`` where it
    applies by country (seeded per project, see :func:`critmin.optimize.rerun.permitting_draws`), giving
    ``p_produces_within`` over the horizon — the expected-start-year rule only where permitting cannot model
    the project; (3) capacity converted to the network's basis at the objective ``stage``
    (:func:`critmin.optimize.rerun.capacity_in_network_basis`), projects whose basis cannot be converted are
    ineligible with the reason; (4) the MILP (:class:`critmin.optimize.portfolio.PortfolioProblem`);
    (5) the re-run (:func:`critmin.optimize.rerun.rerun_portfolio`): the same draws' unmet demand of the holders
    less the selected projects' output in the draws where they produce; (6) allied (``allied_group``) share of
    world output gained per stage.

    Returns
    -------
    Outcome
        Tables ``portfolio`` (ranked; p, t avoided, CVaR avoided, allied share gained, t per USD m),
        ``rerun`` (expected shortfall, VaR, CVaR before/after per commodity × stage × holder and pool, t),
        ``allied_share`` (per stage), ``ineligible``; ``attrs`` the totals with units in the keys.
    """
    from critmin.importers import groups
    from critmin.optimize import portfolio as pf
    from critmin.optimize import rerun as rr
    from critmin.policy.permitting import TRACKS

    if track not in TRACKS:   # checked before the ensemble runs: a typo costs nothing
        raise ConfigError(f"unknown --track {track!r}; expected one of {', '.join(TRACKS)}")
    if draws < 1 or months < 1:
        raise ConfigError(f"--draws and --months must be ≥ 1 (got {draws}, {months})")
    ens = _ensemble(catalog, ensemble, seed, commodities)
    inp = ensemble_inputs(catalog, draws=draws, months=months, seed=seed, holders=holders, stage=stage,
                          ensemble=ens)
    net, unmet = ens.network, ens.unmet(months, draws)
    table = catalog.table("projects").copy()
    if candidates is not None:
        table = pd.concat([table, pf.read_candidates(candidates)], ignore_index=True)
    inst = pf.read_instruments(instruments) if instruments is not None else None
    if inst is None or "price_floor" not in inst.index or str(inst.loc["price_floor"].get("reason", "")).startswith(
            "assumption"):
        # the floor's cost to the public purse comes from the §3 pricing model, not a declared rate
        inst = (pf.INSTRUMENTS if inst is None else inst).copy()
        if "price_floor" not in inst.index:
            inst.loc["price_floor"] = pf.INSTRUMENTS.loc["price_floor"]
        rate, why = floor_cost_rate(seed)
        inst.loc["price_floor", "cost_rate"] = rate
        inst.loc["price_floor", "reason"] = why
    # every candidate (cheap: one timeline sample each), so no reason in 'ineligible' is an artefact of skipping
    permit_info, producing = rr.permitting_draws(table, months, track=track, n=draws, seed=seed,
                                                 start_year=start_year)
    p_in = permit_info["p_produces_within"].dropna().to_dict()
    ok, bad = pf.eligibility(table, inp.commodities, start_year=start_year, horizon_years=inp.horizon_years,
                             p_produces_within=p_in, certified_only=certified_only)
    notes = [f"ensemble: {ens.describe(months, draws)}; "
             f"objective stage {stage}; holders {'+'.join(holders)}",
             f"permitting: track {track} where it applies by country (else ordinary), {draws} timeline draws per "
             f"project, generator SeedSequence([{seed}, crc32(project_id)])"]
    fallback = permit_info[permit_info["p_source"].str.startswith("fallback")]
    notes += [f"p_produces_within of {pid} from the expected-start-year fallback: {r.p_source}"
              for pid, r in fallback.iterrows()]
    if not ok.empty:
        cap = rr.capacity_in_network_basis(ok, net, stage)
        ok = ok.join(cap, on="project_id")
        uncountable = ok["capacity_tpa_network"].isna()
        bad = pd.concat([bad, pd.DataFrame({"project_id": ok.loc[uncountable, "project_id"],
                                            "name": ok.loc[uncountable, "name"],
                                            "reason": "capacity not countable: " + ok.loc[uncountable, "basis_note"]})],
                        ignore_index=True)
        ok = ok[~uncountable].copy()
        ok["capacity_stated_tpa"] = ok["capacity_tpa"].astype(float)
        ok["capacity_tpa"] = ok["capacity_tpa_network"]
    notes.insert(0, f"{len(bad)} of {len(table)} projects not eligible (see table 'ineligible')")
    if ok.empty:
        return Outcome({"ineligible": bad}, [*notes, "no eligible project: nothing to select"],
                       {"seed": seed, "n_draws": draws, "track": track})
    prob = pf.PortfolioProblem(ok, inp.shortfall, inp.unmet_value.mean(HOLDER), budgets, instruments=inst,
                               horizon_years=inp.horizon_years, max_country_share=max_country_share)
    prob.solve()
    ranked, totals = prob.assign()
    ranked = ranked.rename(columns={"capacity_tpa": "capacity_tpa_network",
                                    "standalone_relief_t": "milp_standalone_relief_t",
                                    "marginal_relief_t": "milp_marginal_relief_t",
                                    "relief_t_per_musd": "milp_relief_t_per_musd"})
    extra = ok.set_index("project_id")[["capacity_stated_tpa", "capacity_stage", "network_basis", "basis_note"]]
    ranked = ranked.join(extra, on="project_id")
    ranked = ranked.join(permit_info[["track_used", "median_months_to_production", "p_source"]], on="project_id")
    # ---- the re-run on the same draws, every eligible project (what it would add alone) and the portfolio
    ids = ok["project_id"].astype(str).tolist()
    cell = ok.set_index("project_id")[["commodity", "capacity_stage"]]
    capn = xr.DataArray(ok["capacity_tpa_network"].to_numpy(float), dims=["project"], coords={"project": ids})
    supply = rr.added_supply(capn, producing.sel(project=ids))
    selected = ranked.loc[ranked["selected"], "project_id"].astype(str).tolist()
    alone = rr.rerun_portfolio(unmet, supply, cell, holders)
    port = rr.rerun_portfolio(unmet, supply.sel(project=selected), cell, holders) if selected else None
    per = alone.projects.set_index("project_id")[["mean_added_supply_t", "p_producing_in_draws",
                                                  "standalone_shortfall_avoided_t", "standalone_cvar_95_avoided_t"]]
    if port is not None:
        per = per.join(port.projects.set_index("project_id")[["marginal_shortfall_avoided_t",
                                                              "marginal_cvar_95_avoided_t"]])
    else:
        per = per.assign(marginal_shortfall_avoided_t=np.nan, marginal_cvar_95_avoided_t=np.nan)
    ranked = ranked.join(per, on="project_id")
    for col in ("marginal_shortfall_avoided_t", "marginal_cvar_95_avoided_t"):
        ranked[col] = ranked[col].where(ranked["selected"], 0.0)
    # solver round-off (1e-12 USD m on unselected projects) is not money
    money = [c for c in ranked.columns if c.endswith("_usd_m") and c != "financing_gap_usd_m"] + ["public_cost_usd"]
    ranked[money] = ranked[money].where(ranked[money].abs() > 1e-6, 0.0)
    cost_m = (ranked["public_cost_usd"] / 1e6).where(ranked["selected"] & (ranked["public_cost_usd"] > 0))
    ranked["shortfall_avoided_t_per_musd"] = ranked["marginal_shortfall_avoided_t"] / cost_m
    # ---- allied share per stage: each project alone (its row) and the portfolio (table)
    allied = groups()[allied_group]["members"]
    added = ok.assign(country=ok["country_iso3"].astype(str))[["project_id", "commodity", "capacity_stage",
                                                               "capacity_tpa_network", "country"]]
    solo = {pid: rr.allied_share_gain(net, added[added["project_id"] == pid], allied)["allied_share_gained"].iloc[0]
            for pid in ids}
    ranked["allied_share_gained"] = ranked["project_id"].map(solo)
    share_tab = rr.allied_share_gain(net, added[added["project_id"].isin(selected)], allied)
    cost_total = float(ranked["public_cost_usd"].sum())
    rerun_totals = port.totals if port is not None else {"expected_shortfall_avoided_t": 0.0,
                                                         "cvar_95_avoided_t": 0.0, "cvar_99_avoided_t": 0.0}
    totals.update({
        "rerun_expected_shortfall_before_t": port.totals["expected_shortfall_before_t"] if port else np.nan,
        "rerun_expected_shortfall_after_t": port.totals["expected_shortfall_after_t"] if port else np.nan,
        "rerun_expected_shortfall_avoided_t": rerun_totals["expected_shortfall_avoided_t"],
        "rerun_cvar_95_avoided_t": rerun_totals["cvar_95_avoided_t"],
        "rerun_cvar_99_avoided_t": rerun_totals["cvar_99_avoided_t"],
        "rerun_shortfall_avoided_t_per_musd": (rerun_totals["expected_shortfall_avoided_t"] / (cost_total / 1e6)
                                               if cost_total > 0 else np.nan),
        "allied_share_gained_by_stage": {f"{r.commodity}:{r.stage}": round(float(r.allied_share_gained), 6)
                                         for r in share_tab.itertuples()},
        "seed": seed, "n_draws": draws, "months": months, "track": track, "rerun_method": rr.METHOD})
    cols = ["rank", "project_id", "name", "country", "commodity", "selected", "capacity_stated_tpa",
            "capacity_unit_basis", "capacity_stage", "capacity_tpa_network", "network_basis", "p_produces_within",
            "track_used", "median_months_to_production", "financing_gap_usd_m",
            *[c for c in ranked.columns if c.endswith("_usd_m") and c != "financing_gap_usd_m"], "public_cost_usd",
            "mean_added_supply_t", "standalone_shortfall_avoided_t", "marginal_shortfall_avoided_t",
            "standalone_cvar_95_avoided_t", "marginal_cvar_95_avoided_t", "allied_share_gained",
            "shortfall_avoided_t_per_musd", "milp_standalone_relief_t", "milp_marginal_relief_t",
            "milp_relief_t_per_musd", "basis_note", "p_source"]
    # rank the selection by the re-run's shortfall avoided per USD m of public cost (the evaluation, not the
    # MILP's linearised screen); unselected projects follow by what they would avoid alone
    ranked = ranked.sort_values(["selected", "shortfall_avoided_t_per_musd", "standalone_shortfall_avoided_t"],
                                ascending=[False, False, False], na_position="last")
    # unselected projects have no rank (missing, never 0)
    ranked["rank"] = pd.array(np.where(ranked["selected"], np.cumsum(ranked["selected"].to_numpy()), 0),
                              dtype="Int64")
    ranked.loc[~ranked["selected"].astype(bool), "rank"] = pd.NA
    ranked = ranked[cols].reset_index(drop=True)
    notes += [f"{k}: {v}" for k, v in totals.items()]
    tables = {"portfolio": ranked, "rerun": port.cells if port is not None else pd.DataFrame(),
              "allied_share": share_tab, "ineligible": bad,
              "instruments": inst.reset_index().rename(columns={"index": "instrument"})}
    notes.append(f"price_floor cost to the public purse: {float(inst.loc['price_floor', 'cost_rate']):.3f} per USD "
                 f"of covered revenue ({inst.loc['price_floor', 'reason']})")
    return Outcome(tables, notes, totals)


def floor_cost_rate(seed: int, paths: int = 2000) -> tuple[float, str]:
    """Public cost of the price-floor instrument per USD of covered revenue, from the pricing model (§3).

    Prices the cited DoD–MP NdPr floor (``critmin policy floor --preset dod_mp_ndpr_floor``) and divides the
    expected present value of the payouts by the present value of the revenue the floor covers
    (floor × volume, discounted the same way): the instrument's cost per dollar of support. The NdPr floor is
    the only cited floor in the bundled data, so its economics stand for any floor (the output says so).
    """
    from critmin.policy import measures as M
    from critmin.policy.workflow import DEFAULT_RATE, STEPS_PER_YEAR, evaluate_measure
    from critmin.policy.workflow import load_preset as load_policy_preset

    pre = load_policy_preset("dod_mp_ndpr_floor")
    floor_usd_t = float(pre["floor"]["value"]) * 1000.0          # USD/kg -> USD/t
    years = int(pre["years"]["value"])
    volume = 1000.0                                                # t/yr: the ratio does not depend on it
    frame, _meta = evaluate_measure("floor", preset="dod_mp_ndpr_floor", volume_t=volume, paths=paths, seed=seed)
    cost_musd = float(frame.loc[frame["quantity"] == "government cost, present value", "mean"].iloc[0])
    steps = np.full(years * STEPS_PER_YEAR, floor_usd_t * volume / STEPS_PER_YEAR)
    covered_musd = float(M.present_value_steps(steps, DEFAULT_RATE, STEPS_PER_YEAR)) / 1e6
    rate = cost_musd / covered_musd
    reason = (f"from the pricing model: DoD–MP NdPr floor {pre['floor']['value']} USD/kg, {years} yr, "
              f"{paths} price paths, seed {seed}: expected PV payout USD {cost_musd:,.1f} M per USD "
              f"{covered_musd:,.1f} M of covered revenue (PV at {DEFAULT_RATE:.0%}/yr); applied to any floor")
    return rate, reason


def parse_budgets(text: str) -> dict[str, float]:
    """``grant=100,loan=500`` (USD m) → dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, val = part.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"--budgets: {part!r} is not instrument=USD_m") from None
    return out


__all__ = ["Outcome", "ensemble_inputs", "invest_select", "parse_budgets", "stockpile_plan",
           "stockpile_simulate"]

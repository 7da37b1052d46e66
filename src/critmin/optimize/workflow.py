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


@dataclass
class Outcome:
    """Tables to print/write and notes for the user."""

    tables: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


def ensemble_inputs(catalog, *, draws: int, months: int, seed: int, holders: list[str],
                    commodities: list[str] | None = None, stage: str = "refine") -> StockpileInputs:
    """Run the supply-chain Monte Carlo (per-draw unmet demand) and adapt it to the stockpile contract.

    Shortfall t over ``months`` at ``stage`` per draw; demand t/yr and price USD/t from the network baseline.
    """
    from critmin.supplychain import risk
    from critmin.supplychain.network import build_network

    net = build_network(catalog, commodities=commodities)
    hz = risk.estimate_hazards(catalog.table("export_controls"))
    unmet = risk.simulate_unmet(net, hz, n_draws=draws, months=months, rng=np.random.default_rng(seed))
    ds = xr.Dataset({"shortfall": unmet, "demand": net.baseline.demand, "price0": net.baseline.price0})
    ds.attrs.update({"seed": seed, "n_draws": draws, "horizon_months": months, "stock_stage": stage})
    missing = [h for h in holders if h not in list(unmet["consumer"].values)]
    if missing:
        raise ConfigError(f"holder(s) {missing} are not consumers of the network "
                          f"({', '.join(map(str, unmet['consumer'].values))})")
    inp = from_ensemble(ds, stage=stage, holders=holders)
    # commodities with no demand at this stage for every holder cannot be stockpiled meaningfully
    keep = (inp.demand_annual > 0).any(HOLDER)
    if not bool(keep.all()):
        sel = {COMMODITY: keep[COMMODITY][keep].values}
        inp = StockpileInputs(shortfall=inp.shortfall.sel(sel), demand_annual=inp.demand_annual.sel(sel),
                              price=inp.price.sel(sel), weight=inp.weight, horizon_years=inp.horizon_years,
                              provenance=inp.provenance)
    return inp


def stockpile_plan(catalog, *, holders: list[str], draws: int, months: int, seed: int,
                   budget: float | None, joint_budget: float | None, share: float, cvar_alpha: float,
                   cvar_weight: float, min_days: float | None, high_risk: list[str],
                   commodities: list[str] | None = None) -> Outcome:
    """Optimal complementary plan, its comparison with stockpiling alone and with rules of thumb."""
    from critmin.optimize import stockpile as sp

    inp = ensemble_inputs(catalog, draws=draws, months=months, seed=seed, holders=holders, commodities=commodities)
    prob = sp.StockpileProblem(inp, budget=budget, joint_budget=joint_budget, share=share, cvar_alpha=cvar_alpha,
                               cvar_weight=cvar_weight, min_days=min_days)
    cmp = sp.alone_vs_joint(prob)
    res = cmp["joint"]
    plan = res[["stock", "days_of_consumption", "stock_value", "expected_shortfall_no_stock",
                "expected_unmet"]].to_dataframe().reset_index()
    plan = plan.rename(columns={"stock": "stock_t", "days_of_consumption": "days", "stock_value": "stock_usd",
                                "expected_shortfall_no_stock": "expected_shortfall_no_stock_t",
                                "expected_unmet": "expected_unmet_t"})
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
    notes = [f"ensemble: {draws} draws, {months} months, seed {seed}, stage refine (critmin.supplychain.risk)",
             f"value of complementarity (alone − joint expected cost): {cmp['value_usd']:,.0f} USD",
             f"own-first violations: {res.attrs['own_first_violations']}",
             *res.attrs["assumptions"]]
    unmapped = rules[~rules["applies"]]
    notes += [f"rule not applied: {r.rule} ({r.note})" for r in unmapped.itertuples()]
    return Outcome({"plan": plan, "holders": holders_tab, "comparison": comparison}, notes,
                   {"value_usd": cmp["value_usd"], "objective_usd": res.attrs["objective_usd"]})


def stockpile_simulate(catalog, *, plan_csv: Path, holders: list[str], draws: int, months: int, seed: int,
                       share: float) -> Outcome:
    """Drawdown of a plan (CSV commodity, holder, stock_t) month by month against the ensemble's mean path."""
    from critmin.errors import DataError
    from critmin.optimize.stockpile import simulate_drawdown

    try:
        plan = pd.read_csv(plan_csv)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read plan: {exc}", file=str(plan_csv)) from None
    for col in ("commodity", "holder", "stock_t"):
        if col not in plan.columns:
            raise DataError("missing column", file=str(plan_csv), row=1, column=col)
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
                  instruments: Path | None, certified_only: bool) -> Outcome:
    """Rank projects × instruments by expected shortfall avoided (MILP)."""
    from critmin.optimize import portfolio as pf

    inp = ensemble_inputs(catalog, draws=draws, months=months, seed=seed, holders=holders)
    table = catalog.table("projects").copy()
    if candidates is not None:
        table = pd.concat([table, pf.read_candidates(candidates)], ignore_index=True)
    inst = pf.read_instruments(instruments) if instruments is not None else None
    ok, bad = pf.eligibility(table, inp.commodities, start_year=start_year, horizon_years=inp.horizon_years,
                             certified_only=certified_only)
    notes = [f"{len(bad)} of {len(table)} projects not eligible (see table 'ineligible')"]
    if ok.empty:
        return Outcome({"ineligible": bad}, [*notes, "no eligible project: nothing to select"])
    prob = pf.PortfolioProblem(ok, inp.shortfall, inp.unmet_value.mean(HOLDER), budgets, instruments=inst,
                               horizon_years=inp.horizon_years, max_country_share=max_country_share)
    prob.solve()
    ranked, totals = prob.assign()
    notes += [f"{k}: {v}" for k, v in totals.items()]
    return Outcome({"portfolio": ranked, "ineligible": bad}, notes, totals)


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


__all__ = ["Outcome", "ensemble_inputs", "invest_select", "parse_budgets", "stockpile_plan", "stockpile_simulate"]

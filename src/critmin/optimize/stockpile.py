"""Complementary stockpile: a two-stage stochastic LP over (commodity, holder, scenario), built with linopy.

Formulation (c commodity or commodity/form, h holder, p partner ≠ h, s scenario with weight w_s)
------------------------------------------------------------------------------------------------
First stage
    ``Stockpile-level``   x[c,h] ≥ 0, t
Second stage (per scenario)
    ``Release-own``        r[c,h,s] ∈ [0, d[c,h,s]], t            d = shortfall without stock
    ``Release-to-partner`` q[c,h,p,s] ≥ 0, t                     from holder h's stock to p's consumers
    ``Unmet``              u[c,h,s] ≥ 0, t
    ``CVaR-var`` ζ (USD), ``CVaR-excess`` η[s] ≥ 0 (USD)          only with a CVaR weight λ > 0
Constraints
    ``Budget``          Σ_c P_c x[c,h] ≤ B_h (per holder) and/or Σ_{c,h} P_c x[c,h] ≤ B (joint)   USD
    ``Storage-limit``   x[c,h] ≤ X̄[c,h]                                                             t
    ``Minimum-stock``   x[c,h] ≥ m[c,h] · D[c,h] / 365     (days rule, e.g. JOGMEC 60 days)          t
    ``Release-limit``   r[c,h,s] + Σ_p q[c,h,p,s] ≤ x[c,h]                                          t
    ``Sharing-rule``    Σ_p q[c,h,p,s] ≤ σ_h · (x[c,h] − r[c,h,s])                                  t
    ``Demand-balance``  r[c,h,s] + Σ_{h'} q[c,h',h,s] + u[c,h,s] = d[c,h,s]                          t
    ``CVaR-excess``     η[s] ≥ Σ_{c,h} V[c,h] u[c,h,s] − ζ                                            USD
Objective (USD)
    κ·Σ (P_c + H[c,h]·T) x  +  Σ_s w_s Σ (V u + τ Σ_p q)  +  λ (ζ + Σ_s w_s η_s / (1 − α))

The sharing rule: each holder first releases to its own consumers; partners may then draw up to a share σ_h
of what is left in the holder's stock (σ = 1: everything left; σ = 0: stockpiling alone). Strict
own-first priority is a complementarity condition (q > 0 ⇒ own need met) that an LP cannot state; it holds
at the optimum whenever a holder values its own unmet demand at least as much as its partner's net of the
compensation τ (V_own ≥ V_partner − τ), and a positive τ (compensation or logistics cost per tonne shipped
to a partner) breaks ties towards own use. :meth:`StockpileProblem.assign` counts violations
(``attrs["own_first_violations"]``) so a user with other valuations sees it.

The Demand-balance is an equality (the brief sketched ≥): with ≥ a zero-cost over-release is an equally
optimal, misleading answer; with = the Unmet variable is exactly the residual shortfall.

References
----------
Rockafellar, R. T. & Uryasev, S. (2000). Optimization of conditional value-at-risk. Journal of Risk 2(3).
Birge, J. R. & Louveaux, F. (2011). Introduction to Stochastic Programming, 2nd ed., Springer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, SCENARIO
from critmin.errors import CritminError, DataError
from critmin.optimize.inputs import HOLDER, PARTNER, StockpileInputs
from critmin.optimize.solve import InfeasibleError, _solve, diagnose_infeasibility, weighted_cvar


@dataclass
class SolveResult:
    """Outcome of :meth:`StockpileProblem.solve`.

    Attributes
    ----------
    status : str            linopy status (``ok``, ``warning``)
    condition : str         termination condition (``optimal``, ``infeasible`` …)
    objective : float       USD (NaN when not optimal)
    build_s, solve_s : float  wall-clock seconds of build and solve
    """

    status: str
    condition: str
    objective: float
    build_s: float = float("nan")
    solve_s: float = float("nan")


def _as_holder(x, holders: list[str], name: str) -> xr.DataArray | None:
    """Scalar, dict or DataArray → DataArray (holder,); None stays None."""
    if x is None:
        return None
    if isinstance(x, dict):
        unknown = set(x) - set(holders)
        if unknown:
            raise DataError(f"{name} names unknown holder(s) {sorted(unknown)}; holders: {holders}", column=name)
        x = xr.DataArray([float(x.get(h, np.inf)) for h in holders], coords={HOLDER: holders}, dims=[HOLDER])
    elif not isinstance(x, xr.DataArray):
        x = xr.DataArray(np.full(len(holders), float(x)), coords={HOLDER: holders}, dims=[HOLDER])
    x = x.astype(float)
    if bool((x < 0).any()) or bool(np.isnan(x).any()):
        raise DataError(f"{name} must be ≥ 0 (NaN not allowed): {x.values.tolist()}", column=name)
    return x


class StockpileProblem:
    """Two-stage stockpile LP: build → solve → assign.

    Parameters
    ----------
    inputs : StockpileInputs
        Shortfall ensemble (scenario, commodity, holder) t, demand t/yr, prices USD/t, values USD/t.
    budget : float, dict or DataArray (holder,), optional
        Acquisition budget per holder, USD (∞ or missing holder = no limit).
    joint_budget : float, optional
        Joint acquisition budget of all holders, USD.
    storage_max : DataArray (commodity, holder), optional
        Storage capacity, t (∞ = none).
    min_days : float or DataArray (commodity, holder), optional
        Minimum stock in days of consumption, d (a stockpile rule the plan must respect).
    share : float or dict/DataArray (holder,)
        σ, share of a holder's remaining stock its partners may draw (0..1). 0 = each holder alone.
    transfer_cost : float or DataArray (commodity,), optional
        τ, compensation/logistics per tonne released to a partner, USD/t. Default 10⁻⁴ × price: a
        tie-breaker only, so that with equal valuations a holder serves its own consumers first.
    cvar_alpha : float
        CVaR confidence level α (0..1), e.g. 0.95: the mean of the worst 5 % of scenario losses.
    cvar_weight : float
        λ ≥ 0, weight of the CVaR of the unmet-demand cost (USD) in the objective.
    cost_weight : float
        κ, weight of acquisition + holding cost (1 = plain expected cost; frontiers use a small κ).
    extra_functionality : callable(model, problem), optional
        Hook called after the model is built and before the objective is set: add variables/constraints.
    fixed_stock : DataArray (commodity, holder), optional
        Evaluate a given plan (t): adds ``Fixed-stock`` x = plan.
    solver_options : dict, optional
        Passed to HiGHS.
    """

    def __init__(self, inputs: StockpileInputs, *, budget=None, joint_budget: float | None = None,
                 storage_max: xr.DataArray | None = None, min_days=None, share=1.0, transfer_cost=None,
                 cvar_alpha: float = 0.95, cvar_weight: float = 0.0, cost_weight: float = 1.0,
                 extra_functionality: Callable | None = None, fixed_stock: xr.DataArray | None = None,
                 solver_options: dict | None = None) -> None:
        self.inputs = inputs
        hs = inputs.holders
        self.budget = _as_holder(budget, hs, "budget")
        if joint_budget is not None and not (float(joint_budget) >= 0):
            raise DataError(f"joint_budget must be ≥ 0 USD; got {joint_budget}", column="joint_budget")
        self.joint_budget = None if joint_budget is None else float(joint_budget)
        self.storage_max = storage_max
        self.min_days = min_days
        self.share = _as_holder(share, hs, "share")
        if bool((self.share > 1).any()):
            raise DataError(f"share must be in [0, 1]; got {self.share.values.tolist()}", column="share")
        self.transfer_cost = 1e-4 * inputs.price if transfer_cost is None else transfer_cost
        if not 0.0 < cvar_alpha < 1.0:
            raise DataError(f"cvar_alpha must be in (0, 1); got {cvar_alpha}", column="cvar_alpha")
        if cvar_weight < 0 or cost_weight < 0:
            raise DataError("cvar_weight and cost_weight must be ≥ 0", column="cvar_weight")
        self.cvar_alpha, self.cvar_weight, self.cost_weight = float(cvar_alpha), float(cvar_weight), float(cost_weight)
        self.extra_functionality = extra_functionality
        self.fixed_stock = fixed_stock
        self.solver_options = dict(solver_options or {})
        self.model = None
        self.result: SolveResult | None = None

    def replace(self, **changes) -> StockpileProblem:
        """A copy with some parameters changed (the inputs are shared, not copied)."""
        new = copy.copy(self)
        params = {k: getattr(self, k) for k in ("joint_budget", "storage_max", "min_days", "transfer_cost",
                                                "cvar_alpha", "cvar_weight", "cost_weight", "extra_functionality",
                                                "fixed_stock", "solver_options")}
        params["budget"], params["share"] = self.budget, self.share
        params.update(changes)
        new.__init__(self.inputs, **params)
        return new

    # ------------------------------------------------------------------ build
    def _minimum_stock(self) -> xr.DataArray | None:
        if self.min_days is None:
            return None
        days = self.min_days if isinstance(self.min_days, xr.DataArray) else xr.DataArray(float(self.min_days))
        if bool((days < 0).any()):
            raise DataError("min_days must be ≥ 0 days", column="min_days")
        return (days * self.inputs.demand_annual / 365.0).broadcast_like(self.inputs.demand_annual)

    def build(self):
        """Build the linopy model (named variables and constraints over the data's dims)."""
        import linopy

        inp = self.inputs
        d, w, price, v = inp.shortfall, inp.weight, inp.price, inp.unmet_value
        coords_ch = [d.indexes[COMMODITY], d.indexes[HOLDER]]
        coords_chs = [d.indexes[COMMODITY], d.indexes[HOLDER], d.indexes[SCENARIO]]
        m = linopy.Model(force_dim_names=True)
        x = m.add_variables(lower=0, coords=coords_ch, name="Stockpile-level")
        r = m.add_variables(lower=0, upper=d.transpose(COMMODITY, HOLDER, SCENARIO), coords=coords_chs,
                            name="Release-own")
        u = m.add_variables(lower=0, coords=coords_chs, name="Unmet")
        holders = inp.holders
        multi = len(holders) > 1 and bool((self.share > 0).any())
        if multi:
            partner = pd.Index(holders, name=PARTNER)
            mask = xr.DataArray(~np.eye(len(holders), dtype=bool), coords=[d.indexes[HOLDER], partner])
            # a holder only ships to partners that have a shortfall at all in that commodity
            mask = mask & (d.rename({HOLDER: PARTNER}).max(SCENARIO) > 0) & (self.share > 0)
            q = m.add_variables(lower=0, coords=[d.indexes[COMMODITY], d.indexes[HOLDER], partner,
                                                 d.indexes[SCENARIO]], name="Release-to-partner",
                                mask=mask.transpose(COMMODITY, HOLDER, PARTNER))
            # masked slots contribute nothing (explicit, as linopy's v1 semantics will require)
            qf = q.fillna(0)
            outgoing = qf.sum(PARTNER)
            incoming = qf.sum(HOLDER).rename({PARTNER: HOLDER})
            m.add_constraints(r + outgoing <= x, name="Release-limit")
            m.add_constraints(outgoing + self.share * r - self.share * x <= 0, name="Sharing-rule")
            m.add_constraints(r + incoming + u == d, name="Demand-balance")
        else:
            q = None
            m.add_constraints(r <= x, name="Release-limit")
            m.add_constraints(r + u == d, name="Demand-balance")
        spend = x * price
        if self.fixed_stock is None:
            if self.budget is not None and bool(np.isfinite(self.budget).any()):
                b = self.budget
                m.add_constraints(spend.sum(COMMODITY) <= b.where(np.isfinite(b), 0.0), name="Budget",
                                  mask=np.isfinite(b))
            if self.joint_budget is not None:
                m.add_constraints(spend.sum() <= self.joint_budget, name="Budget-joint")
            if self.storage_max is not None:
                cap = self.storage_max.broadcast_like(inp.demand_annual).astype(float)
                if bool((cap < 0).any()):
                    raise DataError("storage_max must be ≥ 0 t", column="storage_max")
                m.add_constraints(x <= cap.where(np.isfinite(cap), 0.0), name="Storage-limit", mask=np.isfinite(cap))
            mins = self._minimum_stock()
            if mins is not None:
                m.add_constraints(x >= mins, name="Minimum-stock", mask=mins > 0)
        else:
            plan = self.fixed_stock.broadcast_like(inp.demand_annual).fillna(0.0)
            m.add_constraints(x == plan, name="Fixed-stock")
        loss = (u * v).sum([COMMODITY, HOLDER])  # unmet-demand cost per scenario, USD
        hold = inp.holding_cost * inp.horizon_years
        obj = self.cost_weight * (x * (price + hold)).sum() + (loss * w).sum()
        if q is not None:
            tau = self.transfer_cost if isinstance(self.transfer_cost, xr.DataArray) else float(self.transfer_cost)
            if np.any(np.asarray(tau) != 0):
                obj = obj + (q.fillna(0) * (w * tau)).sum()
        if self.cvar_weight > 0:
            zeta = m.add_variables(name="CVaR-var")
            eta = m.add_variables(lower=0, coords=[d.indexes[SCENARIO]], name="CVaR-excess")
            m.add_constraints(eta - loss + zeta >= 0, name="CVaR-excess")
            obj = obj + self.cvar_weight * (zeta + (eta * (w / (1.0 - self.cvar_alpha))).sum())
        if self.extra_functionality is not None:
            self.extra_functionality(m, self)
        m.add_objective(obj)
        self.model = m
        return m

    # ------------------------------------------------------------------ solve
    def solve(self, *, diagnose: bool = True) -> SolveResult:
        """Build (if needed) and solve with HiGHS.

        Returns
        -------
        SolveResult
            status, termination condition, objective (USD) and timings.

        Raises
        ------
        InfeasibleError
            With the constraint group, labels and data to relax (elastic re-solve), when ``diagnose``.
        """
        import time

        t0 = time.perf_counter()
        if self.model is None:
            self.build()
        t1 = time.perf_counter()
        status, cond = _solve(self.model, self.solver_options)
        t2 = time.perf_counter()
        obj = float(self.model.objective.value) if cond == "optimal" else float("nan")
        self.result = SolveResult(status, cond, obj, build_s=t1 - t0, solve_s=t2 - t1)
        if cond != "optimal" and diagnose:
            if "infeasible" in cond:
                raise InfeasibleError(diagnose_infeasibility(self.build, self.solver_options, "stockpile"))
            raise CritminError(f"stockpile LP not solved: status {status}, condition {cond}; check that prices "
                               "and unmet values are finite and ≥ 0")
        return self.result

    # ------------------------------------------------------------------ assign
    def assign(self) -> xr.Dataset:
        """Results as labelled arrays with units (see :func:`_results`)."""
        if self.result is None or self.result.condition != "optimal":
            raise CritminError("assign() needs an optimal solve() first")
        return _results(self)

    def run(self) -> xr.Dataset:
        """build → solve → assign."""
        self.build()
        self.solve()
        return self.assign()


def _results(p: StockpileProblem) -> xr.Dataset:
    inp, m = p.inputs, p.model
    sol = m.solution
    x = sol["Stockpile-level"].transpose(COMMODITY, HOLDER)
    r = sol["Release-own"]
    u = sol["Unmet"]
    w, price, v, d = inp.weight, inp.price, inp.unmet_value, inp.shortfall
    daily = inp.demand_annual / 365.0
    ds = xr.Dataset()
    ds["stock"] = x.assign_attrs(units="t", long_name="target stock (Stockpile-level)")
    ds["days_of_consumption"] = (x / daily.where(daily > 0)).assign_attrs(units="d")
    ds["stock_value"] = (x * price).assign_attrs(units="USD", long_name="acquisition cost")
    ds["spend"] = (x * price).sum(COMMODITY).assign_attrs(units="USD")
    ds["holding_cost"] = (x * inp.holding_cost * inp.horizon_years).sum(COMMODITY).assign_attrs(units="USD")
    ds["release_own"] = r.transpose(SCENARIO, COMMODITY, HOLDER).assign_attrs(units="t")
    if "Release-to-partner" in sol:
        q = sol["Release-to-partner"].fillna(0.0)
        ds["release_to_partner"] = q.transpose(SCENARIO, COMMODITY, HOLDER, PARTNER).assign_attrs(units="t")
        out = q.sum(PARTNER)
    else:
        out = xr.zeros_like(r)
    ds["unmet"] = u.transpose(SCENARIO, COMMODITY, HOLDER).assign_attrs(units="t")
    ds["expected_shortfall_no_stock"] = (d * w).sum(SCENARIO).assign_attrs(units="t")
    ds["expected_unmet"] = (u * w).sum(SCENARIO).transpose(COMMODITY, HOLDER).assign_attrs(units="t")
    loss = (u * v).sum(COMMODITY)
    loss0 = (d * v).sum(COMMODITY)
    ds["expected_unmet_cost"] = (loss * w).sum(SCENARIO).assign_attrs(units="USD")
    ds["expected_unmet_cost_no_stock"] = (loss0 * w).sum(SCENARIO).assign_attrs(units="USD")
    a = p.cvar_alpha
    ds["cvar_unmet_cost"] = weighted_cvar(loss, w, a).assign_attrs(units="USD", alpha=a)
    ds["cvar_unmet_cost_no_stock"] = weighted_cvar(loss0, w, a).assign_attrs(units="USD", alpha=a)
    ds["risk_reduction"] = (ds["expected_unmet_cost_no_stock"] - ds["expected_unmet_cost"]).assign_attrs(
        units="USD", long_name="expected unmet-demand cost avoided")
    ds["cvar_reduction"] = (ds["cvar_unmet_cost_no_stock"] - ds["cvar_unmet_cost"]).assign_attrs(units="USD")
    joint_loss = loss.sum(HOLDER)
    ds["cvar_joint"] = weighted_cvar(joint_loss, w, a).assign_attrs(units="USD", alpha=a)
    # own-first check: a holder shipped to a partner while its own consumers were left short
    viol = int(((out > 1e-6 * (1 + d)) & (u > 1e-6 * (1 + d))).sum())
    ds.attrs.update({"objective_usd": p.result.objective, "status": p.result.status,
                     "condition": p.result.condition, "cvar_alpha": a, "cvar_weight": p.cvar_weight,
                     "own_first_violations": viol, "horizon_years": inp.horizon_years,
                     "assumptions": list(inp.provenance.get("assumptions", [])),
                     "provenance": {k: str(vv) for k, vv in inp.provenance.items() if k != "assumptions"}})
    return ds


# ---------------------------------------------------------------------- analyses
def efficient_frontier(problem: StockpileProblem, budgets: Sequence[float], *, cost_weight: float = 1e-6,
                       rtol: float = 1e-6) -> xr.Dataset:
    """Budget vs expected unmet-demand cost and CVaR.

    For each total budget B (USD) the plan minimises expected unmet cost (+ λ·CVaR) with acquisition and
    holding cost weighted by a small κ (``cost_weight``) so money is not spent for nothing; per-holder
    budgets are scaled in proportion to sum to B, otherwise B is a joint budget.

    Returns
    -------
    xr.Dataset over ``budget`` (USD): ``spend`` (USD), ``expected_unmet`` (t), ``expected_unmet_cost``
    (USD), ``cvar_unmet_cost`` (USD, joint), ``days_of_consumption`` (d, mean over commodity/holder).
    ``attrs["monotone"]`` is checked; a violation beyond ``rtol`` raises (a solver tolerance problem).
    """
    rows = []
    budgets = sorted(float(b) for b in budgets)
    for b in budgets:
        if problem.budget is not None and bool(np.isfinite(problem.budget).all()) and float(problem.budget.sum()) > 0:
            prob = problem.replace(budget=problem.budget * (b / float(problem.budget.sum())), joint_budget=None,
                                   cost_weight=cost_weight)
        else:
            prob = problem.replace(budget=None, joint_budget=b, cost_weight=cost_weight)
        res = prob.run()
        rows.append({"spend": float(res["spend"].sum()), "expected_unmet": float(res["expected_unmet"].sum()),
                     "expected_unmet_cost": float(res["expected_unmet_cost"].sum()),
                     "cvar_unmet_cost": float(res["cvar_joint"]),
                     "days_of_consumption": float(res["days_of_consumption"].mean())})
    df = pd.DataFrame(rows, index=pd.Index(budgets, name="budget"))
    out = xr.Dataset.from_dataframe(df)
    for k, unit in (("spend", "USD"), ("expected_unmet", "t"), ("expected_unmet_cost", "USD"),
                    ("cvar_unmet_cost", "USD"), ("days_of_consumption", "d")):
        out[k].attrs["units"] = unit
    out["budget"].attrs["units"] = "USD"
    cost = df["expected_unmet_cost"].to_numpy()
    tol = rtol * max(1.0, float(np.abs(cost).max()))
    monotone = bool(np.all(np.diff(cost) <= tol))
    out.attrs["monotone"] = monotone
    if not monotone:
        raise CritminError("efficient frontier not monotone: expected unmet cost rose with the budget "
                           f"({cost.tolist()}); tighten the solver tolerances")
    return out


def alone_vs_joint(problem: StockpileProblem) -> dict:
    """Value of complementarity: each holder stockpiling alone (σ = 0) vs the joint plan.

    Returns
    -------
    dict
        ``joint`` and ``alone`` result Datasets, ``objective_joint_usd``, ``objective_alone_usd`` and
        ``value_usd`` = alone − joint ≥ 0 (the joint feasible set contains the alone one, so the joint plan
        is never worse; budgets are the same in both).
    """
    joint = problem.replace().run()
    alone = problem.replace(share=0.0).run()
    value = alone.attrs["objective_usd"] - joint.attrs["objective_usd"]
    return {"joint": joint, "alone": alone, "objective_joint_usd": joint.attrs["objective_usd"],
            "objective_alone_usd": alone.attrs["objective_usd"], "value_usd": value}


#: Stockpile-programme rules read as a target in days of consumption.
_DAY_RULES = ("target_days_of_consumption", "target_days_of_consumption_max", "target_days_of_emergency_supply")


def rules_of_thumb(demand_annual: xr.DataArray, catalog, *, high_risk: Sequence[str] = ()) -> pd.DataFrame:
    """Stock targets from the cited stockpile-programme table, in t, for every commodity × holder.

    Rows of ``stockpile_programs`` with a days-of-consumption rule apply to every commodity when their
    commodity is ``all`` (JOGMEC 60 days; Project Vault 60 days of emergency supply), and the JOGMEC
    "such as 180 days" row (``high geopolitical-risk metals``) to the commodities in ``high_risk``. Rows
    whose commodity label cannot be mapped to commodity ids (KOMIR "rare metals", "non-ferrous base metals")
    are returned with ``applies = False`` and a note, never guessed.

    Parameters
    ----------
    demand_annual : DataArray (commodity, holder), t/yr
    catalog : critmin.reference.catalog.Catalog
    high_risk : commodity ids treated as high geopolitical risk (e.g. the priority list)

    Returns
    -------
    DataFrame: rule, program, country, days, commodity, holder, stock_t, applies, note, citation, source_url
    """
    tab = catalog.table("stockpile_programs")
    tab = tab[tab["rule"].isin(_DAY_RULES)]
    rows = []
    for _, row in tab.iterrows():
        label = str(row["commodity"])
        if label == "all":
            targets, note = list(map(str, demand_annual[COMMODITY].values)), ""
        elif label.startswith("high geopolitical-risk"):
            targets = [c for c in map(str, demand_annual[COMMODITY].values) if c in set(high_risk)]
            note = "applied to the high-risk commodities given" if targets else "no high-risk commodity given"
        else:
            targets, note = [], f"commodity label {label!r} not mapped to commodity ids"
        rule = f"{row['program']}: {row['rule']} {row['value']:g} d"
        if not targets:
            rows.append({"rule": rule, "program": row["program"], "country": row["country_iso3"],
                         "days": float(row["value"]), "commodity": None, "holder": None, "stock_t": np.nan,
                         "applies": False, "note": note, "citation": row["citation"], "source_url": row["source_url"]})
        for c in targets:
            for h in map(str, demand_annual[HOLDER].values):
                rows.append({"rule": rule, "program": row["program"], "country": row["country_iso3"],
                             "days": float(row["value"]), "commodity": c, "holder": h,
                             "stock_t": float(row["value"]) * float(demand_annual.sel({COMMODITY: c, HOLDER: h})) / 365.0,
                             "applies": True, "note": note, "citation": row["citation"],
                             "source_url": row["source_url"]})
    return pd.DataFrame(rows)


def evaluate_plan(problem: StockpileProblem, stock: xr.DataArray) -> xr.Dataset:
    """Second-stage outcome of a fixed plan ``stock`` (commodity, holder) t; budgets are not imposed."""
    return problem.replace(fixed_stock=stock, cost_weight=1.0).run()


def compare_with_rules(problem: StockpileProblem, rules: pd.DataFrame, optimum: xr.Dataset | None = None) -> pd.DataFrame:
    """Each applicable rule of thumb vs the optimal plan: spend, expected unmet cost, CVaR, total (USD).

    A rule's stock is that rule's target where it applies and zero elsewhere.
    """
    optimum = optimum if optimum is not None else problem.replace().run()
    like = problem.inputs.demand_annual
    out = [{"plan": "optimal", "spend_usd": float(optimum["spend"].sum()),
            "expected_unmet_t": float(optimum["expected_unmet"].sum()),
            "expected_unmet_cost_usd": float(optimum["expected_unmet_cost"].sum()),
            "cvar_unmet_cost_usd": float(optimum["cvar_joint"]), "objective_usd": optimum.attrs["objective_usd"]}]
    for rule, grp in rules[rules["applies"]].groupby("rule", sort=False):
        stock = xr.zeros_like(like)
        for _, row in grp.iterrows():
            stock.loc[{COMMODITY: row["commodity"], HOLDER: row["holder"]}] = row["stock_t"]
        res = evaluate_plan(problem, stock)
        out.append({"plan": rule, "spend_usd": float(res["spend"].sum()),
                    "expected_unmet_t": float(res["expected_unmet"].sum()),
                    "expected_unmet_cost_usd": float(res["expected_unmet_cost"].sum()),
                    "cvar_unmet_cost_usd": float(res["cvar_joint"]), "objective_usd": res.attrs["objective_usd"]})
    return pd.DataFrame(out)


def simulate_drawdown(stock: xr.DataArray, shortfall_path: xr.DataArray, *, share=1.0,
                      release_max: xr.DataArray | float = np.inf) -> xr.Dataset:
    """Month-by-month drawdown of a plan against shortfall paths.

    Each month each holder releases to its own consumers ``min(gap, stock, release_max)`` — the release
    rule of the supply-chain kernel (:func:`critmin.supplychain.kernel.simulate`) — and then partners draw
    up to ``share`` of what is left (the LP's Sharing-rule). With ``share = 0`` the result equals the
    kernel's stockpile recursion (tested). Vectorised over every dim but ``month``.

    Parameters
    ----------
    stock : DataArray (commodity, holder), t at month 0
    shortfall_path : DataArray (..., commodity, holder, month), t/month without stock
    share : float or DataArray (holder,), share of the remaining stock partners may draw
    release_max : t/month per holder (own + partner releases)

    Returns
    -------
    Dataset (..., commodity, holder, month): ``release_own``, ``release_to_partner``, ``received``,
    ``unmet`` (t/month), ``stock`` (t, end of month), ``cumulative_unmet`` (t).
    """
    if "month" not in shortfall_path.dims or HOLDER not in shortfall_path.dims:
        raise DataError("shortfall_path needs dims (…, commodity, holder, month)", column="shortfall_path")
    holders = list(shortfall_path[HOLDER].values)
    st = (xr.zeros_like(shortfall_path.isel(month=0, drop=True)) + stock).astype(float)
    sh = share if isinstance(share, xr.DataArray) else float(share)
    cap = xr.zeros_like(st) + release_max
    rel, give, recv, unmet, stocks = [], [], [], [], []
    for t in range(shortfall_path.sizes["month"]):
        gap = shortfall_path.isel(month=t, drop=True)
        own = np.minimum(np.minimum(gap, st), cap).clip(min=0.0)
        st = st - own
        left_cap = cap - own
        need = gap - own
        avail = np.minimum(st * sh, left_cap)
        if len(holders) == 2:
            # two holders: each one's need is met from the other's available stock
            other_need = need.roll({HOLDER: 1}, roll_coords=False)
            g = np.minimum(avail, other_need)
            received = g.roll({HOLDER: 1}, roll_coords=False)
        elif len(holders) > 2:
            # several partners: pro-rata to each partner's need
            tot_need = need.sum(HOLDER)
            tot_avail = avail.sum(HOLDER)
            frac = (tot_avail / tot_need.where(tot_need > 0)).fillna(0.0).clip(max=1.0)
            received = need * frac
            give_total = received.sum(HOLDER)
            g = (avail / tot_avail.where(tot_avail > 0)).fillna(0.0) * give_total
        else:
            g = xr.zeros_like(own)
            received = xr.zeros_like(own)
        st = st - g
        rel.append(own)
        give.append(g)
        recv.append(received)
        unmet.append((need - received).clip(min=0.0))
        stocks.append(st)
    month = shortfall_path["month"]
    out = xr.Dataset({
        "release_own": xr.concat(rel, dim=month), "release_to_partner": xr.concat(give, dim=month),
        "received": xr.concat(recv, dim=month), "unmet": xr.concat(unmet, dim=month),
        "stock": xr.concat(stocks, dim=month)})
    out = out.transpose(..., "month")
    out["cumulative_unmet"] = out["unmet"].cumsum("month")
    for k in out.data_vars:
        out[k].attrs["units"] = "t" if k in ("stock", "cumulative_unmet") else "t/month"
    return out


__all__ = ["InfeasibleError", "SolveResult", "StockpileProblem", "alone_vs_joint", "compare_with_rules",
           "diagnose_infeasibility", "efficient_frontier", "evaluate_plan", "rules_of_thumb",
           "simulate_drawdown", "weighted_cvar"]

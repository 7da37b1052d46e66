"""Finance portfolio: a MILP choosing projects and public instruments to cut expected shortfall.

Formulation (p project, i instrument, c commodity, s scenario with weight w_s, k country)
---------------------------------------------------------------------------------------
Variables
    ``Project-select``     y[p] ∈ {0, 1}
    ``Instrument-amount``  a[p,i] ≥ 0, USD m committed (face value)
    ``Relief``             ρ[c,s] ∈ [0, S[c,s]], t of shortfall avoided over the horizon
Constraints
    ``Relief-capacity``    ρ[c,s] ≤ Σ_{p ∈ c} K[p] y[p]              K = capacity_tpa · T · p_produces_within
    ``Funding-need``       Σ_i a[p,i] = G[p] y[p]                    G = financing gap (default capex), USD m
    ``Instrument-cap``     a[p,i] ≤ φ_i G[p] y[p]                     φ_i = largest share of a gap instrument i may fill
    ``Instrument-budget``  Σ_p a[p,i] ≤ B_i                            USD m (face amount per instrument)
    ``Country-share``      Σ_{p ∈ k} G[p] y[p] ≤ θ Σ_p G[p] y[p]     diversification (θ < 1 only)
    ``Stage-balance``      Σ_{p ∈ c, mine, no refine} cap y ≤ Σ_{p ∈ c, refine} cap y + spare[c]   t/yr
Objective (maximise, USD)
    Σ_s w_s Σ_c V_c ρ[c,s]  −  10⁶ Σ_{p,i} γ_i a[p,i]                γ_i = cost to the public purse per USD

Linearisation of the benefit: the relief of a portfolio in scenario s is min(Σ selected K, S[c,s]) per
commodity. Maximising ρ under ρ ≤ S and ρ ≤ Σ K y gives exactly that minimum (the objective pushes ρ up),
so overlapping projects on one commodity are not double counted. What *is* linearised: a project's
uncertain start enters as its expected capacity K = p_produces_within · capacity (by Jensen's inequality
E[min(QK, S)] ≤ min(E[Q]K, S), so the relief is an upper bound when start dates are uncertain), and
capacity is counted as available for the whole horizon T. The shortfall ensemble is not re-run with the
new capacity: that needs the supply-chain Monte Carlo (``critmin.supplychain.risk``) and is left to it.

Capacity bases differ between projects (t REO, t NdFeB, t Li2CO3): the bundled table's free-text basis is
carried into the output, and relief is counted on the basis the user's shortfall ensemble uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, SCENARIO
from critmin.errors import CritminError, DataError
from critmin.frames import read_csv
from critmin.optimize.solve import InfeasibleError, _solve, diagnose_infeasibility, weighted_cvar

PROJECT, INSTRUMENT = "project", "instrument"

#: Instruments with their cost to the public purse per USD committed (γ), the largest share of a financing
#: gap they may fill (φ) and the reason. Grant γ = 1 by definition; the others are stated modelling
#: assumptions (expected loss or expected payout), not sourced figures — override them with a CSV.
INSTRUMENTS = pd.DataFrame(
    [("grant", 1.00, 1.0, "definition: the whole amount is spent"),
     ("loan", 0.10, 0.8, "assumption: expected loss plus interest subsidy"),
     ("guarantee", 0.05, 0.8, "assumption: expected loss on the guaranteed amount"),
     ("equity", 0.30, 0.5, "assumption: expected loss on a minority stake"),
     ("offtake", 0.10, 1.0, "assumption: expected gap between contract and market price"),
     ("price_floor", 0.20, 1.0, "assumption: expected floor payout per USD of covered revenue")],
    columns=["instrument", "cost_rate", "max_share", "reason"]).set_index("instrument")

#: Columns of a user candidates CSV: required, then optional.
REQUIRED = ("project_id", "country_iso3", "commodity", "stage_id", "capacity_tpa", "capex_usd_m", "status")
OPTIONAL = ("name", "expected_start_year", "permitting_status", "certified", "p_produces_within",
            "financing_gap_usd_m", "capacity_unit_basis")
#: Operating plants already supply the baseline the ensemble was run on: funding them adds no capacity.
NOT_ELIGIBLE_STATUS = {"operating": "operating: its capacity is already in the baseline supply"}


def read_candidates(path: str | Path) -> pd.DataFrame:
    """Read and validate a user candidates CSV; errors name the file, line and column."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read candidates CSV: {exc}", file=str(path)) from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}",
                        file=str(path), row=1, column=missing[0])
    out = df.copy()
    for col in ("capacity_tpa", "capex_usd_m", "expected_start_year", "p_produces_within", "financing_gap_usd_m"):
        if col not in out.columns:
            continue
        vals = []
        for i, raw in enumerate(out[col].tolist()):
            raw = raw.strip()
            if raw == "":
                vals.append(np.nan)
                continue
            try:
                v = float(raw)
            except ValueError:
                raise DataError(f"not a number: {raw!r}", file=str(path), row=i + 2, column=col) from None
            if v < 0 or (col == "p_produces_within" and v > 1):
                raise DataError(f"out of range: {raw}", file=str(path), row=i + 2, column=col)
            vals.append(v)
        out[col] = vals
    for i, iso in enumerate(out["country_iso3"].tolist()):
        if not (len(iso) == 3 and iso.isalpha() and iso.isupper()):
            raise DataError(f"not an ISO 3166 alpha-3 code: {iso!r}", file=str(path), row=i + 2, column="country_iso3")
    dup = out["project_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"duplicate project_id {out['project_id'].iloc[i]!r}", file=str(path), row=i + 2,
                        column="project_id")
    out["source"] = f"user:{path.name}"
    return out


def read_instruments(path: str | Path) -> pd.DataFrame:
    """Instrument table CSV: instrument, cost_rate, max_share[, budget_usd_m, reason]."""
    path = Path(path)
    df = read_csv(path, ("instrument", "cost_rate", "max_share"), "instruments CSV")
    for col in ("cost_rate", "max_share"):
        bad = ~pd.to_numeric(df[col], errors="coerce").between(0, 1)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError("must be a number in [0, 1]", file=str(path), row=i + 2, column=col)
    return df.set_index("instrument")


def eligibility(candidates: pd.DataFrame, commodities: list[str], *, start_year: int, horizon_years: float,
                p_produces_within: dict[str, float] | None = None,
                certified_only: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split candidates into eligible projects and the others with the reason; nothing is filled in.

    Returns
    -------
    (eligible, ineligible) DataFrames; eligible has ``commodity`` (one id), ``p_produces_within`` and
    ``gap_usd_m``; ineligible has ``project_id``, ``name`` and ``reason``.
    """
    p_in = dict(p_produces_within or {})
    ok, bad = [], []
    for _, row in candidates.iterrows():
        pid = str(row["project_id"])
        name = str(row.get("name", pid))
        reasons = []
        comms = [c for c in str(row.get("commodity", "")).split(";") if c]
        hit = [c for c in comms if c in commodities]
        if not hit:
            reasons.append(f"commodity {';'.join(comms) or '(blank)'} not in the shortfall ensemble")
        status = str(row.get("status", "")).strip()
        if status in NOT_ELIGIBLE_STATUS:
            reasons.append(NOT_ELIGIBLE_STATUS[status])
        for col, what in (("capacity_tpa", "capacity (capacity_tpa)"), ("capex_usd_m", "capex (capex_usd_m)")):
            v = row.get(col)
            if v is None or pd.isna(v):
                reasons.append(f"no {what} in the source")
        if not str(row.get("country_iso3", "")).strip():
            reasons.append("no country")
        if certified_only and str(row.get("certified", "")).strip().lower() not in ("yes", "true", "1"):
            reasons.append("no responsible-sourcing certification")
        p = p_in.get(pid, row.get("p_produces_within", np.nan))
        if p is None or pd.isna(p):
            start = row.get("expected_start_year", np.nan)
            if start is None or pd.isna(start):
                reasons.append("no expected start year and no p_produces_within (see critmin.policy.permitting)")
            else:
                p = 1.0 if float(start) <= start_year + horizon_years else 0.0
        if p is not None and not pd.isna(p) and float(p) <= 0:
            reasons.append(f"produces after the {horizon_years:g}-year horizon: no relief")
        if reasons:
            bad.append({"project_id": pid, "name": name, "reason": "; ".join(reasons)})
            continue
        gap = row.get("financing_gap_usd_m", np.nan)
        rec = dict(row)
        rec.update({"commodity": hit[0], "p_produces_within": float(p),
                    "gap_usd_m": float(row["capex_usd_m"]) if gap is None or pd.isna(gap) else float(gap)})
        ok.append(rec)
    return pd.DataFrame(ok), pd.DataFrame(bad, columns=["project_id", "name", "reason"])


@dataclass
class PortfolioProblem:
    """Projects × instruments MILP (see module docstring).

    Attributes
    ----------
    projects : DataFrame
        Eligible projects (from :func:`eligibility`): project_id, commodity, country_iso3, stage_id,
        capacity_tpa (t/yr), gap_usd_m (USD m), p_produces_within (0..1).
    shortfall : DataArray (scenario, commodity)
        Shortfall without the projects over the horizon, t (a ``holder`` dim is summed: allied total).
    unmet_value : DataArray (commodity,)
        USD/t.
    budgets : dict instrument → USD m
        Face-amount budget per instrument (missing = 0: the instrument is not used).
    instruments : DataFrame
        cost_rate γ and max_share φ per instrument (default :data:`INSTRUMENTS`).
    horizon_years : float
        T, yr.
    weight : DataArray (scenario,), optional
    max_country_share : float
        θ in (0, 1]; 1 = no diversification constraint.
    spare_downstream : DataArray (commodity,), optional
        Spare allied separation/refining capacity for new mine output, t/yr (default 0).
    cvar_alpha : float
        For the CVaR reported (not optimised).
    extra_functionality : callable(model, problem), optional
    """

    projects: pd.DataFrame
    shortfall: xr.DataArray
    unmet_value: xr.DataArray
    budgets: dict
    instruments: pd.DataFrame | None = None
    horizon_years: float = 1.0
    weight: xr.DataArray | None = None
    max_country_share: float = 1.0
    spare_downstream: xr.DataArray | None = None
    cvar_alpha: float = 0.95
    extra_functionality: object = None

    def __post_init__(self) -> None:
        if self.projects.empty:
            raise DataError("no eligible project: see the ineligible list for the reasons")
        s = self.shortfall
        if "holder" in s.dims:
            s = s.sum("holder")
        if set(s.dims) != {SCENARIO, COMMODITY}:
            raise DataError(f"shortfall must have dims (scenario, commodity[, holder]); got {s.dims}",
                            column="shortfall")
        self.shortfall = s.transpose(SCENARIO, COMMODITY).astype(float)
        n = s.sizes[SCENARIO]
        self.weight = (self.weight if self.weight is not None
                       else xr.DataArray(np.full(n, 1.0 / n), coords={SCENARIO: s[SCENARIO]}, dims=[SCENARIO]))
        self.instruments = INSTRUMENTS if self.instruments is None else self.instruments
        unknown = set(self.budgets) - set(self.instruments.index)
        if unknown:
            raise DataError(f"budget for unknown instrument(s) {sorted(unknown)}; known: "
                            f"{', '.join(self.instruments.index)}", column="budgets")
        if not 0 < self.max_country_share <= 1:
            raise DataError(f"max_country_share must be in (0, 1]; got {self.max_country_share}",
                            column="max_country_share")
        self.model = None
        self.status = self.condition = None

    # ------------------------------------------------------------------ build
    def _arrays(self):
        pr = self.projects.reset_index(drop=True)
        idx = pd.Index(pr["project_id"].astype(str), name=PROJECT)
        comm = self.shortfall.indexes[COMMODITY]
        member = xr.DataArray((pr["commodity"].to_numpy()[:, None] == comm.to_numpy()[None, :]).astype(float),
                              coords=[idx, comm])
        stages = pr["stage_id"].astype(str).str.split(";")
        has_refine = np.array(["refine" in s for s in stages])
        mine_only = np.array(["mine" in s and "refine" not in s for s in stages])
        cap = xr.DataArray(pr["capacity_tpa"].astype(float).to_numpy(), coords=[idx])
        K = cap * self.horizon_years * xr.DataArray(pr["p_produces_within"].astype(float).to_numpy(), coords=[idx])
        gap = xr.DataArray(pr["gap_usd_m"].astype(float).to_numpy(), coords=[idx])
        country = pr["country_iso3"].astype(str).to_numpy()
        return pr, idx, member, cap, K, gap, country, has_refine, mine_only

    def build(self):
        import linopy

        _pr, idx, member, cap, K, gap, country, has_refine, mine_only = self._arrays()
        inst = pd.Index(list(self.instruments.index), name=INSTRUMENT)
        S = self.shortfall
        m = linopy.Model(force_dim_names=True)
        y = m.add_variables(coords=[idx], name="Project-select", binary=True)
        a = m.add_variables(lower=0, coords=[idx, inst], name="Instrument-amount")
        rho = m.add_variables(lower=0, upper=S.transpose(COMMODITY, SCENARIO),
                              coords=[S.indexes[COMMODITY], S.indexes[SCENARIO]], name="Relief")
        m.add_constraints(rho - (y * (K * member)).sum(PROJECT) <= 0, name="Relief-capacity")
        m.add_constraints(a.sum(INSTRUMENT) - y * gap == 0, name="Funding-need")
        phi = xr.DataArray(self.instruments["max_share"].astype(float).to_numpy(), coords=[inst])
        m.add_constraints(a - y * gap * phi <= 0, name="Instrument-cap")
        budget = xr.DataArray([float(self.budgets.get(i, 0.0)) for i in inst], coords=[inst])
        m.add_constraints(a.sum(PROJECT) <= budget, name="Instrument-budget")
        if self.max_country_share < 1:
            ks = pd.Index(sorted(set(country)), name="country")
            inc = xr.DataArray((country[:, None] == ks.to_numpy()[None, :]).astype(float), coords=[idx, ks])
            m.add_constraints((y * gap * inc).sum(PROJECT) - self.max_country_share * (y * gap).sum() <= 0,
                              name="Country-share")
        if mine_only.any():
            spare = (self.spare_downstream if self.spare_downstream is not None
                     else xr.zeros_like(member.isel({PROJECT: 0}, drop=True)))
            sign = xr.DataArray(np.where(mine_only, 1.0, np.where(has_refine, -1.0, 0.0)), coords=[idx])
            m.add_constraints((y * (cap * sign * member)).sum(PROJECT) <= spare, name="Stage-balance")
        gamma = xr.DataArray(self.instruments["cost_rate"].astype(float).to_numpy(), coords=[inst])
        v = self.unmet_value.sel({COMMODITY: S[COMMODITY]})
        obj = (rho * (self.weight * v)).sum() - (a * (gamma * 1e6)).sum()
        if callable(self.extra_functionality):
            self.extra_functionality(m, self)
        m.add_objective(obj, sense="max")
        self.model = m
        return m

    def solve(self) -> tuple[str, str]:
        if self.model is None:
            self.build()
        self.status, self.condition = _solve(self.model, {"mip_rel_gap": 1e-6})
        if self.condition != "optimal":
            if "infeasible" in self.condition:
                raise InfeasibleError(diagnose_infeasibility(self.build, {}, "portfolio"))
            raise CritminError(f"portfolio MILP not solved: {self.status}, {self.condition}")
        return self.status, self.condition

    # ------------------------------------------------------------------ assign
    def relief(self, selected: np.ndarray) -> xr.DataArray:
        """Relief (scenario, commodity), t, of a 0/1 selection vector (same order as ``projects``)."""
        _, idx, member, _, K, *_ = self._arrays()
        sel = xr.DataArray(np.asarray(selected, dtype=float), coords=[idx])
        supply = (sel * K * member).sum(PROJECT)
        return np.minimum(supply, self.shortfall)

    def assign(self) -> tuple[pd.DataFrame, dict]:
        """Ranked portfolio (DataFrame) and totals (dict with units in the keys)."""
        sol = self.model.solution
        pr, idx, _member, cap, _K, gap, country, *_ = self._arrays()
        ysel = np.round(sol["Project-select"].values).astype(float)
        amounts = sol["Instrument-amount"].to_pandas()
        gamma = self.instruments["cost_rate"].astype(float)
        w, v = self.weight, self.unmet_value.sel({COMMODITY: self.shortfall[COMMODITY]})
        full = self.relief(ysel)
        exp_full = float((full * w).sum())
        rows = []
        for j, pid in enumerate(idx):
            solo = np.zeros(len(idx))
            solo[j] = 1.0
            standalone = float((self.relief(solo) * w).sum())
            if ysel[j] > 0.5:
                without = ysel.copy()
                without[j] = 0.0
                marginal = exp_full - float((self.relief(without) * w).sum())
            else:
                marginal = 0.0
            cost = float((amounts.loc[pid] * gamma).sum() * 1e6)
            row = {"project_id": pid, "name": pr.loc[j].get("name", pid), "country": country[j],
                   "commodity": pr.loc[j, "commodity"], "stage_id": pr.loc[j, "stage_id"],
                   "selected": bool(ysel[j] > 0.5), "capacity_tpa": float(cap[j]),
                   "capacity_unit_basis": pr.loc[j].get("capacity_unit_basis", ""),
                   "p_produces_within": float(pr.loc[j, "p_produces_within"]),
                   "financing_gap_usd_m": float(gap[j]),
                   **{f"{i}_usd_m": float(amounts.loc[pid, i]) for i in amounts.columns},
                   "public_cost_usd": cost, "standalone_relief_t": standalone, "marginal_relief_t": marginal,
                   "relief_t_per_musd": marginal / (cost / 1e6) if cost > 0 else np.nan}
            rows.append(row)
        df = pd.DataFrame(rows)
        df = df.sort_values(["selected", "relief_t_per_musd", "standalone_relief_t"], ascending=[False, False, False])
        df.insert(0, "rank", np.where(df["selected"], np.cumsum(df["selected"].to_numpy()), 0))
        loss0 = (self.shortfall * v).sum(COMMODITY)
        loss1 = ((self.shortfall - full) * v).sum(COMMODITY)
        cost_total = float(df["public_cost_usd"].sum())
        totals = {"objective_usd": float(self.model.objective.value), "status": self.status,
                  "condition": self.condition, "public_cost_usd": cost_total,
                  "expected_shortfall_t": float((self.shortfall * w).sum()),
                  "expected_shortfall_avoided_t": exp_full,
                  "expected_unmet_cost_avoided_usd": float(((loss0 - loss1) * w).sum()),
                  "cvar_unmet_cost_before_usd": float(weighted_cvar(loss0, w, self.cvar_alpha)),
                  "cvar_unmet_cost_after_usd": float(weighted_cvar(loss1, w, self.cvar_alpha)),
                  "shortfall_avoided_t_per_musd": exp_full / (cost_total / 1e6) if cost_total > 0 else np.nan,
                  "capacity_added_tpa_by_stage": _capacity_by_stage(df[df["selected"]]),
                  "cvar_alpha": self.cvar_alpha}
        return df, totals


def _capacity_by_stage(sel: pd.DataFrame) -> dict:
    out: dict[str, float] = {}
    for _, r in sel.iterrows():
        for st in str(r["stage_id"]).split(";"):
            key = f"{r['commodity']}:{st}"
            out[key] = out.get(key, 0.0) + float(r["capacity_tpa"])
    return out


__all__ = ["INSTRUMENTS", "PortfolioProblem", "eligibility", "read_candidates", "read_instruments"]

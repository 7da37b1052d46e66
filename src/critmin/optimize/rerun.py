"""Evaluate a selected portfolio by re-running the ensemble's per-draw unmet demand with the new capacity.

What this is
------------
The supply-chain Monte Carlo (:func:`critmin.supplychain.risk.simulate_unmet`) gives, per draw, the unmet
demand ``L[d, c, s, k]`` (t over the horizon) of each consumer ``k`` at each stage ``s`` of commodity ``c``.
The portfolio's projects add allied supply ``A[d, c, s]`` (t over the horizon in the stage's basis) in the
draws where they produce. With the *same seed and the same draws*, the holders' unmet demand after the
portfolio is

    L'[d, c, s] = max(L[d, c, s] − A[d, c, s], 0)          L = Σ_{k ∈ holders} L[d, c, s, k]

(the holders are one allied pool: the new output goes to whichever holder is short; a holder's share of the
relief is pro rata to its unmet demand in that draw). Expected shortfall, VaR and CVaR are then recomputed
before and after with the ensemble's own estimator, :func:`critmin.supplychain.reporting.var_cvar` (the one
implementation; ``var_cvar`` stays importable from this module).

Why a post-processing and not a re-simulation with new trade flows
------------------------------------------------------------------
The new capacity is in allied countries (or the holders' own) and none of the modelled disruptions — export
restrictions by the catalogue's countries — touches it, so in every draw it is available in full once the
project produces; the disruptions, responses and the unmet demand they cause upstream are unchanged. Adding
it after the fact is therefore the same as adding an undisrupted supplier to the holders' mix, *except*
that (i) the new supply is counted at the stage its capacity is stated for and not propagated downstream
(a mine's concentrate does not relieve the refining stage: stage balance is the MILP's job), (ii) the
relief is a horizon total, so a tonne produced before the disruption is assumed to be held until needed
(an upper bound on timing), and (iii) price feedback and the ROW consumer's demand are left as simulated.
Documented, not hidden: every result carries this text in ``attrs["method"]``.

When a project produces
-----------------------
Per draw, the project's months of production inside the horizon come from its permitting timeline
(:func:`critmin.policy.permitting.time_to_first_production`, draw i of the timeline paired with draw i of
the ensemble; independent streams): ``producing = clip(H − t_first, 0, H)`` months. A per-draw Bernoulli on
``p_produces_within`` with full-horizon output is the special case ``producing ∈ {0, H}``.

Capacity bases
--------------
Tonnes are never added across bases. :data:`BASIS_RULES` maps the projects table's free-text
``capacity_unit_basis`` to the network's basis of the stage (``Network.basis``): oxide tonnes (REO, NdPr
oxide) count 1:1 in the REO-equivalent basis, Li₂CO₃ (and LCE) to Li content by stoichiometry (0.18787),
element tonnes (``t/yr Co``, ``t/yr Ga``) 1:1 in the element-content basis. NdFeB magnet tonnes have no stage
in the network (rare earths are modelled to the metal stage) and no cited rare-earth content is bundled, so
they are skipped with that reason; so is any basis the rules do not cover.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, DRAW, STAGE
from critmin.errors import ConfigError, DataError
from critmin.supplychain.reporting import var_cvar

PROJECT, CONSUMER = "project", "consumer"

#: The statement attached to every re-run result (see the module docstring).
METHOD = ("re-run of the ensemble's per-draw unmet demand (same seed, same draws) with the portfolio's capacity "
          "added as undisrupted allied supply to the holders at the stage its capacity is stated for; not a "
          "re-simulation with new trade flows: the new capacity is allied and no modelled disruption touches it")

#: Li2CO3 → Li content: 2 × 6.941 / 73.891 (atomic and formula masses; stoichiometry, not a data assumption).
LI_IN_LI2CO3 = 2 * 6.941 / 73.891

#: (pattern on the lower-cased ``capacity_unit_basis``, pattern the network basis must match, factor, reason).
#: The first match wins; ``factor`` None means "cannot be counted" and ``reason`` says why.
BASIS_RULES: tuple[tuple[str, str, float | None, str], ...] = (
    (r"basis not stated", r".", None, "the source does not state the basis of the capacity"),
    (r"ndfeb|magnet", r".", None, "NdFeB magnet tonnes: the network models rare earths to the metal stage only and "
                                   "no cited rare-earth content of magnets is bundled"),
    (r"\breo\b|ndpr|oxide", r"\bREO\b", 1.0, "oxide tonnes (REO, NdPr oxide) count 1:1 in the REO-equivalent "
                                             "basis (NdPr oxide is part of REO)"),
    (r"li2co3|\blce\b|lithium carbonate", r"\bLi content\b", LI_IN_LI2CO3,
     "Li2CO3 (or LCE) to Li content × 0.18787 (stoichiometry)"),
    (r"t/yr (co|ga|ge|sb|ni|w|mo|bi|in|te)\b", r"^(Co|Ga|Ge|Sb|Ni|W|Mo|Bi|In|Te) content",
     1.0, "element tonnes count 1:1 in the element-content basis"),
)


def _rule(basis_text: str, network_basis: str) -> tuple[float | None, str]:
    text = basis_text.lower()
    for pat, net_pat, factor, reason in BASIS_RULES:
        m = re.search(pat, text)
        if not m:
            continue
        if factor is None:
            return None, reason
        if not re.search(net_pat, network_basis):
            return None, f"capacity basis {basis_text!r} has no stated conversion to the network's {network_basis!r}"
        if net_pat.startswith("^(") and m.groups():   # element tonnes: the element must be the network's
            if not network_basis.lower().startswith(m.group(1) + " "):
                return None, f"capacity in t {m.group(1).title()} cannot count in the network's {network_basis!r}"
        return factor, reason
    return None, f"capacity basis {basis_text!r} has no stated conversion to the network's {network_basis!r}"


def capacity_in_network_basis(projects: pd.DataFrame, network, stage: str) -> pd.DataFrame:
    """Each project's capacity in the network's basis at the stage it is counted, or the reason it cannot be.

    The stage is ``stage`` (the portfolio's objective stage, e.g. ``refine``) when the project has it, else
    ``mine`` for a mine-only project (its concentrate; the MILP's stage balance pairs it with refining).

    Parameters
    ----------
    projects : DataFrame
        ``project_id, commodity`` (one id), ``stage_id`` (``;``-list), ``capacity_tpa`` (t/yr, stated basis),
        optional ``capacity_unit_basis`` (free text).
    network : critmin.supplychain.network.Network
    stage : str

    Returns
    -------
    DataFrame indexed by project_id: ``capacity_stage``, ``capacity_tpa_network`` (t/yr in the network basis,
    NaN when not countable), ``network_basis``, ``basis_factor``, ``basis_note``.
    """
    rows = []
    for r in projects.itertuples(index=False):
        pid, c = str(r.project_id), str(r.commodity)
        stages = [s for s in str(getattr(r, "stage_id", "")).split(";") if s]
        st = stage if stage in stages else ("mine" if stages == ["mine"] else None)
        rec = {"project_id": pid, "capacity_stage": st, "capacity_tpa_network": np.nan, "network_basis": "",
               "basis_factor": np.nan, "basis_note": ""}
        if st is None:
            rec["basis_note"] = f"stages {'/'.join(stages) or '(none)'}: no capacity at the {stage} stage"
        elif (c, st) not in network.basis:
            rec["basis_note"] = f"the network has no {c} {st} stage"
        else:
            nb = network.basis[(c, st)]
            text = getattr(r, "capacity_unit_basis", "")
            text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
            if not text.strip():
                factor, why = 1.0, "no capacity_unit_basis given: taken to be in the network's basis"
            else:
                factor, why = _rule(text, nb)
            rec.update(network_basis=nb, basis_note=why)
            if factor is not None:
                rec.update(basis_factor=factor, capacity_tpa_network=float(r.capacity_tpa) * factor)
        rows.append(rec)
    return pd.DataFrame(rows).set_index("project_id")


# ---------------------------------------------------------------------- the re-run
@dataclass
class Rerun:
    """Result of :func:`rerun_portfolio`.

    Attributes
    ----------
    cells : DataFrame
        Per (commodity, stage, consumer ∈ holders + pool): expected shortfall, VaR and CVaR before and after,
        t over the horizon.
    projects : DataFrame
        Per project: standalone and marginal expected shortfall avoided (t), marginal CVaR avoided (t), mean
        added supply (t), probability of producing in the horizon.
    totals : dict
        Pool totals over the cells the portfolio touches (t), and ``method``.
    after : DataArray (draw, commodity, stage, consumer)
        Holders' unmet demand after the portfolio, t.
    """

    cells: pd.DataFrame
    projects: pd.DataFrame
    totals: dict
    after: xr.DataArray


def added_supply(capacity_tpa: xr.DataArray, producing_months: xr.DataArray) -> xr.DataArray:
    """Supply each project adds per draw, t over the horizon: capacity t/yr ÷ 12 × months producing.

    Parameters
    ----------
    capacity_tpa : DataArray (project,), t/yr in the network basis
    producing_months : DataArray (draw, project), months of production inside the horizon (0..H)
    """
    if bool((producing_months < 0).any()) or bool((capacity_tpa < 0).any()):
        raise DataError("capacity and months producing must be ≥ 0", column="capacity_tpa")
    return (capacity_tpa / 12.0 * producing_months).transpose(DRAW, PROJECT)


def rerun_portfolio(unmet: xr.DataArray, supply: xr.DataArray, cell: pd.DataFrame, holders: Sequence[str],
                    *, alphas: Sequence[float] = (0.95, 0.99), pool: str | None = None) -> Rerun:
    """Holders' unmet demand before and after adding each selected project's supply, same draws.

    Parameters
    ----------
    unmet : DataArray (draw, commodity, stage, consumer)
        Per-draw cumulative unmet demand over the horizon without the portfolio, t (``risk.simulate_unmet``).
    supply : DataArray (draw, project)
        Supply each project adds inside the horizon in its cell's basis, t (:func:`added_supply`).
    cell : DataFrame indexed by project_id
        ``commodity`` and ``capacity_stage`` of each project (where its supply counts).
    holders : list of consumers that receive the new supply (one pool, pro rata to their unmet demand).
    alphas : VaR/CVaR levels.
    pool : label of the pooled holders (default ``"+".join(holders)``).

    Returns
    -------
    Rerun
    """
    holders = list(holders)
    pool = pool or "+".join(holders)
    missing = [h for h in holders if h not in list(unmet[CONSUMER].values)]
    if missing:
        raise ConfigError(f"holder(s) {missing} are not consumers of the ensemble")
    pids = [str(p) for p in supply[PROJECT].values]
    cell = cell.loc[pids]
    comm = list(map(str, unmet[COMMODITY].values))
    stg = list(map(str, unmet[STAGE].values))
    unknown = [p for p, c, s in zip(pids, cell["commodity"], cell["capacity_stage"], strict=True)
               if c not in comm or s not in stg]
    if unknown:
        raise DataError(f"project(s) {unknown} count at a commodity/stage the ensemble does not have",
                        column="capacity_stage")
    # one-hot (project, commodity, stage): where each project's tonnes count
    member = xr.DataArray(np.zeros((len(pids), len(comm), len(stg))), dims=[PROJECT, COMMODITY, STAGE],
                          coords={PROJECT: pids, COMMODITY: comm, STAGE: stg})
    for p, c, s in zip(pids, cell["commodity"], cell["capacity_stage"], strict=True):
        member.loc[{PROJECT: p, COMMODITY: c, STAGE: s}] = 1.0
    per = supply * member                                    # (draw, project, commodity, stage) t
    total = per.sum(PROJECT)                                 # (draw, commodity, stage)
    h = unmet.sel({CONSUMER: holders})
    L = h.sum(CONSUMER)                                      # the pool, summed per draw before any quantile
    after_pool = np.maximum(L - total, 0.0)
    # pro-rata split of the pool's remaining unmet demand back to the holders (0/0 → 0: nothing was unmet)
    frac = xr.where(L > 0, after_pool / L.where(L > 0), 0.0)
    after = h * frac
    stats = []
    for label, before, aft in [*[(k, h.sel({CONSUMER: k}), after.sel({CONSUMER: k})) for k in holders],
                               (pool, L, after_pool)]:
        row = {"expected_shortfall_before_t": before.mean(DRAW), "expected_shortfall_after_t": aft.mean(DRAW)}
        for a in alphas:
            vb, cb = var_cvar(before, a)
            va, ca = var_cvar(aft, a)
            tag = f"{round(a * 100):d}"
            row.update({f"var_{tag}_before_t": vb, f"var_{tag}_after_t": va,
                        f"cvar_{tag}_before_t": cb, f"cvar_{tag}_after_t": ca})
        ds = xr.Dataset(row).expand_dims({CONSUMER: [label]})
        stats.append(ds)
    cells = xr.concat(stats, dim=CONSUMER).to_dataframe().reset_index()
    cells.insert(5, "expected_shortfall_avoided_t",
                 cells["expected_shortfall_before_t"] - cells["expected_shortfall_after_t"])
    for a in alphas:
        tag = f"{round(a * 100):d}"
        cells[f"cvar_{tag}_avoided_t"] = cells[f"cvar_{tag}_before_t"] - cells[f"cvar_{tag}_after_t"]
    touched = member.sum(PROJECT) > 0
    keep = touched.to_series()
    cells = cells[cells.set_index([COMMODITY, STAGE]).index.map(lambda i: bool(keep.get(i, False)))]
    cells = cells.reset_index(drop=True)
    # per project, vectorised over the project dim: standalone (alone) and marginal (portfolio minus it)
    alone = np.maximum(L - per, 0.0)                         # (draw, project, commodity, stage)
    without = np.maximum(L - (total - per), 0.0)
    a0 = alphas[0]
    tag0 = f"{round(a0 * 100):d}"
    ret_alone = ((L - alone) * member).sum([COMMODITY, STAGE]).mean(DRAW)
    ret_marg = ((without - after_pool) * member).sum([COMMODITY, STAGE]).mean(DRAW)
    _, c_without = var_cvar(without, a0)
    _, c_after = var_cvar(after_pool, a0)
    _, c_alone = var_cvar(alone, a0)
    _, c_before = var_cvar(L, a0)
    proj = pd.DataFrame({
        "project_id": pids,
        "mean_added_supply_t": supply.mean(DRAW).values,
        "p_producing_in_draws": (supply > 0).mean(DRAW).values,
        "standalone_shortfall_avoided_t": ret_alone.values,
        "marginal_shortfall_avoided_t": ret_marg.values,
        f"standalone_cvar_{tag0}_avoided_t": ((c_before - c_alone) * member).sum([COMMODITY, STAGE]).values,
        f"marginal_cvar_{tag0}_avoided_t": ((c_without - c_after) * member).sum([COMMODITY, STAGE]).values,
    })
    tc = cells[cells[CONSUMER] == pool]
    totals = {"expected_shortfall_before_t": float(tc["expected_shortfall_before_t"].sum()),
              "expected_shortfall_after_t": float(tc["expected_shortfall_after_t"].sum()),
              "expected_shortfall_avoided_t": float(tc["expected_shortfall_avoided_t"].sum()),
              **{f"cvar_{round(a * 100):d}_avoided_t": float(tc[f"cvar_{round(a * 100):d}_avoided_t"].sum())
                 for a in alphas},
              "pool": pool, "n_draws": int(unmet.sizes[DRAW]), "method": METHOD}
    after.attrs.update(units="t", method=METHOD)
    return Rerun(cells=cells, projects=proj, totals=totals, after=after)


# ---------------------------------------------------------------------- permitting → production draws
def _track_for(track: str, country: str, params) -> str:
    """``track`` where it applies to the project's country (policy/permitting.yml), else ``ordinary``."""
    spec = params["tracks"][track]
    countries = spec["countries"]
    if countries == "any":
        return track
    if isinstance(countries, str):
        from critmin.importers import groups

        countries = groups()[countries]["members"]
    codes = {c.strip() for c in country.replace(",", ";").split(";") if c.strip()}
    return track if codes & set(countries) else "ordinary"


def permitting_draws(projects: pd.DataFrame, horizon_months: int, *, track: str, n: int, seed: int,
                     start_year: int) -> tuple[pd.DataFrame, xr.DataArray]:
    """Months of production inside the horizon per draw and ``p_produces_within`` per project.

    Each project's timeline comes from :func:`critmin.policy.permitting.time_to_first_production` with its own
    generator ``default_rng(SeedSequence([seed, crc32(project_id)]))`` (reproducible, independent of the other
    candidates and of the ensemble's stream), on ``track`` where it applies to the project's country and the
    ordinary track elsewhere. ``p = mean(t_first ≤ H)``, which is exactly
    ``permitting.p_produces_within(project, H, track, n, rng)`` for the same generator.

    A ``p_produces_within`` given in the candidates CSV is used as is (a per-draw Bernoulli on it with
    full-horizon output). Fallback (documented): where permitting.py cannot model a project (a programme or framework without a
    supply-chain stage, or a status it does not map: ConfigError/DataError), the expected-start-year rule is
    used: p = 1 if ``expected_start_year ≤ start_year + H/12`` else 0, producing for the whole horizon when 1.

    Returns
    -------
    info : DataFrame indexed by project_id
        ``p_produces_within`` (0..1, NaN if neither method applies), ``track_used``, ``p_source``,
        ``median_months_to_production`` (months), ``permitting_seed``.
    producing : DataArray (draw, project)
        Months of production inside the horizon, 0..H.
    """
    import zlib

    from critmin.policy import permitting

    if track not in permitting.TRACKS:
        raise ConfigError(f"unknown --track {track!r}; expected one of {', '.join(permitting.TRACKS)}")
    params = permitting.load_params()
    H = float(horizon_months)
    rows, months = [], []
    for _, r in projects.iterrows():
        pid = str(r["project_id"])
        row = dict(r)
        country = str(row.get("country") if isinstance(row.get("country"), str) else row.get("country_iso3", ""))
        row["country"] = country  # permitting reads ``country``; a user CSV has only country_iso3
        sub = int(zlib.crc32(pid.encode("utf-8")))
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), sub]))
        used = _track_for(track, country, params)
        rec = {"project_id": pid, "track_used": used, "permitting_seed": f"SeedSequence([{seed}, {sub}])"}
        given = pd.to_numeric(pd.Series([row.get("p_produces_within", np.nan)]), errors="coerce").iloc[0]
        if np.isfinite(given):
            # the user's own probability wins (candidates CSV); full-horizon output in a Bernoulli(p) draw
            rec.update(p_produces_within=float(given), track_used="", median_months_to_production=np.nan,
                       p_source="candidates CSV p_produces_within (per-draw Bernoulli, full horizon)")
            months.append(H * (rng.random(n) < float(given)))
            rows.append(rec)
            continue
        try:
            t = permitting.time_to_first_production(row, used, n, rng, params)
        except (ConfigError, DataError) as exc:
            start = row.get("expected_start_year", np.nan)
            start = np.nan if start is None or pd.isna(start) else float(start)
            p = np.nan if np.isnan(start) else float(start <= start_year + H / 12.0)
            rec.update(p_produces_within=p, track_used="", median_months_to_production=np.nan,
                       p_source=(f"fallback, expected start year {start:g} vs {start_year} + {H / 12:g} yr"
                                 if not np.isnan(start) else "none") + f" (permitting.py: {exc})")
            months.append(np.full(n, 0.0 if np.isnan(p) else H * p))
        else:
            rec.update(p_produces_within=float(np.mean(t <= H)), median_months_to_production=float(np.median(t)),
                       p_source=f"critmin.policy.permitting, track {used}, {n} draws")
            months.append(np.clip(H - t, 0.0, H))
        rows.append(rec)
    info = pd.DataFrame(rows, columns=["project_id", "p_produces_within", "track_used", "p_source",
                                       "median_months_to_production", "permitting_seed"]).set_index("project_id")
    ids = [str(p) for p in projects["project_id"]]
    arr = np.stack(months, axis=1) if months else np.zeros((n, 0))
    producing = xr.DataArray(arr, dims=[DRAW, PROJECT], coords={DRAW: np.arange(n), PROJECT: ids},
                             attrs={"units": "months", "horizon_months": H})
    return info, producing


# ---------------------------------------------------------------------- allied share per stage
def allied_share_gain(network, added: pd.DataFrame, allied: Sequence[str]) -> pd.DataFrame:
    """Allied share of world output per stage before and after the added capacity.

    Parameters
    ----------
    network : Network
        World output per supplier at a stage = Σ_k share[c, s, i, k] · demand[c, s, k] (t/month → ×12 t/yr).
    added : DataFrame
        ``commodity, capacity_stage, capacity_tpa_network, country`` (t/yr, network basis); one row per project.
    allied : list of ISO3 codes (e.g. the MSP group); ``ROW`` (other countries) is never allied.

    Returns
    -------
    DataFrame per (commodity, stage): world output and allied output (t/yr), capacity added (t/yr),
    allied share before / after and the gain (fraction, 0..1).
    """
    base = network.baseline
    out_i = (base.share * base.demand).sum(CONSUMER) * 12.0            # (commodity, stage, supplier) t/yr
    sup = [str(s) for s in out_i["supplier"].values]
    is_allied = xr.DataArray([s in set(allied) for s in sup], dims=["supplier"], coords={"supplier": sup})
    rows = []
    for (c, s), grp in added.groupby(["commodity", "capacity_stage"]):
        world = float(out_i.sel({COMMODITY: c, STAGE: s}).sum())
        ally = float(out_i.sel({COMMODITY: c, STAGE: s}).where(is_allied, 0.0).sum())
        add = float(grp["capacity_tpa_network"].sum())
        add_allied = float(grp.loc[grp["country"].isin(list(allied)), "capacity_tpa_network"].sum())
        before = ally / world if world > 0 else np.nan
        after = (ally + add_allied) / (world + add) if world + add > 0 else np.nan
        rows.append({"commodity": c, "stage": s, "basis": network.basis.get((c, s), ""), "world_output_tpa": world,
                     "allied_output_tpa": ally, "capacity_added_tpa": add, "allied_share_before": before,
                     "allied_share_after": after, "allied_share_gained": after - before})
    return pd.DataFrame(rows, columns=["commodity", "stage", "basis", "world_output_tpa", "allied_output_tpa",
                                       "capacity_added_tpa", "allied_share_before", "allied_share_after",
                                       "allied_share_gained"])


__all__ = ["BASIS_RULES", "LI_IN_LI2CO3", "METHOD", "Rerun", "added_supply", "allied_share_gain",
           "capacity_in_network_basis", "permitting_draws", "rerun_portfolio", "var_cvar"]

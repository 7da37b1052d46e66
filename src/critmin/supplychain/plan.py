"""The Monte Carlo's plan: hazard rows matched to the network's flows and packed as plain arrays (pure).

:func:`build_plan` is the one place where hazards meet the network: for every (commodity, stage, supplier,
consumer) flow it finds the hazard rows that act on it (the most specific row wins; ``*`` is a wildcard),
the multiplier ε · τ of the ROW consumer, and, where the network has feed mixes, the processor entries of
the indirect cuts. The :class:`Plan` it returns holds numpy arrays only, so that it pickles cheaply to Dask
workers; sampling (:mod:`critmin.supplychain.sampling`) and the ensemble (:mod:`critmin.supplychain.ensemble`)
read nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, RESIDUAL, STAGES
from critmin.errors import ConfigError
from critmin.supplychain.kernel import CONSUMER, STAGE, SUPPLIER, Baseline, Responses
from critmin.supplychain.measures import ALL, MAGNITUDES, MEASURES, WILD


@dataclass
class Plan:
    """Everything a chunk needs, as plain numpy arrays (cheap to pickle to Dask workers)."""

    commodities: list[str]
    stages: list[str]
    consumers: list[str]
    suppliers: list[str]                 # hazard suppliers (contribution dimension)
    blocs: dict[str, list[int]]          # bloc label → consumer indices
    months: int
    D: np.ndarray                        # (C, S, K) t/month
    u: np.ndarray                        # (C, S, K) domestic fraction
    leak: np.ndarray                     # (C, K)
    ramp: np.ndarray
    subst: np.ndarray
    recyc: np.ndarray
    stock0: np.ndarray                   # (C, K) t
    relmax: np.ndarray                   # (C, K) t/month
    stock_stage: int                     # index in stages, −1: none
    m_t: np.ndarray                      # (T,) months since the response clock started
    # hazard rows
    r_group: np.ndarray                  # (R,) coupling group
    r_commodity: np.ndarray              # (R,) commodity index
    p_h: np.ndarray                      # (R,) probability of an onset within the horizon
    dur_fixed: np.ndarray                # (R,) months, NaN: Kaplan–Meier
    mix_cum: np.ndarray                  # (R, n_measures) cumulative measure mix
    mag_lo: np.ndarray                   # (R, n_measures)
    mag_hi: np.ndarray
    n_groups: int
    km_t: np.ndarray
    km_cdf: np.ndarray
    # flow units: one (commodity, stage, supplier, consumer) flow with a hazard
    unit_c: np.ndarray
    unit_s: np.ndarray
    unit_k: np.ndarray
    unit_i: np.ndarray                   # index in ``suppliers``
    unit_supplier: list[str]
    unit_w: np.ndarray                   # share · D · (1 − leak), t/month withheld at cut 1
    unit_frac: np.ndarray                # share · (1 − leak), fraction of demand withheld at cut 1
    unit_rows: list[list[tuple[int, float]]] = field(default_factory=list)   # (plan row, multiplier ε·τ)
    chain: np.ndarray | None = None      # (C, S, K) bool: stage s feeds from the last stage before it with demand
    # indirect cuts: processor entries (commodity, stage, processor) in upstream → downstream order, each a list of
    # feed terms (feed share f, hazard rows on the feeder's flow to the processor, upstream entry or −1, feeder
    # index in ``suppliers``); per unit (entry, weight w) or (−1, 0)
    unit_ind: list[tuple[int, float]] = field(default_factory=list)
    ent_c: np.ndarray | None = None
    ent_s: np.ndarray | None = None      # entry → stage index
    ent_alias: np.ndarray | None = None  # entry → first entry with the same feed terms (computed once)
    ent_terms: list[list[tuple[float, list[tuple[int, float]], int, int]]] = field(default_factory=list)


def baseline_of(network: Any) -> Baseline:
    return network.baseline if hasattr(network, "baseline") else network


def _np(x: Any, like: xr.DataArray) -> np.ndarray:
    """Broadcast a response (float or DataArray over commodity[, consumer]) to (C, K) float64."""
    da = x if isinstance(x, xr.DataArray) else xr.DataArray(float(x))
    return np.ascontiguousarray((xr.zeros_like(like, dtype=float) + da).transpose(COMMODITY, CONSUMER).values,
                                dtype=np.float64)


def _horizon_p(hazards: pd.DataFrame, months: int) -> np.ndarray:
    h = months / 12.0
    shape = hazards["shape"].to_numpy(float)
    T = hazards["exposure_years"].to_numpy(float)
    p_const = 1.0 - (1.0 - hazards["p_annual"].to_numpy(float)) ** h
    with np.errstate(invalid="ignore", divide="ignore"):
        p_pred = 1.0 - (T / (T + h)) ** shape
    return np.where(np.isfinite(p_pred), p_pred, p_const)


def build_plan(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, months: int = 12,
               blocs: Mapping[str, Sequence[str]] | None = None) -> Plan:
    """Match hazard rows to the network's flows (most specific row wins) and pack the numbers.

    Parameters
    ----------
    network : Network or Baseline
    hazards : DataFrame from :func:`critmin.supplychain.hazards.estimate_hazards`
    responses : Responses, default no response
    months : int, horizon
    blocs : bloc label → member consumers; default ``{"USA+JPN": ("USA", "JPN")}`` when both are consumers.
    """
    base = baseline_of(network)
    responses = responses or Responses()
    if months < 1:
        raise ConfigError(f"months must be ≥ 1, got {months}")
    D_da = base.demand.transpose(COMMODITY, STAGE, CONSUMER)
    stages = [s for s in STAGES if s in list(D_da[STAGE].values)]
    D_da = D_da.sel({STAGE: stages})
    commodities = [str(c) for c in D_da[COMMODITY].values]
    consumers = [str(k) for k in D_da[CONSUMER].values]
    share = base.share.transpose(COMMODITY, STAGE, SUPPLIER, CONSUMER).sel({STAGE: stages, COMMODITY: commodities,
                                                                            CONSUMER: consumers})
    suppliers_all = [str(i) for i in share[SUPPLIER].values]
    D = np.ascontiguousarray(D_da.values, dtype=np.float64)
    u = np.ascontiguousarray(base.domestic.transpose(COMMODITY, STAGE, CONSUMER)
                             .sel({STAGE: stages, COMMODITY: commodities, CONSUMER: consumers}).values, dtype=np.float64)
    ck = D_da.isel({STAGE: 0}, drop=True)
    leak = _np(responses.leakage, ck)
    if blocs is None:
        blocs = {"USA+JPN": ("USA", "JPN")} if {"USA", "JPN"} <= set(consumers) else {}
    bloc_idx: dict[str, list[int]] = {}
    for label, members in blocs.items():
        missing = [m for m in members if m not in consumers]
        if missing:
            raise ConfigError(f"bloc {label}: {', '.join(missing)} not a consumer of the network "
                              f"({', '.join(consumers)})")
        bloc_idx[label] = [consumers.index(m) for m in members]

    # hazard rows: which apply to each (country, commodity, stage); most specific wins (exact > wildcard)
    hz = hazards.reset_index(drop=True)
    p_h = _horizon_p(hz, months)
    sh = share.values
    km = hazards.attrs.get("duration_km", {"months": [], "cdf": []})
    mags = hazards.attrs.get("magnitudes", MAGNITUDES)
    eps_da = getattr(network, "row_export_share", None)
    third = getattr(network, "third_exports", None)

    def eps(c: str, s: str, i: str) -> float:
        if eps_da is None or i not in eps_da[SUPPLIER].values:
            return 1.0
        return float(eps_da.sel({COMMODITY: c, STAGE: s, SUPPLIER: i}))

    def tau(c: str, s: str, i: str, tgt: str) -> float:
        """Share of i's third-country exports going to ``tgt`` (BACI); 1 where no data (upper bound)."""
        if third is None or third.empty:
            return 1.0
        te = third[(third.exporter == i) & (third.commodity == c) & (third.stage == s)]
        tot = float(te.quantity.sum())
        return float(te[te.importer == tgt].quantity.sum()) / tot if tot > 0 else 1.0

    plan_rows: dict[tuple[int, str, int, str], int] = {}   # (hazard row, country, commodity, target) → plan row
    r_group, r_comm, r_src = [], [], []
    groups: dict[tuple[str, int, str], int] = {}
    units: dict[tuple[int, int, int, int], list[int]] = {}
    hz_country = hz["country"].to_numpy(str)
    hz_comm = hz["commodity"].to_numpy(str)
    hz_stage = hz["stage"].to_numpy(str)
    hz_target = hz["target"].to_numpy(str)
    spec = (hz_country != WILD).astype(int) * 4 + (hz_comm != WILD).astype(int) * 2 + (hz_stage != WILD).astype(int)
    def match_rows(ci: int, si: int, i: str) -> list[tuple[str, int, bool]]:
        """(target, plan row, physical) of the hazard rows acting on supplier i at (commodity, stage)."""
        c, s = commodities[ci], stages[si]
        # the background row (country *) applies to countries, not to the ROW aggregate
        match = (((hz_country == i) | ((hz_country == WILD) & (len(i) == 3) & (i != "ROW")))
                 & ((hz_comm == c) | (hz_comm == WILD)) & ((hz_stage == s) | (hz_stage == WILD))
                 & (p_h > 0))
        out = []
        for tgt in sorted(set(hz_target[match])):
            cand = np.flatnonzero(match & (hz_target == tgt))
            best = int(cand[np.argmax(spec[cand])])    # most specific row; ties: the first
            # one coupling group per (country, commodity, target): stages share random numbers
            key = (best, i, ci, tgt)
            if key not in plan_rows:
                plan_rows[key] = len(r_group)
                r_group.append(groups.setdefault((i, ci, tgt), len(groups)))
                r_comm.append(ci)
                r_src.append(best)
            out.append((tgt, plan_rows[key], bool(hz.at[best, "w_disruption"] >= 0.5)))
        return out

    for ci, c in enumerate(commodities):
        for si, s in enumerate(stages):
            for ii, i in enumerate(suppliers_all):
                if not np.any(sh[ci, si, ii] > 0):
                    continue
                for tgt, row, physical in match_rows(ci, si, i):
                    for ki, k in enumerate(consumers):
                        if k == i or sh[ci, si, ii, ki] <= 0 or D[ci, si, ki] <= 0:
                            continue   # a country does not embargo itself; no flow, no loss
                        if tgt != ALL and tgt != k and not (k == RESIDUAL and tgt not in consumers):
                            continue   # targeted at another consumer (a target outside the network is in ROW)
                        mult = 1.0
                        if k == RESIDUAL:
                            # as scenario_cuts.to_cut: ROW includes the exporter's home use, which an export
                            # restriction does not touch (ε); a physical disruption hits it too
                            mult = (1.0 if physical else eps(c, s, i)) * (1.0 if tgt == ALL else tau(c, s, i, tgt))
                        if mult > 0:
                            units.setdefault((ci, si, ii, ki), []).append((row, mult))
    # indirect cuts (critmin.supplychain.indirect): processors whose feeders may withhold, upstream → downstream
    entries, ent_terms, unit_ind, origins = _feed_entries(network, commodities, stages, suppliers_all, sh, D,
                                                          match_rows, units)
    r_src_a = np.asarray(r_src, dtype=int)
    # contributions go to suppliers with a direct hazard and to the origins of indirect losses (a processor
    # reached only indirectly is not credited: −1)
    sup_used = sorted({suppliers_all[key[2]] for key, rows in units.items() if rows} | origins)
    keys = sorted(units)
    unit_c = np.array([k[0] for k in keys], dtype=int)
    unit_s = np.array([k[1] for k in keys], dtype=int)
    unit_k = np.array([k[3] for k in keys], dtype=int)
    unit_i = np.array([sup_used.index(suppliers_all[k[2]]) if units[k] else -1 for k in keys], dtype=int)
    frac = np.array([sh[k[0], k[1], k[2], k[3]] * (1.0 - leak[k[0], k[3]]) for k in keys], dtype=float)
    # the kernel's order: (Σ_i share · cut) · D · (1 − leak); a unit carries share · D · (1 − leak)
    w = np.array([sh[k[0], k[1], k[2], k[3]] * D[k[0], k[1], k[3]] * (1.0 - leak[k[0], k[3]]) for k in keys],
                 dtype=float)
    mix = hz.loc[r_src_a, [f"w_{m}" for m in MEASURES]].to_numpy(float) if len(r_src_a) else np.zeros((0, 6))
    mix = np.where(mix.sum(1, keepdims=True) > 0, mix, np.eye(len(MEASURES))[MEASURES.index("disruption")])
    mix_cum = np.cumsum(mix / mix.sum(1, keepdims=True), axis=1)
    lo = np.tile([float(mags[m]["lo"]) for m in MEASURES], (len(r_src_a), 1))
    hi = np.tile([float(mags[m]["hi"]) for m in MEASURES], (len(r_src_a), 1))
    if len(r_src_a):
        rlo = hz.loc[r_src_a, "magnitude_lo"].to_numpy(float)
        rhi = hz.loc[r_src_a, "magnitude_hi"].to_numpy(float)
        lo = np.where(np.isnan(rlo)[:, None], lo, rlo[:, None])
        hi = np.where(np.isnan(rhi)[:, None], hi, rhi[:, None])
    # stage s feeds from the last stage before it with demand (the kernel carries f_up through empty stages)
    chain = np.zeros_like(D, dtype=bool)
    upstream = np.cumsum(D > 0, axis=1) - (D > 0)                # stages before s with demand
    chain[:, 1:, :] = (u[:, 1:, :] > 0) & (D[:, 1:, :] > 0) & (upstream[:, 1:, :] > 0)
    month_idx = np.arange(months)
    return Plan(
        commodities=commodities, stages=stages, consumers=consumers, suppliers=sup_used, blocs=bloc_idx,
        months=months, D=D, u=u, leak=leak, ramp=_np(responses.ramp, ck), subst=_np(responses.substitution, ck),
        recyc=_np(responses.recycling, ck), stock0=_np(responses.stock0, ck), relmax=_np(responses.release_max, ck),
        stock_stage=stages.index(responses.stock_stage) if responses.stock_stage in stages else -1,
        m_t=np.clip(month_idx - responses.response_start + 1, 0, None).astype(np.float64),
        r_group=np.asarray(r_group, dtype=int), r_commodity=np.asarray(r_comm, dtype=int),
        p_h=p_h[r_src_a] if len(r_src_a) else np.zeros(0),
        dur_fixed=hz.loc[r_src_a, "duration_months"].to_numpy(float) if len(r_src_a) else np.zeros(0),
        mix_cum=mix_cum, mag_lo=lo, mag_hi=hi, n_groups=len(groups),
        km_t=np.asarray(km["months"], dtype=float), km_cdf=np.asarray(km["cdf"], dtype=float),
        unit_c=unit_c, unit_s=unit_s, unit_k=unit_k, unit_i=unit_i, unit_supplier=[suppliers_all[k[2]] for k in keys],
        unit_w=w, unit_frac=frac, unit_rows=[units[k] for k in keys], chain=chain,
        unit_ind=[unit_ind.get(k, (-1, 0.0)) for k in keys],
        ent_c=np.array([e[0] for e in entries], dtype=int), ent_s=np.array([e[1] for e in entries], dtype=int),
        ent_alias=_aliases(entries, ent_terms),
        ent_terms=[[(f, rows, up, sup_used.index(j) if j in sup_used else -1) for f, rows, up, j in t]
                   for t in ent_terms],
    )


def _aliases(entries: list[tuple[int, int, str]], terms: list[list[tuple]]) -> np.ndarray:
    """Entry → the first entry of the same commodity and stage with identical feed terms (upstream aliased)."""
    alias = np.arange(len(entries))
    seen: dict[tuple, int] = {}
    for e, ((ci, si, _), t) in enumerate(zip(entries, terms, strict=True)):
        sig = (ci, si, tuple((f, tuple(rows), int(alias[up]) if up >= 0 else -1, j) for f, rows, up, j in t))
        alias[e] = seen.setdefault(sig, e)
    return alias


def _feed_entries(network: Any, commodities: list[str], stages: list[str], suppliers: list[str], sh: np.ndarray,
                  D: np.ndarray, match_rows: Callable[[int, int, str], list[tuple[str, int, bool]]],
                  units: dict[tuple[int, int, int, int], list[tuple[int, float]]]):
    """Processor entries of the indirect cuts and the flows they reach (adds units without a direct hazard).

    An entry (commodity, stage s', processor p) exists where some feeder of p at the feed stage has a hazard
    row on its flow to p (target ``all`` or p; p's own restriction on itself does not count, a physical
    disruption does) or is itself an entry one stage up. Its flows p → k get weight 1 (named k ≠ p), ε_p (ROW)
    or none (k = p), as :func:`critmin.supplychain.indirect.flow_weights`.
    """
    fm = getattr(network, "feed_mix", None)
    fs = getattr(network, "feed_stage", None)
    entries: list[tuple[int, int, str]] = []
    terms: list[list[tuple[float, list[tuple[int, float]], int, str]]] = []
    unit_ind: dict[tuple[int, int, int, int], tuple[int, float]] = {}
    origins: set[str] = set()
    if fm is None or fs is None:
        return entries, terms, unit_ind, origins
    from critmin.supplychain.indirect import PROCESSOR, flow_weights

    fm = fm.reindex({COMMODITY: commodities, STAGE: stages}).fillna(0.0)
    fm_v = fm.transpose(COMMODITY, STAGE, PROCESSOR, SUPPLIER).values
    procs = [str(p) for p in fm[PROCESSOR].values]
    feeders = [str(j) for j in fm[SUPPLIER].values]
    prev = fs.reindex({COMMODITY: commodities, STAGE: stages}).fillna(-1).astype(int).values
    base = baseline_of(network)
    wts = flow_weights(base.share, getattr(network, "row_export_share", None)).transpose(
        COMMODITY, STAGE, SUPPLIER, CONSUMER).sel({COMMODITY: commodities, STAGE: stages,
                                                   SUPPLIER: suppliers}).values
    where: dict[tuple[int, int, str], int] = {}
    for si in range(len(stages)):                    # upstream → downstream: feeders' entries exist first
        for ci in range(len(commodities)):
            sp = prev[ci, si]
            if sp < 0:
                continue
            for pi, p in enumerate(procs):
                row = fm_v[ci, si, pi]
                t = []
                for ji in np.flatnonzero(row > 0):
                    j = feeders[ji]
                    rows = [(r, 1.0) for tgt, r, physical in match_rows(ci, sp, j)
                            if (tgt == ALL or tgt == p) and (j != p or physical)]
                    up = where.get((ci, sp, j), -1)
                    if rows or up >= 0:
                        t.append((float(row[ji]), rows, up, j))
                        origins.update([j] if rows else [])
                if t:
                    where[(ci, si, p)] = len(entries)
                    entries.append((ci, si, p))
                    terms.append(t)
    for (ci, si, p), e in where.items():
        if p not in suppliers:
            continue
        ii = suppliers.index(p)
        for ki in range(D.shape[2]):
            if wts[ci, si, ii, ki] > 0 and D[ci, si, ki] > 0:
                units.setdefault((ci, si, ii, ki), [])
                unit_ind[(ci, si, ii, ki)] = (e, float(wts[ci, si, ii, ki]))
    # origins of a downstream entry are those of its upstream entries: already collected at their own stage
    return entries, terms, unit_ind, origins


__all__ = ["Plan", "baseline_of", "build_plan"]

"""Sampled disruptions: onsets, durations and magnitudes per draw, and the cuts they make on each flow (pure).

:func:`sample_events` draws the events of a chunk from a :class:`~critmin.supplychain.plan.Plan` and a
generator; :func:`row_cuts`, :func:`unit_cut`, :func:`entry_losses` and :func:`flow_cut` turn them into the
monthly cut of every flow, direct and indirect. :func:`sample_cuts` writes them into the dense ``cut`` array of
:func:`critmin.supplychain.kernel.simulate`; the ensemble uses the same functions on the draws it gathers.

*Sampling.* Within a horizon of M months each row has at most one onset, with probability p(M/12), at a
time uniform over the horizon; the cut in month t is magnitude × the overlap of [onset, onset + duration)
with [t, t + 1). Rows of one country × commodity × target share their random numbers across stages
(comonotone: one announcement usually covers several stages, e.g. ore and processed), rows of different
commodities or targets are independent. Several rows on the same flow combine as independent measures,
1 − Π(1 − cut), the rule of :func:`critmin.supplychain.scenario_cuts.to_cut`. On the ``ROW`` consumer an export
restriction withholds only the exported share ε of the supplier's flow (ROW includes the exporter's own use,
``Network.row_export_share``); a physical disruption hits every buyer and all of it; a measure targeted at a
country outside the named consumers hits ROW in proportion to the supplier's third-country exports going
there (BACI, ``Network.third_exports``; 1 where there are none).

*Indirect cuts.* Where the network has feed mixes (``Network.feed_mix``), a processor country's output is cut
by the share of its feed its feeders withhold, carried down the chain (:mod:`critmin.supplychain.indirect`):
the hazard rows acting on a feeder's flow to the processor (target ``all`` or the processor; a country's own
restriction does not restrict itself, a physical disruption does) give, per draw and month,
ind = min(1, Σ_j f_j · (d_j + ind_j − d_j · ind_j)), and every flow of the processor to a consumer k ≠ p gets
1 − (1 − direct) · (1 − w · ind) (w = 1, or ε for ROW). :func:`sample_cuts` and the ensemble compute the
flows' cuts with the same functions (:func:`entry_losses`, :func:`flow_cut`), so both see the same cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, DRAW
from critmin.errors import ConfigError
from critmin.supplychain.kernel import CONSUMER, MONTH, STAGE, SUPPLIER, Responses
from critmin.supplychain.plan import Plan, baseline_of, build_plan


def entry_losses(plan: Plan, c: int, cut_of: Callable[[int], np.ndarray], want_origins: bool = False
                  ) -> tuple[dict[int, np.ndarray], dict[int, dict[int, np.ndarray]]]:
    """Indirect loss of every processor entry of commodity c: ind = min(1, Σ f · (d + ind_up − d · ind_up)).

    ``cut_of(row)`` gives a plan row's cut (T, n); d is the feeder's direct cut on its flow to the processor.
    Entries with the same feed terms (e.g. every processor fed "as other countries") are computed once
    (``plan.ent_alias``); so is each feeder's d and total loss.

    Returns
    -------
    ind : canonical entry → (T, n) share of the processor's output lost
    orig : canonical entry → {supplier index: (n,)} month-summed loss by origin country (linear weights for the
        contribution split; with ``want_origins``)
    """
    ind: dict[int, np.ndarray] = {}
    orig: dict[int, dict[int, np.ndarray]] = {}
    if plan.ent_c is None or plan.ent_c.size == 0:
        return ind, orig
    d_cache: dict[tuple, np.ndarray] = {}
    t_cache: dict[tuple, np.ndarray] = {}
    canon = np.flatnonzero((plan.ent_c == c) & (plan.ent_alias == np.arange(plan.ent_c.size)))
    ent_s = plan.ent_s[canon]
    for si in np.unique(ent_s):           # stages upstream → downstream; entries of one stage are independent
        group = canon[ent_s == si]
        keys: dict[tuple, int] = {}       # distinct feeder losses (rows, upstream entry) of this stage
        F_rows: list[dict[int, float]] = []
        for e in group:
            coef: dict[int, float] = {}
            o_e: dict[int, np.ndarray] = {}
            for f, rows, up, jx in plan.ent_terms[e]:
                up = int(plan.ent_alias[up]) if up >= 0 else -1
                key = (tuple(rows), up)
                if key not in t_cache:
                    d = None
                    if rows:
                        d = d_cache.get(key[0])
                        if d is None:
                            d = d_cache[key[0]] = unit_cut(rows, cut_of)
                    iu = ind.get(up) if up >= 0 else None
                    if d is None and iu is None:
                        continue
                    t_cache[key] = d if iu is None else (iu if d is None else d + iu - d * iu)
                q = keys.setdefault(key, len(keys))
                coef[q] = coef.get(q, 0.0) + f
                if want_origins:
                    if rows:
                        o_e[jx] = o_e.get(jx, 0.0) + f * d_cache[key[0]].sum(axis=0)
                    for o, v in orig.get(up, {}).items():
                        o_e[o] = o_e.get(o, 0.0) + f * v
            F_rows.append(coef)
            orig[int(e)] = o_e
        if not keys:
            continue
        # Σ f · tot for every entry of the stage at once: one matrix product over the distinct feeder losses
        tots = list(keys)
        shape = t_cache[tots[0]].shape
        stack = np.stack([t_cache[k] for k in tots]).reshape(len(tots), -1)
        F = np.zeros((len(group), len(tots)))
        for r, coef in enumerate(F_rows):
            for q, f in coef.items():
                F[r, q] = f
        res = np.minimum(F @ stack, 1.0).reshape(len(group), *shape)
        for r, e in enumerate(group):
            if F_rows[r]:
                ind[int(e)] = res[r]
    return ind, orig


def flow_cut(plan: Plan, j: int, cut_of: Callable[[int], np.ndarray], ind: dict[int, np.ndarray]
                   ) -> np.ndarray | None:
    """Cut (T, n) of flow unit j: 1 − (1 − direct) · (1 − w · ind), the direct cut alone, or None (no cut)."""
    rows = plan.unit_rows[j]
    d = unit_cut(rows, cut_of) if rows else None
    e, w = plan.unit_ind[j] if plan.unit_ind else (-1, 0.0)
    e = int(plan.ent_alias[e]) if e >= 0 else -1
    if e >= 0 and e in ind:
        xi = w * ind[e]
        return xi if d is None else 1.0 - (1.0 - d) * (1.0 - xi)
    return d


@dataclass
class Events:
    """Sampled disruptions of one chunk, per plan row: (R, n) arrays."""

    occurs: np.ndarray      # bool
    onset: np.ndarray       # months from the start of the horizon
    duration: np.ndarray    # months (inf: beyond any horizon)
    magnitude: np.ndarray   # fraction withheld


def sample_events(plan: Plan, n: int, rng: np.random.Generator) -> Events:
    """Draw onsets, durations and magnitudes for ``n`` draws (vectorised, no per-draw loop).

    The generator is used in a fixed order that depends only on ``n`` and the plan: one uniform per
    (draw, coupling group) for occurrence, then four uniforms (onset, duration, measure, magnitude) for each
    (draw, group) pair that can occur in row-major order. Draws without an event cost one number per group.
    """
    R, G = plan.r_group.size, max(plan.n_groups, 1)
    u_occ = rng.random((n, G))
    g_p = np.zeros(G)
    np.maximum.at(g_p, plan.r_group, plan.p_h) if R else None
    cand = u_occ < g_p[None, :]                                   # the group's most likely row can occur
    draw_i, group_i = np.nonzero(cand)                            # row-major: reproducible order
    V = rng.random((draw_i.size, 4))
    slot = np.full((n, G), -1, dtype=np.int64)
    slot[draw_i, group_i] = np.arange(draw_i.size)
    occurs = np.zeros((R, n), dtype=bool)
    onset = np.zeros((R, n))
    duration = np.zeros((R, n))
    magnitude = np.zeros((R, n))
    km_t = np.append(plan.km_t, np.inf)                           # beyond the last observed end: +∞
    for r in range(R):   # rows (tens), each vectorised over draws
        g = plan.r_group[r]
        occ = u_occ[:, g] < plan.p_h[r]                           # comonotone within the group
        d_idx = np.flatnonzero(occ)
        v = V[slot[d_idx, g]]
        occurs[r, d_idx] = True
        onset[r, d_idx] = v[:, 0] * plan.months
        if np.isnan(plan.dur_fixed[r]):
            # inverse of the Kaplan–Meier CDF: the first end time whose CDF reaches u
            duration[r, d_idx] = km_t[np.searchsorted(plan.km_cdf, v[:, 1], side="left")]
        else:
            duration[r, d_idx] = plan.dur_fixed[r]
        meas = (v[:, 2:3] > plan.mix_cum[r, None, :-1]).sum(axis=1)
        lo, hi = plan.mag_lo[r, meas], plan.mag_hi[r, meas]
        magnitude[r, d_idx] = lo + (hi - lo) * v[:, 3]
    return Events(occurs=occurs, onset=onset, duration=duration, magnitude=magnitude)


def row_cuts(plan: Plan, ev: Events, rows: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Cut fraction per month of the given plan rows for the given draws: (len(rows), T, len(draws))."""
    t = np.arange(plan.months, dtype=np.float64)[None, :, None]
    on = ev.onset[np.ix_(rows, draws)][:, None, :]
    end = on + ev.duration[np.ix_(rows, draws)][:, None, :]
    overlap = np.minimum(t + 1.0, end) - np.maximum(t, on)
    np.clip(overlap, 0.0, 1.0, out=overlap)
    mag = np.where(ev.occurs[np.ix_(rows, draws)], ev.magnitude[np.ix_(rows, draws)], 0.0)
    overlap *= mag[:, None, :]
    return overlap


def unit_cut(rows: list[tuple[int, float]], cut_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """Cut of one flow from the rows acting on it: independent measures, 1 − Π(1 − mult · cut).

    The same rule as :func:`critmin.supplychain.scenario_cuts.to_cut`; a single row is just ``mult · cut``.
    """
    r0, m0 = rows[0]
    if len(rows) == 1:
        return cut_of(r0) * m0 if m0 != 1.0 else cut_of(r0)
    keep = 1.0 - m0 * cut_of(r0)
    for r, m in rows[1:]:
        keep *= 1.0 - m * cut_of(r)
    return 1.0 - keep


def sample_cuts(hazards: pd.DataFrame, network: Any, n_draws: int, months: int, rng: np.random.Generator, *,
                responses: Responses | None = None, chunk: int = 2_000, max_bytes: float = 2e9) -> xr.DataArray:
    """Sample disruptions as the kernel's dense ``cut`` array.

    Parameters
    ----------
    hazards : DataFrame from :func:`critmin.supplychain.hazards.estimate_hazards`
    network : Network or Baseline
    n_draws : int
    months : int, horizon
    rng : numpy Generator (the seed is the caller's to record)
    responses : only ``leakage`` is not needed here; accepted so that a plan can be shared
    chunk : draws filled at a time (bounds the temporaries)
    max_bytes : refuse to build a dense array larger than this (use :func:`critmin.supplychain.ensemble.run_ensemble`)

    Returns
    -------
    DataArray (draw, commodity, stage, supplier, consumer, month)
        Fraction (0..1) of each supplier's flow to each consumer withheld each month.
    """
    plan = build_plan(network, hazards, responses, months=months)
    base = baseline_of(network)
    suppliers = [str(i) for i in base.share[SUPPLIER].values]
    shape = (n_draws, len(plan.commodities), len(plan.stages), len(suppliers), len(plan.consumers), months)
    if np.prod(shape, dtype=float) * 8 > max_bytes:
        raise ConfigError(f"a dense cut array of {n_draws} draws needs {np.prod(shape, dtype=float) * 8 / 1e9:.1f} GB; "
                          "use run_ensemble, which never builds it")
    ev = sample_events(plan, n_draws, rng)
    out = np.zeros(shape, dtype=np.float64)
    sup_idx = np.array([suppliers.index(s) for s in plan.unit_supplier], dtype=int)
    for a in range(0, n_draws, chunk):
        draws = np.arange(a, min(a + chunk, n_draws))
        for c in range(len(plan.commodities)):   # per commodity: its rows' cuts, then every flow (direct + indirect)
            rows_c = np.flatnonzero(plan.r_commodity == c)
            if rows_c.size == 0:
                continue
            rc = row_cuts(plan, ev, rows_c, draws)                               # (rows, T, n)
            pos = {int(r): q for q, r in enumerate(rows_c)}
            cut_of = lambda r, rc=rc, pos=pos: rc[pos[r]]  # noqa: E731
            ind, _ = entry_losses(plan, c, cut_of)
            for j in np.flatnonzero(plan.unit_c == c):
                cut = flow_cut(plan, j, cut_of, ind)
                if cut is not None:
                    out[draws, plan.unit_c[j], plan.unit_s[j], sup_idx[j], plan.unit_k[j], :] = cut.T
    return xr.DataArray(out, dims=[DRAW, COMMODITY, STAGE, SUPPLIER, CONSUMER, MONTH],
                        coords={DRAW: np.arange(n_draws), COMMODITY: plan.commodities, STAGE: plan.stages,
                                SUPPLIER: suppliers, CONSUMER: plan.consumers, MONTH: np.arange(months)},
                        attrs={"units": "1", "long_name": "fraction of flow withheld"})


__all__ = ["Events", "entry_losses", "flow_cut", "row_cuts", "sample_cuts", "sample_events", "unit_cut"]

"""The Monte Carlo ensemble: sampled draws through the cascade kernel, reduced chunk by chunk (pure; Dask optional).

*Propagation.* Per commodity, the draws in which one of its hazard rows bites are gathered; their flows' cuts
(direct and indirect, :mod:`critmin.supplychain.sampling`) give the supply withheld from each consumer at each
stage and month, which runs through :func:`critmin.supplychain.kernel.cascade`, the same arithmetic as
:func:`critmin.supplychain.kernel.simulate`; the cumulative unmet demand is scattered back to those draws (every
other draw is undisturbed: the kernel's answer there is exactly 0). Surge is 0 in the ensemble.

*Contributions.* Contribution of supplier i: E[L · a_i] with a_i the supplier's share of the draw's
disruption at that cell, a_i = x_i / Σ_j x_j, where x_i is the fraction of the cell's demand withheld
by i summed over months, plus the same at upstream stages that feed the cell (the consumer's own processors,
u > 0, carried through stages where the consumer has no demand); an indirect cut is credited to the countries
where it originates (the feeders that withhold, by their month-summed share f · d of the processor's loss), not
to the processor. The contributions add up to the expected shortfall (a per-draw pro-rata allocation, Euler-like
for this piecewise-linear model); a bloc's contribution is the sum of its members'.

*Chunks.* Draws run in chunks; chunk k uses ``SeedSequence(seed).spawn(n_chunks)[k]`` and is reduced to sums,
counts, contributions and its upper tails (:mod:`critmin.supplychain.reporting`), merged in chunk order, so the
result is bit-identical wherever the chunks run (this process or a Dask cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, DRAW
from critmin.errors import ConfigError
from critmin.supplychain.hazards import ESTIMATOR
from critmin.supplychain.kernel import CONSUMER, STAGE, SUPPLIER, Responses, cascade
from critmin.supplychain.plan import Plan, build_plan
from critmin.supplychain.reporting import ALPHAS, merge_tails, tail_size, upper_tail, var_cvar_tail
from critmin.supplychain.sampling import Events, entry_losses, flow_cut, row_cuts, sample_events, unit_cut


def _withheld(plan: Plan, c: int, rows_c: np.ndarray, cuts: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supply withheld from each consumer of commodity c, and by whom, in the gathered draws.

    Parameters
    ----------
    cuts : (R_c, T, na), the cuts of the commodity's plan rows ``rows_c`` (:func:`row_cuts`)

    Returns
    -------
    withheld : (S, K, T, na) t/month, Σ over flows of share · D · (1 − leakage) · cut (the kernel's input)
    x : (I, S, K, na) fraction of the cell's demand withheld by each supplier, summed over months
    touched : (S, K) bool, cells with a direct or indirect cut
    """
    S, K = plan.D.shape[1:]
    T, na = cuts.shape[1:]
    I_ = len(plan.suppliers)
    pos = {int(r): j for j, r in enumerate(rows_c)}
    withheld = np.zeros((S, K, T, na))                      # t/month, draws last
    x = np.zeros((I_, S, K, na))                            # withheld demand fraction, summed over months
    touched = np.zeros((S, K), dtype=bool)
    cut_of = lambda r, cuts=cuts, pos=pos: cuts[pos[r]]  # noqa: E731
    ind, orig = entry_losses(plan, c, cut_of, want_origins=True)
    # flows reached only indirectly: summed per (stage, consumer, processor entry) before touching the arrays
    w_ind: dict[tuple[int, int, int], list[float]] = {}
    for j in np.flatnonzero(plan.unit_c == c):              # flows with a hazard, direct or indirect (tens)
        s, k = plan.unit_s[j], plan.unit_k[j]
        e, w = plan.unit_ind[j] if plan.unit_ind else (-1, 0.0)
        e = int(plan.ent_alias[e]) if e >= 0 else -1
        if not plan.unit_rows[j]:
            if e in ind:
                tot = w_ind.setdefault((s, k, e), [0.0, 0.0])
                tot[0] += plan.unit_w[j] * w
                tot[1] += plan.unit_frac[j] * w
            continue
        cut = flow_cut(plan, j, cut_of, ind)
        withheld[s, k] += plan.unit_w[j] * cut
        touched[s, k] = True
        if e in ind:
            # split between the direct hazard (the supplier) and the origins of the indirect loss
            d = unit_cut(plan.unit_rows[j], cut_of)
            x[plan.unit_i[j], s, k] += plan.unit_frac[j] * d.sum(axis=0)
            for o, v in orig[e].items():
                x[o, s, k] += plan.unit_frac[j] * w * v
        else:
            x[plan.unit_i[j], s, k] += plan.unit_frac[j] * cut.sum(axis=0)
    for (s, k, e), (cw, cf) in w_ind.items():
        withheld[s, k] += cw * ind[e]
        touched[s, k] = True
        for o, v in orig[e].items():               # credited to the origins of the processor's loss
            x[o, s, k] += cf * v
    return withheld, x, touched


def _reach(plan: Plan, c: int, touched: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (stage, consumer) cells of commodity c a disruption reaches, as the kernel carries f_up.

    A cell is reached when something is withheld there (``touched``) or when the consumer's own processors
    (u > 0) are fed by a reached stage upstream, carried through stages where the consumer has no demand.

    Returns
    -------
    reach : (S, K) bool
    prev : (S, K) bool, whether the consumer's last stage with demand before s was reached
    """
    S, K = touched.shape
    reach, prev = np.zeros((S, K), dtype=bool), np.zeros((S, K), dtype=bool)
    reach_prev = np.zeros(K, dtype=bool)
    for s in range(S):
        prev[s] = reach_prev
        reach[s] = touched[s] | (plan.chain[c, s] & reach_prev)
        reach_prev = np.where(plan.D[c, s] > 0, reach[s], reach_prev)
    return reach, prev


def _contributions(plan: Plan, c: int, x: np.ndarray, reach: np.ndarray, prev: np.ndarray,
                   acc: np.ndarray) -> np.ndarray:
    """Σ over the gathered draws of L · a_i per supplier, (I, S, K) t; ``acc`` (S, K, na) is L.

    x is carried down the stages as the kernel carries f_up: to a consumer's own processors (u > 0) and through
    stages where it has no demand; only reached cells are split (elsewhere L = 0).
    """
    S, K = reach.shape
    out = np.zeros((x.shape[0], S, K))
    for s in range(S):
        if s > 0:
            dead = ~(plan.D[c, s] > 0) & prev[s]
            if dead.any():
                x[:, s, dead] += x[:, s - 1, dead]
            fed = plan.chain[c, s] & prev[s]
            if fed.any():
                x[:, s, fed] += x[:, s - 1, fed]
        if not reach[s].any():
            continue
        ks = np.flatnonzero(reach[s])
        xs = x[:, s, ks].sum(axis=0)                              # (k, na)
        with np.errstate(invalid="ignore", divide="ignore"):
            share_i = np.where(xs > 0, x[:, s, ks] / xs, 0.0)   # (I, k, na)
        out[:, s, ks] = (share_i * acc[s, ks][None]).sum(axis=-1)
    return out


def _propagate(plan: Plan, ev: Events, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative unmet demand per draw, and who causes it: gather the disrupted draws, run the kernel, scatter.

    Returns
    -------
    L : (C, S, K, n) t, cumulative unmet demand over the horizon
    contrib : (I, C, S, K) t, Σ over draws of L · a_i (a_i: supplier i's share of the draw's withheld
        demand fraction at the cell and the upstream stages that feed it)
    """
    C, S, K = plan.D.shape
    L = np.zeros((C, S, K, n))
    contrib = np.zeros((len(plan.suppliers), C, S, K))
    for c in range(C):   # a loop over commodities (a handful); everything inside is vectorised over draws
        rows_c = np.flatnonzero(plan.r_commodity == c)
        if rows_c.size == 0:
            continue
        hit = ev.occurs[rows_c] & (ev.magnitude[rows_c] > 0) & (ev.duration[rows_c] > 0)
        draws = np.flatnonzero(hit.any(axis=0))                  # gather: only these draws lose anything
        if draws.size == 0:
            continue
        withheld, x, touched = _withheld(plan, c, rows_c, row_cuts(plan, ev, rows_c, draws))
        reach, prev = _reach(plan, c, touched)
        res = cascade(np.moveaxis(withheld, -1, 0), plan.D[c], plan.u[c], plan.m_t, ramp=plan.ramp[c],
                      substitution=plan.subst[c], recycling=plan.recyc[c], stock0=plan.stock0[c],
                      release_max=plan.relmax[c], stock_stage=plan.stock_stage, reach=reach)
        shortfall = np.moveaxis(res.shortfall, 0, -1)            # (S, K, T, na), withheld's memory layout
        acc = np.zeros((S, K, draws.size))
        for t in range(plan.months):   # cumulative sum in month order, as the kernel's cumsum
            acc += shortfall[:, :, t]
        L[c][:, :, draws] = acc                                  # scatter back
        contrib[:, c] = _contributions(plan, c, x, reach, prev, acc)
    return L, contrib


def simulate_unmet(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, n_draws: int,
                   months: int = 12, rng: np.random.Generator) -> xr.DataArray:
    """Per-draw cumulative unmet demand, as the ensemble computes it (for checks and custom statistics).

    Uses the generator exactly as :func:`critmin.supplychain.sampling.sample_cuts` does, so
    ``simulate(base, sample_cuts(..., rng=A))`` and ``simulate_unmet(..., rng=A')`` with ``A`` and ``A'`` seeded
    alike describe the same draws.

    Returns
    -------
    DataArray (draw, commodity, stage, consumer), t over the horizon.
    """
    plan = build_plan(network, hazards, responses, months=months)
    ev = sample_events(plan, n_draws, rng)
    L, _ = _propagate(plan, ev, n_draws)
    return xr.DataArray(np.moveaxis(L, -1, 0), dims=[DRAW, COMMODITY, STAGE, CONSUMER],
                        coords={DRAW: np.arange(n_draws), COMMODITY: plan.commodities, STAGE: plan.stages,
                                CONSUMER: plan.consumers}, attrs={"units": "t"})


def _chunk_stats(plan: Plan, seed_seq: np.random.SeedSequence, n: int, tail: int) -> dict[str, Any]:
    """One chunk: sample, propagate, reduce to sums, counts, the top ``tail`` values and contributions."""
    rng = np.random.default_rng(seed_seq)
    ev = sample_events(plan, n, rng)
    L, contrib = _propagate(plan, ev, n)
    B = len(plan.blocs)
    if B:   # a bloc is the sum of its members per draw (before any quantile); contributions add up too
        Lb = np.concatenate([L, *[L[:, :, idx, :].sum(axis=2, keepdims=True) for idx in plan.blocs.values()]], axis=2)
        contrib = np.concatenate([contrib, *[contrib[:, :, :, idx].sum(axis=3, keepdims=True)
                                             for idx in plan.blocs.values()]], axis=3)
    else:
        Lb = L
    tails = [upper_tail(row, tail) for row in Lb.reshape(-1, n)]   # per (commodity, stage, consumer) cell
    return {"n": n, "sum": Lb.sum(axis=-1), "npos": (Lb > 0).sum(axis=-1), "tails": tails, "contrib": contrib}


def _chunks(n_draws: int, chunk: int) -> list[int]:
    sizes = [chunk] * (n_draws // chunk)
    if n_draws % chunk:
        sizes.append(n_draws % chunk)
    return sizes


def run_ensemble(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, n_draws: int,
                 months: int = 12, seed: int, chunk: int = 25_000, scheduler: Any = None,
                 progress: Callable[[int, int], None] | None = None,
                 blocs: Mapping[str, Sequence[str]] | None = None) -> xr.Dataset:
    """Monte Carlo ensemble of disruptions: risk of unmet demand per commodity × stage × consumer.

    Parameters
    ----------
    network : Network or Baseline
    hazards : DataFrame from :func:`critmin.supplychain.hazards.estimate_hazards`
    responses : Responses (leakage, ramp, substitution, recycling, stockpile); default none
    n_draws : int, number of futures
    months : int, horizon (monthly steps)
    seed : int, recorded in ``attrs["seed"]``; chunk k uses ``SeedSequence(seed).spawn(n_chunks)[k]``
    chunk : int, draws per task (part of the reproducibility key, recorded in ``attrs["chunk"]``)
    scheduler : None (this process), a Dask scheduler address, or a ``distributed.Client``
    progress : callable(done_chunks, n_chunks), called in chunk order
    blocs : bloc label → member consumers (default USA+JPN when both are consumers)

    Returns
    -------
    Dataset (commodity, stage, consumer) with ``expected_shortfall``, ``var_95``, ``var_99``, ``cvar_95``,
    ``cvar_99`` (t, cumulative unmet demand over the horizon, the stage's basis), ``p_shortfall`` (1),
    ``demand`` (t over the horizon) and ``contribution`` (supplier, commodity, stage, consumer; t, sums to the
    expected shortfall over ``supplier``). Bloc consumers are summed per draw before any quantile.
    ``attrs``: seed, n_draws, months, chunk, estimator, hazard window, notes.

    Notes
    -----
    Results are bit-identical wherever the chunks run: each chunk's generator depends only on (seed, k), and
    every reduction runs in chunk order (sums) or on sorted values (quantiles, tail sums).
    """
    if n_draws < 1:
        raise ConfigError(f"--draws must be ≥ 1, got {n_draws}")
    if chunk < 1:
        raise ConfigError(f"chunk must be ≥ 1, got {chunk}")
    plan = build_plan(network, hazards, responses, months=months, blocs=blocs)
    sizes = _chunks(n_draws, chunk)
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    tail = tail_size(n_draws)
    C, S, K = plan.D.shape
    Kb = K + len(plan.blocs)
    total = np.zeros((C, S, Kb))
    npos = np.zeros((C, S, Kb), dtype=np.int64)
    contrib = np.zeros((len(plan.suppliers), C, S, Kb))
    tails: list[np.ndarray] = [np.zeros(0)] * (C * S * Kb)

    def reduce(res: dict[str, Any]) -> None:
        nonlocal total, npos, contrib
        total = total + res["sum"]
        npos = npos + res["npos"]
        contrib = contrib + res["contrib"]
        for j, v in enumerate(res["tails"]):
            tails[j] = merge_tails(tails[j], v, tail)

    if scheduler is None:
        for k, (n_k, sq) in enumerate(zip(sizes, seqs, strict=True)):
            reduce(_chunk_stats(plan, sq, n_k, tail))
            if progress:
                progress(k + 1, len(sizes))
    else:
        client, own = _client(scheduler)
        try:
            plan_f = client.scatter(plan, broadcast=True)
            futures = [client.submit(_chunk_stats, plan_f, sq, n_k, tail, pure=False)
                       for n_k, sq in zip(sizes, seqs, strict=True)]
            for k, fut in enumerate(futures):   # gather in order: reductions are order-deterministic
                reduce(fut.result())
                fut.release()
                if progress:
                    progress(k + 1, len(sizes))
        finally:
            if own:
                client.close()

    # statistics from the merged tails (sorted: sums independent of arrival order)
    var = {a: np.zeros(C * S * Kb) for a in ALPHAS}
    cvar = {a: np.zeros(C * S * Kb) for a in ALPHAS}
    for j, v in enumerate(tails):
        v = np.sort(v)
        for a in ALPHAS:
            var[a][j], cvar[a][j] = var_cvar_tail(v, n_draws, a)
    dims = (COMMODITY, STAGE, CONSUMER)
    consumers = plan.consumers + list(plan.blocs)
    coords = {COMMODITY: plan.commodities, STAGE: plan.stages, CONSUMER: consumers}
    demand = np.concatenate([plan.D, *[plan.D[:, :, idx].sum(axis=2, keepdims=True) for idx in plan.blocs.values()]],
                            axis=2) * months if plan.blocs else plan.D * months

    def da(arr: np.ndarray, units: str, name: str) -> xr.DataArray:
        return xr.DataArray(arr.reshape(C, S, Kb), dims=dims, coords=coords, attrs={"units": units, "long_name": name})

    ds = xr.Dataset({
        "expected_shortfall": da(total / n_draws, "t", "expected cumulative unmet demand over the horizon"),
        "var_95": da(var[0.95], "t", "value at risk 95 % of cumulative unmet demand"),
        "var_99": da(var[0.99], "t", "value at risk 99 % of cumulative unmet demand"),
        "cvar_95": da(cvar[0.95], "t", "conditional value at risk 95 % (expected shortfall beyond VaR)"),
        "cvar_99": da(cvar[0.99], "t", "conditional value at risk 99 %"),
        "p_shortfall": da(npos / n_draws, "1", "probability of any unmet demand over the horizon"),
        "demand": da(demand, "t", "baseline demand over the horizon"),
        "contribution": xr.DataArray(contrib / n_draws, dims=(SUPPLIER, *dims),
                                     coords={SUPPLIER: plan.suppliers, **coords},
                                     attrs={"units": "t", "long_name": "supplier's share of the expected shortfall"}),
    })
    ds.attrs.update({"seed": int(seed), "n_draws": int(n_draws), "months": int(months), "chunk": int(chunk),
                     "n_chunks": len(sizes), "estimator": hazards.attrs.get("estimator", ESTIMATOR),
                     "hazard_window": list(hazards.attrs.get("window", [])),
                     "catalogue_as_of": hazards.attrs.get("as_of", ""),
                     "blocs": {k: [plan.consumers[i] for i in v] for k, v in plan.blocs.items()},
                     "scheduler": "local" if scheduler is None else "dask"})
    return ds


def _client(scheduler: Any) -> tuple[Any, bool]:
    """A ``distributed.Client`` from an address (owned: closed after use) or the client given."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("Dask is not installed: pip install 'critmin[scale]'") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(str(scheduler), timeout="20s"), True
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None


def local_cluster(workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded processes (closed by the caller)."""
    try:
        from distributed import LocalCluster
    except ImportError:
        raise ConfigError("Dask is not installed: pip install 'critmin[scale]'") from None
    import dask

    if workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in worker processes, which freezes glibc's dynamic mmap threshold:
    # every large temporary array is then mmap'ed and page-faulted afresh, 3–4× slower for this workload.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


__all__ = ["local_cluster", "run_ensemble", "simulate_unmet"]

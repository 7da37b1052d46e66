"""Reporting an ensemble: VaR and CVaR, the upper tails they come from, and the long table (pure).

*Statistics.* L = cumulative unmet demand over the horizon (t, the stage's basis) per draw. VaR_α is the
⌈α·n⌉-th smallest L; CVaR_α = VaR_α + E[(L − VaR_α)⁺] / (1 − α) (Rockafellar & Uryasev 2002), exact for
the empirical distribution; expected shortfall = E[L]; p_shortfall = P(L > 0).

:func:`var_cvar_tail` is the one implementation of this estimator. The Monte Carlo
(:func:`critmin.supplychain.ensemble.run_ensemble`) applies it to the merged upper tails of its chunks, so it never
holds every draw; :func:`var_cvar` applies it to a labelled sample with a ``draw`` dimension (the portfolio
re-run, :mod:`critmin.optimize.rerun`). Both give the same numbers, bit for bit, for the same draws.

References
----------
Rockafellar, R. T. & Uryasev, S. (2002). Conditional value-at-risk for general loss distributions.
J. Banking & Finance 26(7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, DRAW
from critmin.errors import ConfigError
from critmin.supplychain.kernel import CONSUMER, STAGE

#: VaR / CVaR levels of the ensemble.
ALPHAS = (0.95, 0.99)


def tail_size(n_total: int) -> int:
    """Largest draws kept per cell: enough for VaR/CVaR at the smallest α (exact order statistics)."""
    return n_total - math.ceil(min(ALPHAS) * n_total) + 1


def upper_tail(values: np.ndarray, tail: int) -> np.ndarray:
    """The ``tail`` largest positive values of a 1-d sample, ascending (a zero loss is never in a tail)."""
    v = values[values > 0]
    if v.size > tail:
        v = np.partition(v, v.size - tail)[v.size - tail:]
    return np.sort(v)


def merge_tails(a: np.ndarray, b: np.ndarray, tail: int) -> np.ndarray:
    """The ``tail`` largest values of two tails (not sorted: sort once, after the last merge)."""
    merged = np.concatenate([a, b])
    if merged.size > tail:
        merged = np.partition(merged, merged.size - tail)[merged.size - tail:]
    return merged


def var_cvar_tail(tail: np.ndarray, n: int, alpha: float) -> tuple[float, float]:
    """VaR_α and CVaR_α of ``n`` equally likely losses from the largest of them.

    Parameters
    ----------
    tail : ndarray (m,), ascending
        The m largest losses of the sample (m ≤ n): at least the n − ⌈αn⌉ + 1 largest, or every positive loss
        when fewer are positive (the n − m left out are then 0).
    n : int, sample size
    alpha : float in (0, 1)

    Returns
    -------
    (var, cvar), in the unit of the losses.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha}")
    rank = math.ceil(alpha * n)                  # 1-based rank of VaR in the full ascending sample
    pos = rank - (n - tail.size)                 # its position in the tail (1-based), ≤ 0: a zero draw
    q = tail[pos - 1] if pos >= 1 else 0.0
    excess = tail[tail > q] - q
    return q, q + float(np.sum(excess)) / ((1.0 - alpha) * n)


def var_cvar(loss: xr.DataArray, alpha: float, dim: str = DRAW) -> tuple[xr.DataArray, xr.DataArray]:
    """Empirical VaR and CVaR along ``dim``: :func:`var_cvar_tail` on every cell.

    Parameters
    ----------
    loss : DataArray with ``dim`` (n equally likely draws), any unit (t here)
    alpha : float in (0, 1)
    dim : the draw dimension

    Returns
    -------
    (var, cvar) : DataArrays without ``dim``, unit of ``loss``
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha}")
    n = loss.sizes[dim]
    k = n - math.ceil(alpha * n) + 1             # the k largest hold VaR and every excess over it
    ordered = loss.transpose(dim, ...)
    vals = np.moveaxis(ordered.values, 0, -1)
    top = np.sort(np.partition(vals, n - k, axis=-1)[..., n - k:], axis=-1).reshape(-1, k)
    var, cvar = np.empty(top.shape[0]), np.empty(top.shape[0])
    for j, row in enumerate(top):               # cells (commodity × stage × …): tens to hundreds
        var[j], cvar[j] = var_cvar_tail(row, n, alpha)
    other = [d for d in ordered.dims if d != dim]
    coords = {d: loss[d] for d in other if d in loss.coords}
    return (xr.DataArray(var.reshape(vals.shape[:-1]), dims=other, coords=coords),
            xr.DataArray(cvar.reshape(vals.shape[:-1]), dims=other, coords=coords))


def tidy(ds: xr.Dataset, consumers: Sequence[str] | None = None, *, top_suppliers: int = 3) -> pd.DataFrame:
    """Long table of an ensemble: one row per commodity × stage × consumer with demand > 0.

    Columns: commodity, stage, consumer, demand_t, expected_shortfall_t, var_95_t, var_99_t, cvar_95_t,
    cvar_99_t, p_shortfall, top_contributors (``CHN 71%; COD 20%`` of the expected shortfall), seed, n_draws.
    """
    keep = ["expected_shortfall", "var_95", "var_99", "cvar_95", "cvar_99", "p_shortfall", "demand"]
    frame = ds[keep].to_dataframe().reset_index()
    if consumers is not None:
        frame = frame[frame[CONSUMER].isin(list(consumers))]
    frame = frame[frame["demand"] > 0]
    contrib = ds["contribution"]
    es = ds["expected_shortfall"]
    shares = (contrib / es.where(es > 0))
    tops = []
    for r in frame.itertuples(index=False):
        s = shares.sel({COMMODITY: r.commodity, STAGE: r.stage, CONSUMER: r.consumer}).to_series().dropna()
        s = s[s > 0.005].sort_values(ascending=False).head(top_suppliers)
        tops.append("; ".join(f"{k} {v:.0%}" for k, v in s.items()))
    frame = frame.assign(top_contributors=tops, seed=ds.attrs["seed"], n_draws=ds.attrs["n_draws"])
    frame = frame.rename(columns={"demand": "demand_t", **{k: f"{k}_t" for k in keep[:5]}})
    order = {k: i for i, k in enumerate(ds[CONSUMER].values)}
    frame = frame.sort_values([CONSUMER, "expected_shortfall_t"], key=lambda c: c.map(order) if c.name == CONSUMER
                              else -c, kind="stable")
    cols = [COMMODITY, STAGE, CONSUMER, "demand_t", "expected_shortfall_t", "var_95_t", "var_99_t", "cvar_95_t",
            "cvar_99_t", "p_shortfall", "top_contributors", "seed", "n_draws"]
    return frame[cols].reset_index(drop=True)


__all__ = ["ALPHAS", "merge_tails", "tail_size", "tidy", "upper_tail", "var_cvar", "var_cvar_tail"]

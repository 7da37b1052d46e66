"""Price paths: a mean-reverting model in logs with jumps, calibrated on the bundled price series.

Model (continuous time, ``x = ln P``)::

    dx = kappa (mu - x) dt + sigma dW + J dN,     N ~ Poisson(lambda),  J ~ Normal(mu_J, sd_J)

an Ornstein–Uhlenbeck process in logs (Schwartz 1997, "model 1") with compound-Poisson jumps for
disruption regimes (a 2010-style export-quota shock). Everything here is pure: no file is read except
through the ``catalog`` argument, randomness comes in as ``rng``.

References
----------
Schwartz, E. S. (1997). The stochastic behavior of commodity prices. J. Finance 52(3), 923–973.
Mancini, C. (2009). Non-parametric threshold estimation for models with stochastic diffusion coefficient
and jumps. Scand. J. Statist. 36(2), 270–296 (the threshold idea used for the jump component).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from critmin.contracts import parse_yaml, validate
from critmin.errors import ConfigError, DataError

#: Fewest transitions (observations − 1) accepted for a fit. With fewer, the AR(1) slope has ≤ 8 residual
#: degrees of freedom and the standard error of kappa is typically larger than kappa itself.
MIN_TRANSITIONS = 10

#: Default jump threshold, in standard deviations of the diffusion residual. At k = 3 a Gaussian residual
#: is flagged with probability 0.27 %, i.e. about one false jump per 370 transitions.
JUMP_K = 3.0

_MAD_TO_SD = 1.4826  # MAD → standard deviation for a normal sample


def calibrate_ou_log(series: pd.Series, dt_years: float, *, jump_k: float = JUMP_K,
                     min_transitions: int = MIN_TRANSITIONS, max_iter: int = 50) -> dict[str, Any]:
    """Fit the log-OU-with-jumps model to equally spaced prices.

    Estimator
    ---------
    1. Exact discretisation: over a step ``dt`` the OU process in logs is an AR(1),
       ``x[t+1] = a + b x[t] + e[t]`` with ``b = exp(-kappa dt)``, ``a = mu (1 - b)`` and
       ``Var(e) = sigma**2 (1 - b**2) / (2 kappa)``. Its conditional Gaussian MLE is ordinary least squares for
       ``a, b`` and the mean squared residual (divisor ``m``) for ``Var(e)``.
    2. Jumps by threshold (Mancini 2009, adapted to residuals): start from the OLS fit on all transitions
       and a robust scale (1.4826 × MAD of residuals); flag transitions with ``|e| > jump_k × s``; refit
       ``a, b, s`` on the unflagged transitions only; repeat until the flagged set no longer changes.
    3. Jump component from the flagged residuals: intensity ``lambda = n_jumps / (m dt)`` per year; mean size
       ``mu_J`` = their mean; ``sd_J = sqrt(max(var(flagged) - s**2, 0))`` (a flagged residual is jump plus
       diffusion noise, so the diffusion variance is removed). With one jump ``sd_J`` is not estimable and is
       reported as NaN (simulated as a fixed size); with none, ``lambda = 0``.
    4. Back to continuous time: ``kappa = -ln(b)/dt``, ``mu = a/(1-b)``,
       ``sigma = s sqrt(2 kappa / (1 - b**2))``. If ``b >= 1`` no mean reversion is detected: ``kappa = 0`` and
       the path is a driftless random walk in logs with ``sigma`` from the log changes (flagged in ``notes``).

    Truncating at ``jump_k`` standard deviations biases ``s`` down slightly (by about 1.3 % at k = 3 for a
    Gaussian residual); it is not corrected.

    Parameters
    ----------
    series : pd.Series
        Prices, strictly positive, in time order, equally spaced (any unit: the model works on logs).
    dt_years : float
        Spacing of the observations in years (1/12 for monthly, 1 for annual).
    jump_k : float
        Threshold for a jump, in residual standard deviations (dimensionless).
    min_transitions : int
        Fewest transitions accepted.
    max_iter : int
        Cap on the threshold iterations (the flagged set converges in a few in practice).

    Returns
    -------
    dict
        ``kappa`` (1/yr), ``mu`` (log of price unit), ``sigma`` (1/sqrt(yr)), ``jump_intensity`` (1/yr),
        ``jump_mean`` and ``jump_sd`` (log units), ``half_life_years``, ``long_run_level`` (price unit,
        ``exp(mu)``), ``ar_b`` and its standard error ``ar_b_se``, ``kappa_ci95`` (1/yr, from the 95 % interval
        of ``b``), ``n_obs``, ``n_transitions``, ``n_jumps``, ``dt_years``, ``jump_k``, ``mean_reversion`` and
        ``notes``.

    Raises
    ------
    DataError
        Too few observations, non-positive or non-finite prices, or ``b <= 0`` (reversion faster than the
        sampling interval: kappa not identifiable).
    """
    values = np.asarray(series, dtype=float)
    if dt_years <= 0:
        raise ConfigError(f"dt_years must be > 0 (got {dt_years})")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataError(f"series {getattr(series, 'name', '')!r}: prices must be finite and > 0 to take logs")
    m = values.size - 1
    if m < min_transitions:
        raise DataError(f"series {getattr(series, 'name', '')!r} has {values.size} observations; the log-OU "
                        f"calibration needs at least {min_transitions + 1} ({min_transitions} transitions)")
    x = np.log(values)
    x0, x1 = x[:-1], x[1:]
    notes: list[str] = []

    def ols(mask: np.ndarray) -> tuple[float, float, float, float]:
        u, v = x0[mask], x1[mask]
        du = u - u.mean()
        sxx = float(du @ du)
        if sxx <= 0:
            raise DataError(f"series {getattr(series, 'name', '')!r} is constant: no dynamics to estimate")
        b = float(du @ (v - v.mean())) / sxx
        a = float(v.mean() - b * u.mean())
        res = v - a - b * u
        s = math.sqrt(float(res @ res) / res.size)  # conditional MLE: divisor m, not m − 2
        return a, b, s, s / math.sqrt(sxx)

    mask = np.ones(m, dtype=bool)
    a, b, s, se_b = ols(mask)
    resid = x1 - a - b * x0
    scale = _MAD_TO_SD * float(np.median(np.abs(resid - np.median(resid))))
    if scale <= 0:
        scale = s
    for _ in range(max_iter):
        new = np.abs(resid) <= jump_k * scale
        if new.sum() < min_transitions:
            # Too many flags: the threshold is eating the diffusion. Keep the last accepted fit.
            notes.append(f"jump threshold would leave < {min_transitions} diffusion transitions; stopped")
            break
        if np.array_equal(new, mask):
            break
        mask = new
        a, b, s, se_b = ols(mask)
        resid = x1 - a - b * x0
        scale = s
    jumps = resid[~mask]
    n_jumps = int(jumps.size)
    lam = n_jumps / (m * dt_years)
    j_mean = float(jumps.mean()) if n_jumps else 0.0
    if n_jumps >= 2:
        j_sd = math.sqrt(max(float(jumps.var(ddof=1)) - s * s, 0.0))
    elif n_jumps == 1:
        j_sd = float("nan")
        notes.append("one jump flagged: jump-size sd not estimable (simulated as a fixed size)")
    else:
        j_sd = 0.0

    if b <= 0:
        raise DataError(f"series {getattr(series, 'name', '')!r}: AR(1) coefficient b = {b:.3f} <= 0, i.e. "
                        "reversion faster than the sampling interval; kappa is not identifiable from it")
    if b >= 1:
        dx = np.diff(x)[mask]
        kappa, mu, sigma = 0.0, float("nan"), float(dx.std()) / math.sqrt(dt_years)
        half_life = float("inf")
        notes.append(f"no mean reversion detected (AR coefficient b = {b:.4f} >= 1): simulated as a driftless "
                     "random walk in logs")
    else:
        kappa = -math.log(b) / dt_years
        mu = a / (1.0 - b)
        sigma = s * math.sqrt(2.0 * kappa / (1.0 - b * b))
        half_life = math.log(2.0) / kappa
    lo_b, hi_b = b - 1.96 * se_b, b + 1.96 * se_b
    kappa_ci = (max(-math.log(min(hi_b, 1.0)) / dt_years, 0.0) if hi_b > 0 else float("nan"),
                -math.log(lo_b) / dt_years if lo_b > 0 else float("inf"))
    return {
        "model": "log-OU with compound-Poisson normal jumps",
        "kappa": kappa, "mu": mu, "sigma": sigma,
        "jump_intensity": lam, "jump_mean": j_mean, "jump_sd": j_sd,
        "half_life_years": half_life, "long_run_level": math.exp(mu) if math.isfinite(mu) else float("nan"),
        "ar_b": b, "ar_b_se": se_b, "kappa_ci95": kappa_ci,
        "n_obs": int(values.size), "n_transitions": m, "n_jumps": n_jumps,
        "dt_years": float(dt_years), "jump_k": float(jump_k), "mean_reversion": b < 1, "notes": notes,
    }


def simulate_paths(params: dict[str, Any], p0: float, years: float, steps_per_year: int, n_paths: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Simulate price paths with the exact OU transition plus compound-Poisson jumps.

    Over a step ``h = 1/steps_per_year``: ``x' = mu + (x - mu) exp(-kappa h) + sd_h Z + S``, with
    ``sd_h = sigma sqrt((1 - exp(-2 kappa h)) / (2 kappa))`` (``sigma sqrt(h)`` when ``kappa = 0``) and ``S``
    the sum of ``N ~ Poisson(lambda h)`` normal jumps, drawn as ``Normal(N mu_J, sqrt(N) sd_J)``. Paths are
    vectorised; the only loop is over time steps, which the recursion needs.

    Parameters
    ----------
    params : dict
        Output of :func:`calibrate_ou_log` (or the same keys given explicitly): ``kappa`` (1/yr), ``mu``,
        ``sigma`` (1/sqrt(yr)), ``jump_intensity`` (1/yr), ``jump_mean``, ``jump_sd`` (log units; NaN = 0).
    p0 : float
        Starting price (price unit); the first column is the price one step later.
    years : float
        Horizon in years.
    steps_per_year : int
        Time steps per year (12 = monthly).
    n_paths : int
        Number of paths.
    rng : numpy.random.Generator
        Source of randomness (the seed is the caller's to record).

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(n_paths, round(years * steps_per_year))``, in the unit of ``p0``.
    """
    if p0 <= 0 or not math.isfinite(p0):
        raise ConfigError(f"starting price must be > 0 (got {p0})")
    if n_paths < 1 or steps_per_year < 1 or years <= 0:
        raise ConfigError("n_paths, steps_per_year and years must be positive")
    n_steps = round(years * steps_per_year)
    h = 1.0 / steps_per_year
    kappa, sigma = float(params["kappa"]), float(params["sigma"])
    lam = float(params.get("jump_intensity", 0.0) or 0.0)
    j_mean = float(params.get("jump_mean", 0.0) or 0.0)
    j_sd = float(params.get("jump_sd", 0.0))
    j_sd = 0.0 if not math.isfinite(j_sd) else j_sd
    if kappa > 0:
        phi = math.exp(-kappa * h)
        sd_h = sigma * math.sqrt((1.0 - phi * phi) / (2.0 * kappa))
        mu = float(params["mu"])
    else:
        phi, sd_h, mu = 1.0, sigma * math.sqrt(h), 0.0
    # Draw everything up front so the stream (and thus the result for a seed) does not depend on the loop.
    shocks = sd_h * rng.standard_normal((n_paths, n_steps))
    if lam > 0:
        counts = rng.poisson(lam * h, size=(n_paths, n_steps))
        shocks += counts * j_mean + np.sqrt(counts) * j_sd * rng.standard_normal((n_paths, n_steps))
    dev = np.empty((n_paths, n_steps))
    prev = np.full(n_paths, math.log(p0) - mu)
    for k in range(n_steps):
        prev = phi * prev + shocks[:, k]
        dev[:, k] = prev
    return np.exp(dev + mu)


# ---------------------------------------------------------------------------------------------------------
# Choosing and calibrating a bundled series


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ExplainedNumber(_Contract):
    value: float
    reason: str


class PriceDefaults(_Contract):
    monthly_window_years: ExplainedNumber


class ProxyAlias(_Contract):
    """A commodity whose level series is too short: its dynamics come from a longer proxy series."""

    label: str
    commodity: str
    level_series: str
    level_reason: str
    dynamics_commodity: str
    dynamics_series: str
    dynamics_reason: str
    dynamics_from: int | None = None
    dynamics_from_reason: str | None = None


class PriceModels(_Contract):
    """``policy/price_models.yml``."""

    defaults: PriceDefaults
    aliases: dict[str, ProxyAlias]


@cache
def price_models() -> dict[str, Any]:
    """The declarative series choices in ``policy/price_models.yml`` (read on first use; see :class:`PriceModels`)."""
    where = "price models price_models.yml (shipped)"
    doc = parse_yaml(resources.files("critmin.policy").joinpath("price_models.yml").read_text("utf-8"), where=where,
                     error=ConfigError)
    validate(PriceModels, doc.data, where=where, error=ConfigError, node=doc.node)
    return doc.data


def _series_frame(prices: pd.DataFrame, commodity: str, series: str) -> pd.DataFrame:
    rows = prices[(prices["commodity"] == commodity) & (prices["series"] == series)]
    if rows.empty:
        known = sorted(prices.loc[prices["commodity"] == commodity, "series"].unique())
        raise ConfigError(f"no price series {series!r} for commodity {commodity!r}; known: "
                          + ("; ".join(known) if known else "none"))
    return rows.sort_values("period")


def _contiguous_tail(rows: pd.DataFrame) -> tuple[pd.Series, float, list[str]]:
    """The last run of consecutive periods as a float Series indexed by period, with its spacing in years."""
    freq = rows["frequency"].iloc[0]
    notes: list[str] = []
    if freq == "monthly":
        idx = pd.PeriodIndex(rows["period"], freq="M")
        dt = 1.0 / 12.0
    else:
        idx = pd.PeriodIndex(rows["period"].astype(str).str[:4], freq="Y")
        dt = 1.0
    s = pd.Series(rows["value"].to_numpy(float), index=idx).groupby(level=0).last()
    ordinal = np.asarray(s.index.asi8)
    breaks = np.flatnonzero(np.diff(ordinal) != 1)
    if breaks.size:
        start = int(breaks[-1]) + 1
        notes.append(f"gap after {s.index[start - 1]}: only the last contiguous run from {s.index[start]} is used")
        s = s.iloc[start:]
    bad = ~np.isfinite(s.to_numpy()) | (s.to_numpy() <= 0)
    if bad.any():
        last_bad = int(np.flatnonzero(bad)[-1])
        notes.append(f"non-positive or missing value at {s.index[last_bad]}: calibration starts after it")
        s = s.iloc[last_bad + 1:]
    s.index = s.index.astype(str)
    return s, dt, notes


def default_series(prices: pd.DataFrame, commodity: str) -> str:
    """Monthly series if the commodity has one, else the annual series with most observations (ties: name)."""
    rows = prices[prices["commodity"] == commodity]
    if rows.empty:
        known = sorted(set(prices["commodity"]) | set(price_models()["aliases"]))
        raise ConfigError(f"no price series for commodity {commodity!r}; known: {', '.join(known)}")
    counts = rows.groupby(["frequency", "series"]).size().reset_index(name="n")
    counts["monthly"] = counts["frequency"] == "monthly"
    counts = counts.sort_values(["monthly", "n", "series"], ascending=[False, False, True])
    return str(counts["series"].iloc[0])


def calibrate_for(catalog, commodity: str, series: str | None = None, *, window_years: float | None = None,
                  jump_k: float = JUMP_K) -> dict[str, Any]:
    """Calibrate the price model for a commodity from the bundled (or user) ``prices`` table.

    Parameters
    ----------
    catalog : critmin.reference.catalog.Catalog
        Where the ``prices`` table comes from.
    commodity : str
        A commodity id of the prices table (``copper``, ``nickel`` …) or an alias of
        ``policy/price_models.yml`` (``ndpr``).
    series : str, optional
        A series name of that commodity. Default: the monthly series if any, else the longest annual one.
    window_years : float, optional
        Use only the last ``window_years`` of a monthly series (default from ``price_models.yml``).
    jump_k : float
        Jump threshold in residual standard deviations.

    Returns
    -------
    dict
        ``params`` (the simulation parameters), ``p0`` (last observed price), ``unit``, ``commodity``,
        ``series``, ``frequency``, ``period`` (first–last), ``n``, ``source``, ``provenance`` (per parameter:
        how it was obtained, from which series and how many observations) and ``notes``.

    Raises
    ------
    ConfigError
        Unknown commodity or series.
    DataError
        A series too short or unusable for the calibration (the message names it and its length).
    """
    models = price_models()
    alias = models["aliases"].get(commodity)
    if alias is not None and series is None:
        return _calibrate_proxy(catalog, commodity, alias, jump_k)
    prices = catalog.table("prices")
    cid = alias["commodity"] if alias is not None else commodity
    name = series or default_series(prices, cid)
    rows = _series_frame(prices, cid, name)
    s, dt, notes = _contiguous_tail(rows)
    freq = str(rows["frequency"].iloc[0])
    win = window_years if window_years is not None else models["defaults"]["monthly_window_years"]["value"]
    if freq == "monthly" and win:
        keep = round(float(win) * 12)
        if len(s) > keep:
            notes.append(f"window: last {win} years of the monthly series (price_models.yml: "
                         "defaults.monthly_window_years)")
            s = s.iloc[-keep:]
    try:
        fit = calibrate_ou_log(s.rename(name), dt, jump_k=jump_k)
    except DataError as exc:
        raise DataError(f"commodity {cid!r}: {exc.reason} ({freq}, {s.index[0]}–{s.index[-1]}); pick a longer series "
                        f"with --series, or a commodity alias with a documented proxy "
                        f"({', '.join(models['aliases'])})") from None
    how = f"estimated: AR(1) MLE on log prices, series {name!r}, n = {fit['n_obs']} ({s.index[0]}–{s.index[-1]})"
    jump_how = (f"estimated: threshold |e| > {jump_k} s on the same residuals, {fit['n_jumps']} jump(s) in "
                f"{fit['n_transitions']} transitions")
    prov = dict.fromkeys(("kappa", "mu", "sigma"), how) | dict.fromkeys(("jump_intensity", "jump_mean", "jump_sd"),
                                                                        jump_how)
    prov["p0"] = f"last observation of {name!r} ({s.index[-1]})"
    return {"commodity": commodity, "series": name, "frequency": freq, "unit": str(rows["unit"].iloc[0]),
            "source": str(rows["source"].iloc[0]), "period": f"{s.index[0]}–{s.index[-1]}", "n": len(s),
            "p0": float(s.iloc[-1]), "p0_period": str(s.index[-1]), "params": _sim_params(fit), "fit": fit,
            "provenance": prov, "notes": notes + fit["notes"], "sources": [str(rows["source"].iloc[0])]}


def _sim_params(fit: dict[str, Any]) -> dict[str, float]:
    return {k: float(fit[k]) for k in ("kappa", "mu", "sigma", "jump_intensity", "jump_mean", "jump_sd")}


def _calibrate_proxy(catalog, alias_name: str, spec: dict[str, Any], jump_k: float) -> dict[str, Any]:
    """A short level series (e.g. NdPr 2021–2025) with dynamics borrowed from a long proxy series.

    The dynamics (``kappa``, ``sigma``, jumps) are dimensionless properties of log prices, so they can be
    estimated on a longer related series whatever its unit; the level ``mu`` and ``p0`` come from the
    commodity's own series. ``price_models.yml`` states the reason for each choice.
    """
    prices = catalog.table("prices")
    lvl_rows = _series_frame(prices, spec["commodity"], spec["level_series"])
    lvl, _, lvl_notes = _contiguous_tail(lvl_rows)
    if len(lvl) < 2:
        raise DataError(f"{alias_name}: level series {spec['level_series']!r} has {len(lvl)} observation(s); "
                        "need at least 2 to estimate a level")
    dyn_rows = _series_frame(prices, spec["dynamics_commodity"], spec["dynamics_series"])
    dyn, dyn_dt, dyn_notes = _contiguous_tail(dyn_rows)
    if spec.get("dynamics_from"):
        dyn = dyn[dyn.index >= str(spec["dynamics_from"])]
    try:
        fit = calibrate_ou_log(dyn.rename(spec["dynamics_series"]), dyn_dt, jump_k=jump_k)
    except DataError as exc:
        raise DataError(f"{alias_name}: dynamics series {spec['dynamics_series']!r} (n = {len(dyn)}): "
                        f"{exc.reason}") from None
    logs = np.log(lvl.to_numpy(float))
    mean_log = float(logs.mean())
    mu_se = float(logs.std(ddof=1) / math.sqrt(logs.size))
    # The sample mean of log prices estimates the stationary mean E[x] = mu + lambda mu_J / kappa (jumps
    # included), not the jump-free reversion level mu; back mu out so the simulated paths are centred on the
    # observed level instead of above it.
    jump_shift = fit["jump_intensity"] * fit["jump_mean"] / fit["kappa"] if fit["kappa"] > 0 else 0.0
    mu = mean_log - jump_shift
    params = _sim_params(fit)
    params["mu"] = mu
    own = (f"{len(lvl)} annual observations ({lvl.index[0]}–{lvl.index[-1]}) of {spec['level_series']!r}: too "
           f"short for an AR(1) fit (needs ≥ {MIN_TRANSITIONS + 1})")
    dyn_how = (f"estimated on proxy {spec['dynamics_series']!r} ({spec['dynamics_commodity']}, n = {fit['n_obs']}, "
               f"{dyn.index[0]}–{dyn.index[-1]}; {fit['n_jumps']} jump(s) at |e| > {jump_k} s); why: "
               f"price_models.yml aliases.{alias_name}")
    prov = dict.fromkeys(("kappa", "sigma", "jump_intensity", "jump_mean", "jump_sd"), dyn_how)
    prov["mu"] = (f"estimated: mean of log prices of {spec['level_series']!r}, n = {len(lvl)} "
                  f"({lvl.index[0]}–{lvl.index[-1]}), = {mean_log:.4f} ± {mu_se:.3f} (standard error, log units), "
                  f"minus the jump shift lambda mu_J / kappa = {jump_shift:.4f}")
    prov["p0"] = f"last observation of {spec['level_series']!r} ({lvl.index[-1]})"
    fit = dict(fit, mu=mu, long_run_level=math.exp(mu), mu_se=mu_se, level_mean_log=mean_log,
               level_geometric_mean=math.exp(mean_log), jump_shift=jump_shift)
    return {"commodity": alias_name, "series": spec["level_series"], "frequency": "annual",
            "unit": str(lvl_rows["unit"].iloc[0]), "source": str(lvl_rows["source"].iloc[0]),
            "period": f"{lvl.index[0]}–{lvl.index[-1]}", "n": len(lvl), "p0": float(lvl.iloc[-1]),
            "p0_period": str(lvl.index[-1]), "params": params, "fit": fit, "provenance": prov,
            "notes": [own, "dynamics proxy: " + " ".join(spec["dynamics_reason"].split()),
                      *(["proxy window: " + " ".join(spec["dynamics_from_reason"].split())]
                        if spec.get("dynamics_from_reason") else []),
                      *lvl_notes, *dyn_notes, *fit["notes"]],
            "sources": sorted({str(lvl_rows["source"].iloc[0]), str(dyn_rows["source"].iloc[0])})}

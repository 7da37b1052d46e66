"""Payments of pricing measures, NPV, IRR and project cash flows. Pure and vectorised over price paths.

Units. The kernels are unit-agnostic but consistent: ``prices``, ``floor``, ``strike``, ``fixed_price`` and
``unit_cost`` are in USD per mass unit M, ``volume`` is in M, payments come out in USD. The workflow
converts tonnes to the price series' mass unit at the boundary (``USD/kg`` × kg). Sign convention:
**positive = the government pays** (a cost to the public budget); negative = it receives.

Shapes. ``prices`` is ``(paths, steps)`` (or anything broadcastable); ``volume`` is per step and
broadcasts against it. Cash flows are ``(paths, years + 1)`` with year 0 first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from critmin.errors import ConfigError


def floor_payout(prices: np.ndarray, floor: float, volume, *, upside_share: float = 0.0) -> np.ndarray:
    """Price-floor payments: ``max(0, floor - price) * volume``, less an optional upside share.

    Parameters
    ----------
    prices : array_like
        Benchmark price, USD/M.
    floor : float
        Floor price, USD/M (> 0).
    volume : array_like
        Volume covered (sold or stockpiled) in the period, M.
    upside_share : float
        Share in [0, 1] of ``(price - floor) * volume`` the government receives when the price is above the
        floor (0 = a pure floor). Reported for the DoD–MP deal (30 %, tied to the 10X facility; see the
        preset), not applied by default.

    Returns
    -------
    numpy.ndarray
        Government payment, USD (positive = government pays).
    """
    p = np.asarray(prices, dtype=float)
    gap = floor - p
    return np.maximum(gap, 0.0) * volume - upside_share * np.maximum(-gap, 0.0) * volume


def cfd_payments(prices: np.ndarray, strike: float, volume) -> np.ndarray:
    """Two-sided contract for difference: ``(strike - price) * volume``.

    Returns
    -------
    numpy.ndarray
        USD; positive = the government pays the producer (price below strike), negative = the producer pays
        the government (price above strike). Antisymmetric about the strike.
    """
    return (strike - np.asarray(prices, dtype=float)) * volume


def offtake_cost(prices: np.ndarray, fixed_price: float, volume, *, resale_haircut: float = 0.0) -> np.ndarray:
    """Net cost of an offtake at a fixed price: buy ``volume`` at ``fixed_price``, resell at market.

    ``fixed * volume - (1 - resale_haircut) * price * volume``. With ``resale_haircut = 0`` this equals a CfD
    at the same strike; the difference is physical: the government holds the material (it can stockpile it
    instead of reselling, at the opportunity cost shown here). ``resale_haircut`` (share of the market price
    lost to handling, storage or a distressed sale) is an input with no default source, hence 0.

    Returns
    -------
    numpy.ndarray
        USD, positive = net cost to the government.
    """
    p = np.asarray(prices, dtype=float)
    return fixed_price * volume - (1.0 - resale_haircut) * p * volume


def _check_tariff(rate: float | None, reference: float | None) -> None:
    if (rate is None) == (reference is None):
        raise ConfigError("a tariff needs exactly one of rate (ad valorem share) or reference (USD/M price)")
    if rate is not None and rate < 0:
        raise ConfigError(f"tariff rate must be >= 0 (got {rate})")
    if reference is not None and reference <= 0:
        raise ConfigError(f"reference price must be > 0 (got {reference})")


def reference_price(prices: np.ndarray, *, rate: float | None = None, reference: float | None = None) -> np.ndarray:
    """Domestic benchmark once non-market supply pays the duty (full pass-through).

    Definition. *Non-market supply* is material from suppliers priced below market by state support or export
    controls. Two duties are supported:

    - ad valorem ``rate``: the landed price becomes ``price * (1 + rate)``;
    - ``reference`` price (a variable duty, as in a minimum-import-price scheme): the duty per unit is
      ``max(0, reference - price)``, so non-market material cannot land below the reference and the benchmark
      becomes ``max(price, reference)``.

    Full pass-through assumes non-market supply sets the marginal price; with partial pass-through the
    project's gain and the consumers' cost are smaller.

    Returns
    -------
    numpy.ndarray
        USD/M.
    """
    _check_tariff(rate, reference)
    p = np.asarray(prices, dtype=float)
    return p * (1.0 + rate) if rate is not None else np.maximum(p, reference)


def tariff_revenue(prices: np.ndarray, volume, *, rate: float | None = None,
                   reference: float | None = None) -> np.ndarray:
    """Duty collected on ``volume`` of non-market imports: ``(reference_price - price) * volume``.

    The import volume is held fixed (no demand or trade-diversion response: the bundled data carry no cited
    elasticity for it), so this is the revenue before any fall in imports.

    Returns
    -------
    numpy.ndarray
        USD, positive = revenue to the government (its cost is the negative of this).
    """
    p = np.asarray(prices, dtype=float)
    return (reference_price(p, rate=rate, reference=reference) - p) * volume


# ---------------------------------------------------------------------------------------------------------
# Discounting


def discount_factors(rate, times) -> np.ndarray:
    """``(1 + rate) ** -t`` for times ``t`` in years (rate per year, > -1); broadcasts rate[..., None]."""
    r = np.asarray(rate, dtype=float)
    return (1.0 + r)[..., None] ** -np.asarray(times, dtype=float)


def npv(cashflows, rate) -> np.ndarray:
    """Net present value of annual cash flows, year 0 first.

    Parameters
    ----------
    cashflows : array_like
        USD, shape ``(..., years + 1)``; element ``t`` is received at the end of year ``t``.
    rate : float or array_like
        Discount rate per year (> -1), broadcast against ``cashflows[..., 0]``.

    Returns
    -------
    numpy.ndarray or float
        USD, shape ``cashflows.shape[:-1]``.

    Examples
    --------
    >>> float(npv([-100.0, 110.0], 0.10))
    0.0
    """
    cf = np.asarray(cashflows, dtype=float)
    if np.any(np.asarray(rate, dtype=float) <= -1):
        raise ConfigError(f"discount rate must be > -100 % (got {rate})")
    out = (cf * discount_factors(rate, np.arange(cf.shape[-1]))).sum(axis=-1)
    return out


class IRR(NamedTuple):
    """Internal rate of return and, where it is NaN, why."""

    rate: np.ndarray | float
    reason: np.ndarray | str


def irr(cashflows, *, lo: float = -0.99, hi: float = 10.0, tol: float = 1e-10, max_iter: int = 200) -> IRR:
    """Internal rate of return by bisection on NPV, vectorised over rows.

    Bisection on ``[lo, hi]`` always converges when NPV changes sign across the bracket; it is slower than
    Newton but never diverges, and one bracket serves every path at once. Rows without a sign change get NaN
    and a reason: all flows of one sign, or NPV of the same sign at both ends (no IRR in range, or an even
    number of roots for non-conventional flows).

    Parameters
    ----------
    cashflows : array_like
        USD, shape ``(..., years + 1)``, year 0 first.
    lo, hi : float
        Bracket of rates per year.
    tol : float
        Width of the final bracket (rate per year).

    Returns
    -------
    IRR
        ``rate`` (per year; float for a 1-D input) and ``reason`` (``""`` where the rate is defined).

    Examples
    --------
    >>> round(float(irr([-100.0, 0.0, 121.0]).rate), 10)
    0.1
    """
    cf = np.asarray(cashflows, dtype=float)
    scalar = cf.ndim == 1
    cf2 = cf.reshape(-1, cf.shape[-1])
    a = np.full(cf2.shape[0], lo)
    b = np.full(cf2.shape[0], hi)
    fa, fb = npv(cf2, a), npv(cf2, b)
    ok = np.sign(fa) * np.sign(fb) < 0
    for _ in range(max_iter):
        if np.all(b - a < tol):
            break
        mid = 0.5 * (a + b)
        fm = npv(cf2, mid)
        left = np.sign(fm) == np.sign(fa)
        a = np.where(left, mid, a)
        fa = np.where(left, fm, fa)
        b = np.where(left, b, mid)
    rate = np.where(ok, 0.5 * (a + b), np.nan)
    exact = (fa == 0) | (fb == 0)  # a bracket end is itself a root
    rate = np.where(exact & ~ok, np.where(fa == 0, lo, hi), rate)
    reason = np.full(cf2.shape[0], "", dtype=object)
    pos, neg = np.all(cf2 >= 0, axis=-1), np.all(cf2 <= 0, axis=-1)
    none = np.isnan(rate)
    reason[none] = (f"NPV has the same sign at {lo:.0%} and {hi:.0%} a year: no IRR in that range (or an even "
                    "number of roots)")
    reason[none & pos] = "all cash flows >= 0: no investment to earn a return on"
    reason[none & neg] = "all cash flows <= 0: the project never pays back"
    if scalar:
        return IRR(float(rate[0]), str(reason[0]))
    return IRR(rate.reshape(cf.shape[:-1]), reason.reshape(cf.shape[:-1]))


# ---------------------------------------------------------------------------------------------------------
# Measures applied to a project


@dataclass(frozen=True)
class Measure:
    """A pricing measure and its terms.

    Attributes
    ----------
    kind : str
        ``floor`` | ``cfd`` | ``offtake`` | ``tariff``.
    price : float
        Floor, strike, fixed price or tariff reference price, USD/M (``None`` for an ad valorem tariff).
    rate : float
        Ad valorem tariff rate (share), tariffs only.
    upside_share : float
        Floors only: share of the upside above the floor paid back to the government.
    resale_haircut : float
        Offtake only: share of the market price lost when reselling.
    nonmarket_volume : float
        Tariffs only: non-market imports per step, M (the duty base).
    years : float
        How long the measure lasts from the start, years (``None`` = the whole horizon).
    """

    kind: str
    price: float | None = None
    rate: float | None = None
    upside_share: float = 0.0
    resale_haircut: float = 0.0
    nonmarket_volume: float = 0.0
    years: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("floor", "cfd", "offtake", "tariff"):
            raise ConfigError(f"unknown measure {self.kind!r}; expected floor, cfd, offtake or tariff")
        if self.kind == "tariff":
            _check_tariff(self.rate, self.price)
        elif self.price is None or not self.price > 0:
            raise ConfigError(f"{self.kind}: the price (floor/strike/fixed price) must be > 0 USD (got {self.price})")
        if not 0.0 <= self.upside_share <= 1.0:
            raise ConfigError(f"upside share must be in [0, 1] (got {self.upside_share})")
        if not 0.0 <= self.resale_haircut <= 1.0:
            raise ConfigError(f"resale haircut must be in [0, 1] (got {self.resale_haircut})")
        if self.nonmarket_volume < 0:
            raise ConfigError(f"non-market volume must be >= 0 (got {self.nonmarket_volume})")

    def active(self, n_steps: int, steps_per_year: int) -> np.ndarray:
        """1 while the measure is in force, 0 after, per step."""
        if self.years is None:
            return np.ones(n_steps)
        return (np.arange(n_steps) < round(self.years * steps_per_year)).astype(float)

    def government_cost(self, prices: np.ndarray, volume, steps_per_year: int) -> np.ndarray:
        """Government payments per step, USD (positive = cost), zero after the measure ends."""
        on = self.active(prices.shape[-1], steps_per_year)
        if self.kind == "floor":
            pay = floor_payout(prices, self.price, volume, upside_share=self.upside_share)
        elif self.kind == "cfd":
            pay = cfd_payments(prices, self.price, volume)
        elif self.kind == "offtake":
            pay = offtake_cost(prices, self.price, volume, resale_haircut=self.resale_haircut)
        else:
            pay = -tariff_revenue(prices, self.nonmarket_volume, rate=self.rate, reference=self.price)
        return pay * on

    def project_transfer(self, prices: np.ndarray, volume, steps_per_year: int) -> np.ndarray:
        """What the measure adds to the project's revenue per step, USD (paid by government or consumers)."""
        on = self.active(prices.shape[-1], steps_per_year)
        if self.kind == "floor":
            extra = floor_payout(prices, self.price, volume, upside_share=self.upside_share)
        elif self.kind in ("cfd", "offtake"):
            extra = cfd_payments(prices, self.price, volume)  # the project sells at the fixed price / strike
        else:
            p = np.asarray(prices, dtype=float)
            extra = (reference_price(p, rate=self.rate, reference=self.price) - p) * volume
        return extra * on


def annual_sums(per_step: np.ndarray, steps_per_year: int) -> np.ndarray:
    """Sum ``(..., years * steps_per_year)`` into ``(..., years)``."""
    n = per_step.shape[-1]
    if n % steps_per_year:
        raise ConfigError(f"{n} steps are not a whole number of years at {steps_per_year} steps per year")
    return per_step.reshape(*per_step.shape[:-1], n // steps_per_year, steps_per_year).sum(axis=-1)


def present_value_steps(per_step: np.ndarray, rate: float, steps_per_year: int) -> np.ndarray:
    """Present value of per-step payments, each discounted from the end of its step, USD."""
    t = (np.arange(per_step.shape[-1]) + 1.0) / steps_per_year
    return (per_step * (1.0 + rate) ** -t).sum(axis=-1)


def project_cashflows(capex: float, volume: float, unit_cost: float, prices: np.ndarray, years: int,
                      measure: Measure | None = None) -> np.ndarray:
    """Annual pre-tax cash flows of a producing project, with or without a measure.

    Year 0: ``-capex``. Years 1..``years``: ``(price - unit_cost) * volume`` summed over the steps of the year,
    plus the measure's transfer to the project. Production starts at once at ``volume`` (no ramp-up), cash flows
    are nominal like the price series, and there is no tax or terminal value: a screening model whose
    assumptions are all visible here.

    Parameters
    ----------
    capex : float
        Up-front investment, USD (>= 0).
    volume : float
        Output per year, M.
    unit_cost : float
        Cash cost per unit (operating cost, royalties), USD/M.
    prices : numpy.ndarray
        Simulated prices ``(paths, years * steps_per_year)``, USD/M; ``steps_per_year`` is inferred.
    years : int
        Project life modelled, years.
    measure : Measure, optional
        The measure whose transfer is added.

    Returns
    -------
    numpy.ndarray
        USD, shape ``(paths, years + 1)``.
    """
    if capex < 0 or volume < 0 or unit_cost < 0:
        raise ConfigError("capex, volume and unit cost must be >= 0")
    p = np.atleast_2d(np.asarray(prices, dtype=float))
    if years < 1 or p.shape[-1] % years:
        raise ConfigError(f"prices have {p.shape[-1]} steps, not a whole number per year over {years} years")
    spy = p.shape[-1] // years
    v = volume / spy
    flow = (p - unit_cost) * v
    if measure is not None:
        flow = flow + measure.project_transfer(p, v, spy)
    out = np.empty((p.shape[0], years + 1))
    out[:, 0] = -capex
    out[:, 1:] = annual_sums(flow, spy)
    return out


def distribution(samples: np.ndarray) -> dict[str, float]:
    """Mean, P5, P50 and P95 of the finite samples (NaN counted in ``n_nan``)."""
    x = np.asarray(samples, dtype=float).ravel()
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        nan = math.nan
        return {"mean": nan, "p5": nan, "p50": nan, "p95": nan, "n_nan": int(x.size)}
    p5, p50, p95 = np.percentile(fin, [5, 50, 95])
    return {"mean": float(fin.mean()), "p5": float(p5), "p50": float(p50), "p95": float(p95),
            "n_nan": int(x.size - fin.size)}

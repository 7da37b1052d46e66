"""Inputs of the stockpile and portfolio optimisations, validated once at the boundary.

The optimisation side reads one contract, :class:`StockpileInputs`; :func:`from_ensemble` adapts the
Monte Carlo ensemble of :mod:`critmin.supplychain.risk` to it.

Adapter contract (what :func:`from_ensemble` needs from the ensemble Dataset ``ds``)
-------------------------------------------------------------------------------------
``shortfall``
    Unmet demand per draw over the horizon, t, dims ``(draw | scenario, commodity, consumer | holder)``,
    optionally with ``month`` (summed over months) and ``stage`` (the stage named by ``stage=`` is kept,
    default the stockpile stage ``ds.attrs["stock_stage"]`` or ``"refine"``).
``demand`` or ``demand_annual``
    Baseline demand: ``demand_annual`` in t/yr ``(commodity, holder)``, or ``demand`` in t/month (×12).
``price0`` or ``price``
    Reference price, USD/t ``(commodity,)``.
``weight`` (optional)
    Probability of each draw ``(draw,)``; equal weights otherwise.

Anything missing raises :class:`~critmin.errors.DataError` naming the variable; nothing is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from critmin.constants import COMMODITY, DRAW, SCENARIO
from critmin.errors import DataError

HOLDER, PARTNER = "holder", "partner"

#: Default value of a tonne of unmet demand, as a multiple of the commodity price.
#: Why 10×: the cited 2010–11 rare-earth crisis saw neodymium buyers pay up to 22.5× the pre-crisis price
#: (demand_parameters, row ``price_spike_multiple``, University of Birmingham 2013) rather than go without;
#: a planner should not size a reserve on the most extreme episode on record, so the default sits at
#: under half that peak. It is a stated assumption, recorded in every result, and meant to be overridden.
UNMET_VALUE_MULTIPLE = 10.0

#: Default holding cost, fraction of the acquisition price per year (capital tied up plus storage).
#: A round modelling assumption, not taken from a source; override with ``holding_cost``.
HOLDING_RATE = 0.05


@dataclass
class StockpileInputs:
    """Data of the two-stage stockpile problem.

    Attributes
    ----------
    shortfall : xr.DataArray (scenario, commodity, holder)
        Supply shortfall of each holder's consumers over the horizon without any stockpile, t.
        The ``commodity`` label may carry the form (``"rare-earths/oxide"``): each label is one stock.
    demand_annual : xr.DataArray (commodity, holder)
        Annual consumption, t/yr (for days of consumption and minimum-days rules).
    price : xr.DataArray (commodity,)
        Acquisition price, USD/t.
    weight : xr.DataArray (scenario,), optional
        Probability of each scenario (sums to 1); equal weights when omitted.
    unmet_value : xr.DataArray (commodity, holder), optional
        Value of a tonne of unmet demand, USD/t; default ``UNMET_VALUE_MULTIPLE`` × price.
    holding_cost : xr.DataArray (commodity, holder), optional
        USD per tonne per year; default ``HOLDING_RATE`` × price.
    horizon_years : float
        Length of the shortfall horizon, yr (holding cost is paid over it).
    provenance : dict
        Where the data came from (``source``, ``seed`` …); copied into results.
    """

    shortfall: xr.DataArray
    demand_annual: xr.DataArray
    price: xr.DataArray
    weight: xr.DataArray | None = None
    unmet_value: xr.DataArray | None = None
    holding_cost: xr.DataArray | None = None
    horizon_years: float = 1.0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation at the boundary
    def validate(self) -> None:
        """Check dims, coordinates, signs and NaNs; raise :class:`DataError` naming the field."""
        s = self.shortfall
        need = {SCENARIO, COMMODITY, HOLDER}
        if not isinstance(s, xr.DataArray) or set(s.dims) != need:
            dims = getattr(s, "dims", None)
            raise DataError(f"shortfall must have dims (scenario, commodity, holder); got {dims}", column="shortfall")
        self.shortfall = s.transpose(SCENARIO, COMMODITY, HOLDER).astype(float)
        _check_values(self.shortfall, "shortfall", "t")
        self.demand_annual = _aligned(self.demand_annual, self.shortfall, (COMMODITY, HOLDER), "demand_annual")
        _check_values(self.demand_annual, "demand_annual", "t/yr")
        self.price = _aligned(self.price, self.shortfall, (COMMODITY,), "price")
        _check_values(self.price, "price", "USD/t")
        n = self.shortfall.sizes[SCENARIO]
        if self.weight is None:
            self.weight = xr.full_like(self.shortfall[SCENARIO], 1.0 / n, dtype=float).drop_vars(SCENARIO) \
                .assign_coords({SCENARIO: self.shortfall[SCENARIO]})
        self.weight = _aligned(self.weight, self.shortfall, (SCENARIO,), "weight")
        _check_values(self.weight, "weight", "1")
        total = float(self.weight.sum())
        if abs(total - 1.0) > 1e-6:
            raise DataError(f"scenario weights sum to {total:.6g}, not 1", column="weight")
        if self.unmet_value is None:
            self.unmet_value = (UNMET_VALUE_MULTIPLE * self.price).broadcast_like(self.demand_annual)
            _note(self.provenance, f"unmet-demand value = {UNMET_VALUE_MULTIPLE:g} × price (default; see UNMET_VALUE_MULTIPLE)")
        self.unmet_value = _aligned(self.unmet_value, self.shortfall, (COMMODITY, HOLDER), "unmet_value")
        _check_values(self.unmet_value, "unmet_value", "USD/t")
        if self.holding_cost is None:
            self.holding_cost = (HOLDING_RATE * self.price).broadcast_like(self.demand_annual)
            _note(self.provenance, f"holding cost = {HOLDING_RATE:g} × price per year (default; see HOLDING_RATE)")
        self.holding_cost = _aligned(self.holding_cost, self.shortfall, (COMMODITY, HOLDER), "holding_cost")
        _check_values(self.holding_cost, "holding_cost", "USD/t/yr")
        if not (self.horizon_years > 0):
            raise DataError(f"horizon_years must be > 0; got {self.horizon_years}", column="horizon_years")

    @property
    def holders(self) -> list[str]:
        return [str(h) for h in self.shortfall[HOLDER].values]

    @property
    def commodities(self) -> list[str]:
        return [str(c) for c in self.shortfall[COMMODITY].values]


def _note(prov: dict, text: str) -> None:
    notes = prov.setdefault("assumptions", [])
    if text not in notes:
        notes.append(text)


def _aligned(x, like: xr.DataArray, dims: tuple[str, ...], name: str) -> xr.DataArray:
    """``x`` as a float DataArray over exactly ``dims``, covering every label of ``like``."""
    if not isinstance(x, xr.DataArray):
        try:
            x = xr.DataArray(float(x))
        except (TypeError, ValueError):
            raise DataError(f"{name} must be a number or a DataArray over {dims}", column=name) from None
    extra = set(x.dims) - set(dims)
    if extra:
        raise DataError(f"{name} has unexpected dims {sorted(extra)}; expected {dims}", column=name)
    for d in x.dims:
        missing = sorted(set(map(str, like[d].values)) - set(map(str, x[d].values)))
        if missing:
            raise DataError(f"{name} has no value for {d} {', '.join(missing[:5])}", column=name)
    target = xr.zeros_like(like.isel({d: 0 for d in like.dims if d not in dims}, drop=True), dtype=float)
    return (target + x.sel({d: like[d].values for d in x.dims})).transpose(*dims).astype(float)


def _check_values(x: xr.DataArray, name: str, unit: str) -> None:
    bad = ~np.isfinite(x.values) | (x.values < 0)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = ", ".join(f"{d}={x[d].values[i]}" for d, i in zip(x.dims, idx, strict=True)) or "scalar"
        raise DataError(f"{name} must be finite and ≥ 0 ({unit}); got {x.values[tuple(idx)]} at {where}",
                        column=name)
    x.attrs["units"] = unit


def from_ensemble(ds: xr.Dataset, *, stage: str | None = None, holders: list[str] | None = None,
                  horizon_years: float | None = None, **overrides) -> StockpileInputs:
    """Adapt a Monte Carlo ensemble (``critmin.supplychain.risk``) to :class:`StockpileInputs`.

    Parameters
    ----------
    ds : xr.Dataset
        The ensemble; see the module docstring for the variables read.
    stage : str, optional
        Stage whose shortfall the stockpile covers (default ``ds.attrs["stock_stage"]`` or ``"refine"``).
    holders : list of str, optional
        Keep only these consumers (e.g. ``["USA", "JPN"]``; blocs such as ``USA+JPN`` are dropped by default
        because a bloc row would double count its members).
    horizon_years : float, optional
        Default: number of months / 12 when ``month`` is present, else ``ds.attrs["horizon_months"]``/12.
    **overrides
        Passed to :class:`StockpileInputs` (``unmet_value``, ``holding_cost``, ``weight``).
    """
    if "shortfall" not in ds:
        raise DataError("the ensemble has no 'shortfall' variable (t per draw)", column="shortfall")
    s = ds["shortfall"]
    ren = {d: n for d, n in ((DRAW, SCENARIO), ("consumer", HOLDER)) if d in s.dims}
    s = s.rename(ren)
    months = None
    if "month" in s.dims:
        months = s.sizes["month"]
        s = s.sum("month")
    if "stage" in s.dims:
        st = stage or ds.attrs.get("stock_stage", "refine")
        if st not in list(s["stage"].values):
            raise DataError(f"the ensemble has no stage {st!r}; stages: {list(s['stage'].values)}", column="stage")
        s = s.sel(stage=st, drop=True)
    if holders is None:
        holders = [str(h) for h in s[HOLDER].values if "+" not in str(h)]
    s = s.sel({HOLDER: holders})
    extra = set(s.dims) - {SCENARIO, COMMODITY, HOLDER}
    if extra:
        raise DataError(f"shortfall has dims {sorted(extra)} the optimisation cannot read", column="shortfall")
    if "demand_annual" in ds:
        dem = ds["demand_annual"].rename({k: v for k, v in ren.items() if k in ds["demand_annual"].dims})
    elif "demand" in ds:
        dem = ds["demand"].rename({k: v for k, v in ren.items() if k in ds["demand"].dims}) * 12.0
        if "stage" in dem.dims:
            dem = dem.sel(stage=stage or ds.attrs.get("stock_stage", "refine"), drop=True)
        for d in set(dem.dims) - {COMMODITY, HOLDER}:
            dem = dem.mean(d)  # baseline demand does not vary by draw
    else:
        raise DataError("the ensemble has neither 'demand_annual' (t/yr) nor 'demand' (t/month)", column="demand")
    price = ds["price0"] if "price0" in ds else ds.get("price")
    if price is None:
        raise DataError("the ensemble has no 'price0' (USD/t)", column="price0")
    for d in set(price.dims) - {COMMODITY}:
        price = price.isel({d: 0}, drop=True) if d != HOLDER else price.mean(d)
    if horizon_years is None:
        hm = months or ds.attrs.get("horizon_months")
        if hm is None:
            raise DataError("the ensemble does not state its horizon (month dim or attrs['horizon_months'])",
                            column="horizon_months")
        horizon_years = float(hm) / 12.0
    weight = overrides.pop("weight", ds["weight"].rename({DRAW: SCENARIO}) if "weight" in ds else None)
    prov = {k: ds.attrs[k] for k in ("seed", "scenario", "n_draws", "sources") if k in ds.attrs}
    prov["source"] = "critmin.supplychain.risk ensemble"
    return StockpileInputs(shortfall=s.transpose(SCENARIO, COMMODITY, HOLDER),
                           demand_annual=dem.sel({HOLDER: holders}), price=price, weight=weight,
                           horizon_years=horizon_years, provenance=prov, **overrides)


__all__ = ["HOLDER", "HOLDING_RATE", "PARTNER", "UNMET_VALUE_MULTIPLE", "StockpileInputs", "from_ensemble"]

"""Monthly propagation of supply disruptions through one commodity's stages (pure, vectorised).

Every array is an :class:`xarray.DataArray`; any extra leading dimensions (``draw``, ``scenario``) are
carried through unchanged, so one call evaluates a whole Monte Carlo ensemble. The only Python loop is over
months (the stockpile is a recursion in time); stages are processed upstream → downstream.

Per commodity c, stage s, consumer k and month t (all quantities in tonnes per month of the stage's basis):

    lost      = Σ_i share[i,k] · D · cut[i,k,t] · (1 − leakage)            withheld flow not rerouted
              + u[k] · D · f_up[t]                                         domestic processors starved upstream
    replaced  = min(lost, ramp · D · m_t / 12)                            spare capacity elsewhere, ramping up
    substit.  = min(lost − replaced, substitution · D · m_t / 12)          demand given up (substitutes)
    recycled  = min(lost − replaced − substit., recycling · D · m_t / 12)
    gap       = lost − replaced − substit. − recycled + surge · D
    released  = min(gap, stock_t, release_max)                             stockpile release
    shortfall = gap − released ≥ 0;  stock_{t+1} = stock_t − released
    demand    = D · (1 + surge) − substit.;  supply = demand − shortfall
    price     = P0 · clip((supply / demand) ** (1 / ε), 1, price_cap)      constant-elasticity clearing

``m_t`` counts months since the scenario's response clock starts (``response_start``), the same for every
cut magnitude, so a larger cut never lowers the shortfall. ``u[k]`` is the share of the consumer's stage
supply produced domestically and ``f_up`` the unmet fraction of the consumer's upstream stage: a consumer's
own refiners starve when its ore supply is cut; a stage where the consumer has no demand passes ``f_up`` on
unchanged (a commodity without that stage, e.g. tungsten mine → metal). Identity checked by the tests:
``supply = domestic + imports + replaced + recycled + released`` and ``supply = demand − shortfall``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from critmin.constants import COMMODITY, STAGES

SUPPLIER, CONSUMER, MONTH, STAGE = "supplier", "consumer", "month", "stage"


@dataclass
class Baseline:
    """The undisturbed chain.

    Attributes
    ----------
    demand : (commodity, stage, consumer) t/month
    share : (commodity, stage, supplier, consumer) fraction of the consumer's supply from each supplier;
        sums to 1 over ``supplier`` where demand > 0 (the consumer's own production is a supplier too).
    domestic : (commodity, stage, consumer) fraction of the consumer's supply produced at home (u).
    price0 : (commodity,) USD/t, reference price.
    elasticity : (commodity,) price elasticity of demand (< 0).
    price_cap : (commodity,) maximum price multiple.
    """

    demand: xr.DataArray
    share: xr.DataArray
    domestic: xr.DataArray
    price0: xr.DataArray
    elasticity: xr.DataArray
    price_cap: xr.DataArray


@dataclass
class Responses:
    """Responses, each (commodity,) or broadcastable to (commodity, consumer).

    leakage : share of a withheld flow that still arrives via third countries (0..1)
    ramp : replacement supply from unaffected producers, fraction of demand per year of disruption
    substitution : demand that can be given up, fraction of demand per year (cumulative cap grows)
    recycling : extra secondary supply, fraction of demand per year
    stock0 : (commodity, consumer) t, stock held at month 0 (in the stage given by ``stock_stage``)
    release_max : (commodity, consumer) t/month, largest monthly release
    stock_stage : the stage at which the stockpile is held and released (default: the most downstream
        stage with demand; a single stage for all commodities keeps the model simple)
    response_start : month index at which ramp / substitution / recycling clocks start
    """

    leakage: xr.DataArray | float = 0.0
    ramp: xr.DataArray | float = 0.0
    substitution: xr.DataArray | float = 0.0
    recycling: xr.DataArray | float = 0.0
    stock0: xr.DataArray | float = 0.0
    release_max: xr.DataArray | float = 0.0
    stock_stage: str = "refine"
    response_start: int = 0


def _da(x, like: xr.DataArray) -> xr.DataArray:
    return x if isinstance(x, xr.DataArray) else xr.zeros_like(like, dtype=float) + float(x)


@dataclass
class Cascade:
    """Result of :func:`cascade`: arrays (..., stage, consumer, month) in the memory layout of ``withheld``.

    ``shortfall`` always; the others only with ``full=True`` (else None). t/month, except ``stock`` (t at the
    end of the month; 0 at every stage but the stockpile's). ``lost`` is the loss after the cap at demand
    (withheld plus the domestic processors' starvation), ``demand`` the demand after surge and substitution.
    """

    shortfall: np.ndarray
    lost: np.ndarray | None = None
    replaced: np.ndarray | None = None
    substituted: np.ndarray | None = None
    recycled: np.ndarray | None = None
    released: np.ndarray | None = None
    stock: np.ndarray | None = None
    demand: np.ndarray | None = None


def cascade(withheld: np.ndarray, demand: np.ndarray, domestic: np.ndarray, m_t: np.ndarray, *,
            ramp: np.ndarray | float = 0.0, substitution: np.ndarray | float = 0.0,
            recycling: np.ndarray | float = 0.0, stock0: np.ndarray | float = 0.0,
            release_max: np.ndarray | float = 0.0, stock_stage: int = -1, surge: np.ndarray | None = None,
            reach: np.ndarray | None = None, full: bool = False) -> Cascade:
    """The stage cascade of the module docstring on plain arrays: the one implementation of the arithmetic.

    Every leading axis (draws; in :func:`simulate` also scenarios and commodities) is carried through; the
    loops are over stages (upstream → downstream) and, at the stockpile's stage, over months.

    Parameters
    ----------
    withheld : ndarray (..., stage, consumer, month), t/month
        Σ_i share · D · cut · (1 − leakage): each consumer's supply withheld directly. Its shape is the
        result's; every other array broadcasts to it (with the full stage axis where it has one).
    demand : ndarray (..., stage, consumer), t/month, baseline demand D.
    domestic : ndarray (..., stage, consumer), share u of the consumer's supply produced at home.
    m_t : ndarray (month,), months since the response clock started.
    ramp, substitution, recycling : ndarray (..., consumer) or float, fraction of demand per year.
    stock0 : ndarray (..., consumer) or float, t held at month 0 at ``stock_stage``.
    release_max : ndarray (..., consumer) or float, t/month.
    stock_stage : index of the stockpile's stage along the stage axis; −1: no stockpile.
    surge : ndarray (..., stage, consumer, month), extra demand as a fraction of D; None: no surge.
    reach : ndarray (stage, consumer) of bool, optional
        The cells a disruption can reach (something withheld there, or the consumer's own processors starved
        from a reached stage upstream). Only the span of consumers covering a stage's reached cells is
        computed: with no surge and nothing withheld or starved, the shortfall of any other cell is exactly 0
        (and is 0 too if computed). Only the shortfall is returned then (not with ``full``).
    full : also return every intermediate (for :func:`simulate`); the Monte Carlo needs the shortfall only.

    Returns
    -------
    Cascade

    Notes
    -----
    A response whose rate is 0 at every computed cell, and a stockpile with nothing to release, are skipped:
    they would take min(rest, 0) = 0, so the result is the same to the bit.
    """
    if reach is not None and full:
        raise ValueError("cascade: reach skips cells, so it returns the shortfall only (full=False)")
    K = withheld.shape[-2]
    resp = [np.broadcast_to(r, np.broadcast_shapes(np.shape(r), (K,))) for r in (ramp, substitution, recycling)]
    stock0 = np.broadcast_to(stock0, np.broadcast_shapes(np.shape(stock0), (K,)))
    release_max = np.broadcast_to(release_max, np.broadcast_shapes(np.shape(release_max), (K,)))
    shortfall = np.empty_like(withheld)                             # every cell is written below
    keep = ("lost", "replaced", "substituted", "recycled", "released", "stock", "demand") if full else ()
    out = {k: np.zeros_like(withheld) for k in keep}
    f_up = None                                                      # (..., consumer, month), unmet upstream
    n_stages = withheld.shape[-3]
    for s in range(n_stages):
        if reach is None:
            ks = slice(None)
        else:
            on = np.flatnonzero(reach[s])
            if on.size == 0:
                shortfall[..., s, :, :] = 0.0
                f_up = _unreached(f_up, demand[..., s, :], reach[s], withheld[..., 0, :, :])
                continue
            ks = slice(on[0], on[-1] + 1)   # a span of consumers: views, no copies; an unreached cell in it gives 0
            shortfall[..., s, :on[0], :] = 0.0
            shortfall[..., s, on[-1] + 1:, :] = 0.0
        d = demand[..., s, ks, None]                                 # (..., consumer, 1)
        lost = withheld[..., s, ks, :]
        if f_up is not None:
            lost = lost + domestic[..., s, ks, None] * d * f_up[..., ks, :]
            lost = np.where(lost > d, d, lost)                       # cannot lose more than the whole supply
        rest, taken = lost, []
        for r in resp:
            r = r[..., ks]
            if not np.any(r):
                taken.append(None)                                   # a zero cap takes nothing
                continue
            cap = r[..., None] * d * m_t / 12.0
            took = np.where(rest < cap, rest, cap)
            rest = rest - took
            taken.append(took)
        replaced, substituted, recycled = taken
        gap = rest if surge is None else rest + surge[..., s, ks, :] * d
        st0, rmax = stock0[..., ks], release_max[..., ks]
        if s == stock_stage and np.any(st0 != 0) and np.any(rmax != 0):
            # the stockpile recursion: the only loop over months, vectorised over everything else
            st = np.broadcast_to(st0, gap.shape[:-1]).astype(np.float64)
            released = np.empty_like(gap)
            stock = np.empty_like(gap)
            for t in range(gap.shape[-1]):
                r_t = np.minimum(np.minimum(gap[..., t], st), rmax)
                np.clip(r_t, 0.0, None, out=r_t)
                st = st - r_t
                released[..., t] = r_t
                stock[..., t] = st
            sf = np.clip(gap - released, 0.0, None)
        else:
            released = None
            stock = np.broadcast_to(st0, gap.shape[:-1])[..., None] if s == stock_stage else None
            sf = np.clip(gap, 0.0, None)
        shortfall[..., s, ks, :] = sf
        dem = d if surge is None else d * (1.0 + surge[..., s, ks, :])
        if substituted is not None:
            dem = dem - substituted
        if s < n_stages - 1:   # the unmet fraction feeds the next stage (the last stage's is not needed)
            f_here = np.divide(sf, dem, out=np.zeros_like(sf), where=dem > 0)   # dem broadcasts to sf's shape
            np.copyto(f_here, 0.0, where=np.isnan(f_here))
            if f_up is None or reach is not None:
                f_up = _unreached(f_up, demand[..., s, :], None if reach is None else reach[s], withheld[..., 0, :, :])
            # a stage with no demand (tungsten: mine → metal, refine empty) passes the upstream starvation on
            f_up[..., ks, :] = f_here if np.all(d > 0) else np.where(d > 0, f_here, f_up[..., ks, :])
        for key, val in (("lost", lost), ("replaced", replaced), ("substituted", substituted),
                         ("recycled", recycled), ("released", released), ("stock", stock), ("demand", dem)):
            if key in out and val is not None:
                out[key][..., s, :, :] = val
    return Cascade(shortfall=shortfall, **out)


def _unreached(f_up: np.ndarray | None, d: np.ndarray, reach: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """f_up (..., consumer, month) before a stage's reached cells are written: 0 where the consumer has demand
    at the stage but is not reached (nothing unmet), carried where it has no demand; zeros (in the layout of
    ``like``) at the first stage."""
    if f_up is None:
        return np.zeros_like(like)
    zero = (d > 0) & ~reach                      # d: (..., consumer)
    if zero.ndim == 1:                           # the same cells in every draw: set them in place
        f_up[..., zero, :] = 0.0
        return f_up
    return np.where(zero[..., None], 0.0, f_up)


def _lead_dims(arrays: list[xr.DataArray], core: tuple[str, ...]) -> list[str]:
    """Dimensions other than ``core``, in order of first appearance (the leading axes of the arrays)."""
    lead: list[str] = []
    for a in arrays:
        lead += [d for d in a.dims if d not in core and d not in lead]
    return lead


def _values(a: xr.DataArray, dims: list[str]) -> np.ndarray:
    """``a``'s values with its axes in ``dims`` order; a dimension it lacks is a length-1 axis (broadcasts)."""
    return a.expand_dims([d for d in dims if d not in a.dims]).transpose(*dims).values


def simulate(base: Baseline, cut: xr.DataArray, responses: Responses, *, months: int,
             surge: xr.DataArray | float = 0.0) -> xr.Dataset:
    """Propagate a disruption month by month: the labelled wrapper of :func:`cascade`.

    Parameters
    ----------
    base : Baseline
    cut : DataArray (..., commodity, stage, supplier, consumer, month) or any broadcastable subset
        Fraction (0..1) of each supplier's flow to each consumer withheld in each month.
    responses : Responses
    months : int
        Horizon (number of monthly steps).
    surge : DataArray (..., commodity, stage, consumer, month) or float
        Extra demand as a fraction of baseline demand.

    Returns
    -------
    Dataset with dims (..., commodity, stage, consumer, month): ``demand``, ``supply``, ``shortfall``,
    ``domestic``, ``imports``, ``replaced``, ``substituted``, ``recycled``, ``released``, ``stock``
    (t, end of month), ``price`` (USD/t), ``days_of_cover`` (d), ``cumulative_unmet`` (t),
    ``unmet_value`` (USD, cumulative).
    """
    month_idx = xr.DataArray(np.arange(months), dims=[MONTH], coords={MONTH: np.arange(months)})
    cut = (xr.zeros_like(month_idx, dtype=float) + cut).clip(0.0, 1.0)
    surge = xr.zeros_like(month_idx, dtype=float) + surge
    D = base.demand
    one_c = xr.zeros_like(base.price0)
    leak = one_c + responses.leakage
    ramp = one_c + responses.ramp
    subst = one_c + responses.substitution
    recyc = one_c + responses.recycling
    # months since the response clock started (same for every magnitude: monotone in the cut)
    m = (month_idx - responses.response_start + 1).clip(min=0)
    stages = [s for s in STAGES if s in list(D[STAGE].values)]
    # withheld flow per consumer: Σ_i share · D · cut · (1 − leakage)
    withheld = ((base.share * cut).sum(SUPPLIER) * D * (1.0 - leak)).sel({STAGE: stages})
    stock = (xr.zeros_like(D.isel({STAGE: 0}, drop=True)) + responses.stock0).astype(float)
    stock = stock.drop_vars(MONTH, errors="ignore")
    rel_max = xr.zeros_like(stock) + responses.release_max
    if STAGE in surge.dims:
        surge = surge.sel({STAGE: stages})
    by_stage = [a.sel({STAGE: stages}) for a in (D, base.domestic, D * (1.0 - base.domestic))]
    # the arithmetic's inner join, then plain arrays with the leading dims first
    withheld, D_s, u_s, imports_base, ramp, subst, recyc, stock, rel_max, surge = xr.align(
        withheld, *by_stage, ramp, subst, recyc, stock, rel_max, surge, join="inner")
    core = (COMMODITY, STAGE, CONSUMER, MONTH)
    lead = _lead_dims([withheld, D_s, u_s, ramp, subst, recyc, stock, rel_max, surge], core)
    dims4 = [*lead, *core]
    dims3 = [*lead, COMMODITY, STAGE, CONSUMER]
    dims2 = [*lead, COMMODITY, CONSUMER]
    w, sg = _values(withheld, dims4), _values(surge, dims4)
    d_np, u_np = _values(D_s, dims3), _values(u_s, dims3)
    params = [_values(a, dims2) for a in (ramp, subst, recyc, stock, rel_max)]   # (..., commodity, consumer)
    shape = np.broadcast_shapes(w.shape, sg.shape, d_np[..., None].shape, u_np[..., None].shape,
                                *(p[..., None, :, None].shape for p in params))
    w, sg = np.broadcast_to(w, shape), np.broadcast_to(sg, shape)
    res = cascade(w, d_np, u_np, m.values.astype(np.float64), ramp=params[0], substitution=params[1],
                  recycling=params[2], stock0=params[3], release_max=params[4],
                  stock_stage=stages.index(responses.stock_stage) if responses.stock_stage in stages else -1,
                  surge=sg, full=True)
    d4 = d_np[..., None]
    arrays = {"demand": res.demand, "supply": res.demand - res.shortfall, "shortfall": res.shortfall,
              "domestic": u_np[..., None] * d4 - (res.lost - w),
              "imports": _values(imports_base, dims3)[..., None] - w, "replaced": res.replaced,
              "substituted": res.substituted, "recycled": res.recycled, "released": res.released,
              "stock": res.stock, "surge_demand": sg * d4}
    sources = [withheld, D_s, ramp, subst, recyc, stock, rel_max, surge]
    coords = {d: next(a[d] for a in sources if d in a.dims and d in a.coords).values
              for d in lead if any(d in a.dims and d in a.coords for a in sources)}
    coords.update({COMMODITY: withheld[COMMODITY].values, STAGE: stages, CONSUMER: withheld[CONSUMER].values,
                   MONTH: month_idx.values})
    ds = xr.Dataset({k: (dims4, np.broadcast_to(v, shape)) for k, v in arrays.items()}, coords=coords)
    ratio = (ds["supply"] / ds["demand"].where(ds["demand"] > 0)).fillna(1.0).clip(1e-9, 1.0)
    mult = (ratio ** (1.0 / base.elasticity)).clip(1.0, base.price_cap)
    ds["price"] = base.price0 * mult
    daily = ds["demand"] / (365.0 / 12.0)
    ds["days_of_cover"] = (ds["stock"] / daily.where(daily > 0)).fillna(0.0)
    ds["cumulative_unmet"] = ds["shortfall"].cumsum(MONTH)
    ds["unmet_value"] = (ds["shortfall"] * ds["price"]).cumsum(MONTH)
    units = {"demand": "t/month", "supply": "t/month", "shortfall": "t/month", "domestic": "t/month",
             "imports": "t/month", "replaced": "t/month", "substituted": "t/month", "recycled": "t/month",
             "released": "t/month", "stock": "t", "surge_demand": "t/month", "price": "USD/t",
             "days_of_cover": "d", "cumulative_unmet": "t", "unmet_value": "USD"}
    for k, u_ in units.items():
        ds[k].attrs["units"] = u_
    return ds.transpose(..., COMMODITY, STAGE, CONSUMER, MONTH)


__all__ = ["COMMODITY", "CONSUMER", "MONTH", "STAGE", "SUPPLIER", "Baseline", "Cascade", "Responses", "cascade",
           "simulate"]

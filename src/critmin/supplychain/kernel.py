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


def simulate(base: Baseline, cut: xr.DataArray, responses: Responses, *, months: int,
             surge: xr.DataArray | float = 0.0) -> xr.Dataset:
    """Propagate a disruption month by month.

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
    # withheld flow per consumer: Σ_i share · D · cut · (1 − leakage)
    withheld = (base.share * cut).sum(SUPPLIER) * D * (1.0 - leak)
    imports_base = D * (1.0 - base.domestic)
    stages = [s for s in STAGES if s in list(D[STAGE].values)]
    stock = (xr.zeros_like(D.isel({STAGE: 0}, drop=True)) + responses.stock0).astype(float)
    stock = stock.drop_vars(MONTH, errors="ignore")
    rel_max = xr.zeros_like(stock) + responses.release_max
    outputs: dict[str, list[xr.DataArray]] = {}
    f_up_prev = None
    per_stage = []
    for s in stages:
        d_s = D.sel({STAGE: s})
        lost_direct = withheld.sel({STAGE: s})
        u = base.domestic.sel({STAGE: s})
        if f_up_prev is not None:
            lost = lost_direct + u * d_s * f_up_prev
            lost = xr.where(lost > d_s, d_s, lost)  # cannot lose more than the whole supply
        else:
            lost = lost_direct
        cap_r = ramp * d_s * m / 12.0
        replaced = xr.where(lost < cap_r, lost, cap_r)
        rest = lost - replaced
        cap_s = subst * d_s * m / 12.0
        substituted = xr.where(rest < cap_s, rest, cap_s)
        rest = rest - substituted
        cap_c = recyc * d_s * m / 12.0
        recycled = xr.where(rest < cap_c, rest, cap_c)
        rest = rest - recycled
        surge_s = surge.sel({STAGE: s}) if STAGE in surge.dims else surge
        gap = rest + surge_s * d_s
        if s == responses.stock_stage:
            # the stockpile recursion: the only loop, over months, vectorised over everything else
            rel_list, stock_list = [], []
            st = stock
            for t in range(months):
                g_t = gap.isel({MONTH: t}, drop=True)
                r_t = np.minimum(np.minimum(g_t, st), rel_max)
                r_t = r_t.clip(min=0.0)
                st = st - r_t
                rel_list.append(r_t)
                stock_list.append(st)
            released = xr.concat(rel_list, dim=MONTH).assign_coords({MONTH: month_idx.values})
            stock_end = xr.concat(stock_list, dim=MONTH).assign_coords({MONTH: month_idx.values})
        else:
            released = xr.zeros_like(gap)
            stock_end = xr.zeros_like(gap)
        shortfall = (gap - released).clip(min=0.0)
        demand = d_s * (1.0 + surge_s) - substituted
        supply = demand - shortfall
        domestic = u * d_s - (lost - lost_direct)
        imports = imports_base.sel({STAGE: s}) - lost_direct
        f_here = (shortfall / demand.where(demand > 0)).fillna(0.0)
        # a stage with no demand (tungsten: mine → metal, refine empty) passes the upstream starvation on
        f_up_prev = f_here if f_up_prev is None else xr.where(d_s > 0, f_here, f_up_prev)
        per_stage.append({"demand": demand, "supply": supply, "shortfall": shortfall, "domestic": domestic,
                          "imports": imports, "replaced": replaced,
                          "substituted": substituted, "recycled": recycled, "released": released,
                          "stock": stock_end, "surge_demand": surge_s * d_s})
    for key in per_stage[0]:
        outputs[key] = xr.concat([p[key].broadcast_like(per_stage[0]["shortfall"]) for p in per_stage],
                                 dim=STAGE).assign_coords({STAGE: stages})
    ds = xr.Dataset(outputs)
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


__all__ = ["COMMODITY", "CONSUMER", "MONTH", "STAGE", "SUPPLIER", "Baseline", "Responses", "simulate"]

"""Concentration, dependence and governance kernels.

All functions take and return :class:`xarray.DataArray` and vectorise over every
dimension they do not reduce (commodity, year, importer, ...). Residual rows
(``ROW``, "Other countries") belong to the denominator of shares but are not a
supplier: pass ``named`` masks to exclude them from concentration sums.
"""

from __future__ import annotations

import xarray as xr

from critmin.constants import COUNTRY, EXPORTER


def shares(quantity: xr.DataArray, *, dim: str = COUNTRY) -> xr.DataArray:
    """Shares of ``quantity`` along ``dim`` (denominator = sum of all rows, residual included).

    Returns NaN where the total is zero (no data).
    """
    total = quantity.sum(dim)
    return (quantity / total.where(total > 0)).assign_attrs(units="1", long_name="share")


def hhi(share: xr.DataArray, *, dim: str = COUNTRY, named: xr.DataArray | None = None) -> xr.DataArray:
    """Herfindahl–Hirschman index Σ s_c² over named suppliers.

    Parameters
    ----------
    share : DataArray
        Supply shares (dimensionless) along ``dim``.
    named : DataArray of bool, optional
        Which labels of ``dim`` are suppliers (False for residual rows).

    Returns
    -------
    DataArray
        HHI in [0, 1] (in [1/n, 1] when shares of n named suppliers sum to 1), ``dim`` removed.
    """
    s = share if named is None else share.where(named, 0.0)
    return (s**2).sum(dim, min_count=1).where(share.notnull().any(dim)).assign_attrs(units="1", long_name="HHI")


def top_k_share(share: xr.DataArray, k: int = 3, *, dim: str = COUNTRY,
                named: xr.DataArray | None = None) -> xr.DataArray:
    """Sum of the ``k`` largest named shares along ``dim``."""
    s = (share if named is None else share.where(named, 0.0)).fillna(0.0)
    axis = s.get_axis_num(dim)
    import numpy as np

    top = -np.sort(-s.values, axis=axis).take(range(min(k, s.sizes[dim])), axis=axis)
    out = xr.DataArray(top.sum(axis=axis), dims=[d for d in s.dims if d != dim],
                       coords={d: s.coords[d] for d in s.dims if d != dim})
    return out.where(share.notnull().any(dim)).assign_attrs(units="1", long_name=f"top-{k} share")


def geopolrisk_g(pv_estimate: xr.DataArray) -> xr.DataArray:
    """GeoPolRisk normalised instability g = clip((2.5 − PV)/5, 0, 1) from the WGI Political Stability estimate."""
    return ((2.5 - pv_estimate) / 5.0).clip(0.0, 1.0).assign_attrs(units="1")


def eu_wgi_scale(wgi_estimate: xr.DataArray) -> xr.DataArray:
    """EU CRM rescaling of a WGI estimate to 0 (best) … 10 (worst): (2.5 − WGI) × 2, clipped."""
    return ((2.5 - wgi_estimate) * 2.0).clip(0.0, 10.0).assign_attrs(units="1")


def wgi_weighted_hhi(share: xr.DataArray, scaled_wgi: xr.DataArray, t: xr.DataArray | float = 1.0, *,
                     dim: str = COUNTRY, named: xr.DataArray | None = None) -> xr.DataArray:
    """EU-style governance-weighted concentration Σ s_c² · WGI_c · t_c (0 … 10 × t)."""
    s = share if named is None else share.where(named, 0.0)
    return ((s**2) * scaled_wgi * t).sum(dim, min_count=1).where(share.notnull().any(dim)).assign_attrs(
        units="1", long_name="HHI_WGI,t")


def import_shares(imports: xr.DataArray, *, dim: str = EXPORTER) -> xr.DataArray:
    """Share of each partner in imports along ``dim``."""
    return shares(imports, dim=dim)


def import_reliance(domestic: xr.DataArray, imports: xr.DataArray, exports: xr.DataArray) -> xr.DataArray:
    """Net import reliance (I − E) / (P + I − E), clipped to [0, 1]; 0 for net exporters."""
    net = imports - exports
    consumption = domestic + net
    ir = (net / consumption.where(consumption > 0)).clip(0.0, 1.0)
    return ir.where(~((net <= 0) & ir.isnull()), 0.0).assign_attrs(units="1", long_name="import reliance")


def governance_weighted_import_risk(imports: xr.DataArray, g: xr.DataArray, domestic: xr.DataArray, *,
                                    dim: str = EXPORTER) -> xr.DataArray:
    """Σ_i q_i·g_i / (Σ_i q_i + P_domestic): GeoPolRisk's import risk (weighted trade average)."""
    numerator = (imports * g).sum(dim)
    denominator = imports.sum(dim) + domestic
    return (numerator / denominator.where(denominator > 0)).assign_attrs(units="1", long_name="import risk")


def allied_share(share: xr.DataArray, allied: xr.DataArray, *, dim: str = COUNTRY) -> xr.DataArray:
    """Share of supply from countries in an allied group (``allied`` boolean over ``dim``)."""
    return (share.where(allied, 0.0)).sum(dim, min_count=1).where(share.notnull().any(dim)).assign_attrs(
        units="1", long_name="allied share")

"""USGS-style supply risk: disruption potential × trade exposure × economic vulnerability.

Follows the structure of Nassar et al. (2020) and Nassar & Fortier (2021) with the inputs critmin's
data supports: DP = Σ_c s_c² · w_c with w_c the WGI mean of the six dimensions scaled to 0..1
(w = clip((2.5 − WGI)/5, 0, 1)); TE = net import reliance (USGS published figure where the importer is
the USA and MCS gives it, else computed from trade and production); EV an explicit input (default 1).
The published USGS scores also use a time series and price-based EV and are not reproduced exactly.

References
----------
Nassar, N.T. et al. (2020). Evaluating the mineral commodity supply risk of the U.S. manufacturing
sector. Science Advances 6(8), eaay8647. Nassar, N.T., Fortier, S.M. (2021). Methodology and technical
input for the 2021 review and revision of the U.S. Critical Minerals List. USGS OFR 2021-1045.
"""

from __future__ import annotations

import xarray as xr

from critmin.constants import COUNTRY, EXPORTER, IMPORTER
from critmin.indicators import import_reliance, shares
from critmin.methods.inputs import Inputs

CITATION = ("Nassar et al. (2020) Sci. Adv. 6:eaay8647; Nassar & Fortier (2021) USGS OFR 2021-1045 "
            "(structure: DP × TE × EV)")


def usgs_supply_risk(inp: Inputs, *, ev: xr.DataArray | float = 1.0,
                     published_nir: xr.DataArray | None = None) -> xr.Dataset:
    """DP, TE, EV and SR for every commodity × importer × year.

    Parameters
    ----------
    ev : float or DataArray (commodity)
        Economic vulnerability (0..1).
    published_nir : DataArray (commodity, importer, year), optional
        Published net import reliance (fraction) that replaces the computed one where not NaN.
    """
    w = ((2.5 - inp.wgi_mean()) / 5.0).clip(0, 1).fillna(0.5)
    s = shares(inp.production, dim=COUNTRY)
    dp = ((s.where(inp.named, 0.0) ** 2) * w).sum(COUNTRY, min_count=1).where(s.notnull().any(COUNTRY))
    imports = inp.extra_bloc_imports().sum(EXPORTER)
    exports = inp.extra_bloc_exports()
    domestic = inp.domestic()
    te = import_reliance(domestic, imports, exports).where(inp.has_trade)
    te_source = xr.zeros_like(te)
    if published_nir is not None:
        pub = published_nir.reindex_like(te)
        te_source = pub.notnull().astype(float)
        te = pub.where(pub.notnull(), te)
    sr = dp * te * ev
    ds = xr.Dataset({
        "disruption_potential": dp.assign_attrs(units="1"),
        "trade_exposure": te.assign_attrs(units="1"),
        "trade_exposure_published": te_source.assign_attrs(units="1", long_name="1 = USGS published NIR"),
        "economic_vulnerability": (xr.zeros_like(sr) + ev).assign_attrs(units="1"),
        "supply_risk": sr.assign_attrs(units="1"),
    }).transpose("commodity", IMPORTER, "year")
    ds.attrs.update(method="usgs", citation=CITATION, stage=inp.stage)
    return ds

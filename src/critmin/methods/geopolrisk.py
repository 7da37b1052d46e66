"""GeoPolRisk: geopolitical supply risk of a raw material for an importer.

References
----------
Gemechu, E.D., Helbig, C., Sonnemann, G., Thorenz, A., Tuma, A. (2016). Import-based indicator for the
geopolitical supply risk of raw materials in life cycle sustainability assessments. J. Ind. Ecol. 20(1).
Koyamparambath, A., Schraml, T. et al. geopolrisk-py: a Python library for geopolitical supply risk
assessment. JOSS, doi:10.21105/joss.09600 (reference implementation; CF normalised to copper).
"""

from __future__ import annotations

import xarray as xr

from critmin.constants import COUNTRY, EXPORTER, GEOPOLRISK_CU_REFERENCE, IMPORTER
from critmin.indicators import geopolrisk_g, governance_weighted_import_risk, hhi, shares
from critmin.methods.inputs import Inputs

CITATION = ("Gemechu et al. (2016) J. Ind. Ecol. 20(1); Koyamparambath et al., geopolrisk-py, "
            "JOSS doi:10.21105/joss.09600")

#: g for an exporter without a Political Stability estimate (geopolrisk-py convention).
MISSING_G = 0.5


def geopolrisk(inp: Inputs) -> xr.Dataset:
    """All GeoPolRisk terms for every commodity × importer × year of ``inp``.

    Returns
    -------
    Dataset
        ``hhi`` (1), ``domestic_production`` (t), ``numerator`` Σ q·g (t), ``total_imports`` (t),
        ``import_risk`` (1), ``score`` (1), ``price`` (USD/kg), ``midpoint`` = score × price (USD/kg),
        ``cf`` (kg Cu-eq/kg); dims (commodity, importer, year).
    """
    s = shares(inp.production, dim=COUNTRY)
    h = hhi(s, dim=COUNTRY, named=inp.named)
    g = geopolrisk_g(inp.governance.sel(indicator="pv", drop=True)).fillna(MISSING_G).rename({COUNTRY: EXPORTER})
    m_exp = inp.membership_as(EXPORTER)
    g_imp = g * (1.0 - m_exp)                                   # exporters inside the bloc carry no risk
    imports = inp.imports()                                     # (commodity, exporter, year, importer)
    values = inp.imports(values=True)
    domestic = inp.domestic()
    numerator = (imports * g_imp).sum(EXPORTER)
    total = imports.sum(EXPORTER)
    risk = governance_weighted_import_risk(imports, g_imp, domestic, dim=EXPORTER).where(inp.has_trade)
    score = h * risk
    price = values.sum(EXPORTER) / (total * 1000.0).where(total > 0)   # USD per kg
    midpoint = score * price
    cf = midpoint / GEOPOLRISK_CU_REFERENCE
    ds = xr.Dataset({
        "hhi": h.assign_attrs(units="1"),
        "domestic_production": domestic.assign_attrs(units="t"),
        "numerator": numerator.assign_attrs(units="t"),
        "total_imports": total.assign_attrs(units="t"),
        "import_risk": risk.assign_attrs(units="1"),
        "score": score.assign_attrs(units="1"),
        "price": price.assign_attrs(units="USD/kg"),
        "midpoint": midpoint.assign_attrs(units="USD/kg"),
        "cf": cf.assign_attrs(units="kg Cu-eq/kg"),
    })
    ds = ds.transpose("commodity", IMPORTER, "year")
    ds.attrs.update(method="geopolrisk", citation=CITATION, stage=inp.stage)
    return ds

"""EU critical raw materials supply risk (SR).

SR = [HHI_WGI,t(global supply) · IR/2 + HHI_WGI,t(sourcing) · (1 − IR/2)] · (1 − EoL_RIR) · SI_SR

References
----------
Blengini, G.A. et al. (2017). Methodology for establishing the EU list of critical raw materials:
guidelines. Publications Office of the EU, doi:10.2760/73303 (JRC).
"""

from __future__ import annotations

import xarray as xr

from critmin.constants import COUNTRY, EXPORTER, IMPORTER
from critmin.indicators import eu_wgi_scale, hhi, import_reliance, shares, wgi_weighted_hhi
from critmin.methods.inputs import Inputs

CITATION = "Blengini et al. (2017) EU CRM methodology guidelines, JRC, doi:10.2760/73303"


def eu_supply_risk(inp: Inputs, *, t: xr.DataArray, eol_rir: xr.DataArray | float,
                   substitution: xr.DataArray | float, missing_scaled: float = 5.0) -> xr.Dataset:
    """EU-style SR for every commodity × importer × year.

    Parameters
    ----------
    t : DataArray (commodity, country, year)
        Export-restriction factor (1 = none).
    eol_rir, substitution : float or DataArray (commodity)
        End-of-life recycling input rate and substitution index (0..1).
    missing_scaled : float
        Scaled WGI weight (0..10) for suppliers without WGI data.
    """
    w = eu_wgi_scale(inp.wgi_mean()).fillna(missing_scaled)
    s = shares(inp.production, dim=COUNTRY)
    gs = wgi_weighted_hhi(s, w, t, dim=COUNTRY, named=inp.named)
    # Sourcing = domestic production + imports from outside the bloc, by supplier country.
    imports = inp.extra_bloc_imports()
    domestic_by_c = inp.production * inp.membership          # (commodity, country, year, importer)
    sourcing = domestic_by_c + imports.rename({EXPORTER: COUNTRY})
    s_src = shares(sourcing, dim=COUNTRY)
    src = wgi_weighted_hhi(s_src, w, t, dim=COUNTRY, named=inp.named)
    exports = inp.extra_bloc_exports()
    domestic = domestic_by_c.sum(COUNTRY)
    ir = import_reliance(domestic, imports.sum(EXPORTER), exports).where(inp.has_trade)
    sr = (gs * ir / 2 + src * (1 - ir / 2)) * (1 - eol_rir) * substitution
    ds = xr.Dataset({
        "hhi": hhi(s, dim=COUNTRY, named=inp.named).assign_attrs(units="1"),
        "hhi_wgi_t_global": gs.assign_attrs(units="1"),
        "hhi_wgi_t_sourcing": src.assign_attrs(units="1"),
        "import_reliance": ir.assign_attrs(units="1"),
        "eol_rir": (xr.zeros_like(gs) + eol_rir).assign_attrs(units="1"),
        "substitution_index": (xr.zeros_like(gs) + substitution).assign_attrs(units="1"),
        "supply_risk": sr.assign_attrs(units="1"),
    }).transpose("commodity", IMPORTER, "year")
    ds.attrs.update(method="eu-sr", citation=CITATION, stage=inp.stage)
    return ds

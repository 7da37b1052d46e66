"""EU critical raw materials supply risk (SR).

SR = [HHI_WGI,t(global supply) · IR/2 + HHI_WGI,t(sourcing) · (1 − IR/2)] · (1 − EoL_RIR) · SI_SR

References
----------
Blengini, G.A. et al. (2017). Assessment of the methodology for establishing the EU list of critical raw
materials — Background report. JRC, EUR 28654 EN, doi:10.2760/73303.
Blengini, G.A. et al. (2017). Methodology for establishing the EU list of critical raw materials —
Guidelines. European Commission, doi:10.2873/769526 (the formula of :func:`sr_from_components`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COUNTRY, EXPORTER, IMPORTER
from critmin.indicators import eu_wgi_scale, hhi, import_reliance, shares, wgi_weighted_hhi
from critmin.methods.inputs import Inputs

CITATION = ("Blengini et al. (2017) Methodology for establishing the EU list of critical raw materials — Guidelines, "
            "doi:10.2873/769526")

#: Supply data of an SR, by the labels of the 2017 assessment (Table 3 'Supply used in SR calc.') and short names.
SUPPLY_USED = {"gs + eus": "both", "gs + eu": "both", "both": "both",
               "gs only": "gs", "gs": "gs", "eus only": "eu", "eu only": "eu", "eus": "eu", "eu": "eu"}


def _supply_mode(label) -> str:
    try:
        return SUPPLY_USED[" ".join(str(label).split()).casefold()]
    except KeyError:
        raise ValueError(f"unknown supply_used {label!r}; use one of {sorted(SUPPLY_USED)}") from None


def _where(cond, a, b):
    """``a`` where ``cond`` else ``b``, keeping xarray coordinates or a pandas index of the inputs."""
    if any(isinstance(x, xr.DataArray) for x in (cond, a, b)):
        return xr.where(cond, a, b)
    out = np.where(np.asarray(cond, dtype=bool), a, b)
    index = next((x.index for x in (cond, a, b) if isinstance(x, pd.Series)), None)
    return pd.Series(out, index=index) if index is not None else out


def sr_from_components(hhi_gs, hhi_eu, ir, eol_rir, si_sr, *, supply_used="both"):
    """EU supply risk from its components (the 2017 EU criticality methodology).

    SR = [HHI_WGI,t(GS) · IR/2 + HHI_WGI,t(EU) · (1 − IR/2)] · (1 − EoL-RIR) · SI_SR

    Where the assessment used only one kind of supply data (the 2017 study, Table 3, "Supply used
    in SR calc."), SR = HHI_WGI,t(GS) · (1 − EoL-RIR) · SI_SR ("GS only": EU-sourcing data too poor
    or missing) or HHI_WGI,t(EU) · (1 − EoL-RIR) · SI_SR ("EUS only": no global market, no global
    data at the stage, or the EU independent of imports); IR is then not used and may be NaN.

    Parameters
    ----------
    hhi_gs, hhi_eu : float, array, Series or DataArray
        HHI_WGI,t of global supply and of EU sourcing (scaled 0–10 in EU reports).
    ir : float, array, Series or DataArray
        Import reliance, fraction 0–1. The 2017 assessment set negative IR (net exporter) to 0; do
        the same before calling to reproduce it.
    eol_rir, si_sr : float, array, Series or DataArray
        End-of-life recycling input rate (fraction 0–1) and the substitution index of SR.
    supply_used : str or array-like of str, default "both"
        Per element: ``"both"``/``"GS + EUS"``, ``"gs"``/``"GS only"`` or ``"eu"``/``"EUS only"``
        (case and spacing ignored).

    Returns
    -------
    Same kind as the inputs (broadcast): xarray if any input is a DataArray, a Series if any is a
    Series, else a NumPy array or float.

    References
    ----------
    Blengini, G.A., Nuss, P., Dewulf, J., Nita, V., Talens Peirò, L., Vidal-Legaz, B., Latunussa, C.,
    Mancini, L., Blagoeva, D., Pennington, D., Pellegrini, M., Van Maercke, A., Solar, S., Grohol, M.,
    Ciupagea, C. (2017). Methodology for establishing the EU list of critical raw materials —
    Guidelines. Publications Office of the European Union, doi:10.2873/769526.

    Examples
    --------
    >>> round(float(sr_from_components(9.2, 1.8, 1.0, 0.0, 0.9)), 2)   # dysprosium 2017, published 5.2
    4.95
    >>> round(float(sr_from_components(2.4, float("nan"), float("nan"), 0.0, 1.0, supply_used="GS only")), 2)
    2.4
    """
    both = hhi_gs * ir / 2 + hhi_eu * (1 - ir / 2)
    if isinstance(supply_used, str):
        mode = _supply_mode(supply_used)
        hhi = {"both": both, "gs": hhi_gs, "eu": hhi_eu}[mode]
    else:
        if isinstance(supply_used, xr.DataArray):
            mode = xr.apply_ufunc(np.vectorize(_supply_mode, otypes=[object]), supply_used)
        elif isinstance(supply_used, pd.Series):
            mode = supply_used.map(_supply_mode)
        else:
            mode = np.vectorize(_supply_mode, otypes=[object])(np.asarray(supply_used, dtype=object))
        hhi = _where(mode == "gs", hhi_gs, _where(mode == "eu", hhi_eu, both))
    return hhi * (1 - eol_rir) * si_sr


def eu_supply_risk(inp: Inputs, *, t: xr.DataArray, eol_rir: xr.DataArray | float,
                   substitution: xr.DataArray | float, missing_scaled: float = 5.0,
                   import_reliance_override: xr.DataArray | None = None) -> xr.Dataset:
    """EU-style SR for every commodity × importer × year.

    Parameters
    ----------
    t : DataArray (commodity, country, year)
        Export-restriction factor (1 = none).
    eol_rir, substitution : float or DataArray (commodity)
        End-of-life recycling input rate and substitution index (0..1).
    missing_scaled : float
        Scaled WGI weight (0..10) for suppliers without WGI data.
    import_reliance_override : DataArray (commodity, importer, year), optional
        Import reliance that replaces the one computed from this stage's trade where not NaN.
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
    if import_reliance_override is not None:   # reliance from every traded form (the priority engine's)
        over = import_reliance_override.reindex_like(ir)
        ir = over.where(over.notnull(), ir)
    # The 2017 assessment's "GS only" case: where the stage has no bilateral trade for the commodity, the
    # sourcing term cannot be built, and SR uses global supply alone (Blengini et al. 2017, section 3.2).
    sourcing_known = (inp.has_trade & src.notnull()).broadcast_like(src)
    src = src.where(sourcing_known)
    both = sr_from_components(gs, src, ir, eol_rir, substitution)
    gs_only = sr_from_components(gs, src, ir, eol_rir, substitution, supply_used="gs")
    sr = both.where(sourcing_known, gs_only)
    ds = xr.Dataset({
        "hhi": hhi(s, dim=COUNTRY, named=inp.named).assign_attrs(units="1"),
        "hhi_wgi_t_global": gs.assign_attrs(units="1"),
        "hhi_wgi_t_sourcing": src.assign_attrs(units="1"),
        "import_reliance": ir.assign_attrs(units="1"),
        "eol_rir": (xr.zeros_like(gs) + eol_rir).assign_attrs(units="1"),
        "substitution_index": (xr.zeros_like(gs) + substitution).assign_attrs(units="1"),
        "supply_risk": sr.assign_attrs(units="1"),
        "global_supply_only": (~sourcing_known & gs.notnull()).astype(float).assign_attrs(
            units="1", long_name="1 = SR from global supply only (no trade at this stage: the 2017 'GS only' case)"),
    }).transpose("commodity", IMPORTER, "year")
    ds.attrs.update(method="eu-sr", citation=CITATION, stage=inp.stage)
    return ds

"""Criticality methods on one set of inputs: ``critmin assess`` and the engine's method runs (no files written)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, COUNTRY, IMPORTER, STAGES, YEAR
from critmin.errors import ConfigError, CritminError
from critmin.importers import Importer, parse_importers
from critmin.indicators import allied_share, hhi, shares, top_k_share
from critmin.methods.eu_sr import eu_supply_risk
from critmin.methods.geopolrisk import geopolrisk
from critmin.methods.inputs import Inputs, build_inputs
from critmin.methods.registry import load_params
from critmin.methods.usgs import usgs_supply_risk
from critmin.reference.catalog import Catalog

METHODS = ("geopolrisk", "eu-sr", "usgs", "hhi")
DEFAULT_IMPORTERS = "USA,JPN,USA+JPN"
TIDY_COLUMNS = ["method", "commodity", "stage", "importer", "year", "indicator", "value", "unit"]


def _optional(cat: Catalog, name: str) -> pd.DataFrame | None:
    try:
        return cat.table(name)
    except CritminError:  # a user dataset without this table
        return None


def default_year(cat: Catalog, stage: str = "mine") -> int:
    """Latest year with both production (at ``stage``) and trade data."""
    prod = cat.table("production")
    trade = cat.table("trade")
    py = set(prod.loc[prod["stage"] == stage, "year"].astype(int))
    ty = set(trade.loc[trade["stage"] == stage, "year"].astype(int)) if len(trade) else set()
    both = py & ty
    if both:
        return max(both)
    if py:
        return max(py)
    raise ConfigError(f"no production data at stage {stage!r}")


def _inputs(cat: Catalog, importers: list[Importer], years: list[int], stage: str,
            commodities: list[str] | None) -> Inputs:
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    return build_inputs(cat.table("production"), cat.table("trade"), cat.table("governance"),
                        importers=importers, years=years, stage=stage, commodities=commodities)


def export_restriction_t(cat: Catalog, inp: Inputs, params: dict, as_of: dt.date | None = None) -> xr.DataArray:
    """t factor (commodity, country, year) at the inputs' stage.

    The EU 2023 assessment's global t per country where it assessed the commodity at this stage, raised to
    critmin's per-measure factor (params ``export_restriction_t``) for every restriction of the cited register
    that applies to all destinations and is in force on ``as_of`` (default: 31 December of each data year, or
    today for the current year) — :func:`critmin.methods.controls.measures_as_of`. Measures aimed at one
    country are not in this importer-independent factor; the priority engine applies them per importer.
    """
    from critmin.methods import controls

    tparams = params["eu_sr"]["export_restriction_t"]
    comm, ctry = inp.production[COMMODITY].values, inp.production[COUNTRY].values
    t = xr.DataArray(np.ones((len(comm), len(ctry), len(inp.years))), dims=[COMMODITY, COUNTRY, YEAR],
                     coords={COMMODITY: comm, COUNTRY: ctry, YEAR: inp.years})
    pos_c = {c: i for i, c in enumerate(comm)}
    pos_k = {k: i for i, k in enumerate(ctry)}
    arr = t.values
    eu = _optional(cat, "eu_crm_supply")
    if eu is not None and len(eu):
        e = eu[(eu["scope"] == "global") & (eu["stage"] == inp.stage)]
        for r in e.itertuples(index=False):
            if r.commodity in pos_c and r.country in pos_k and pd.notna(r.t):
                arr[pos_c[r.commodity], pos_k[r.country], :] = float(r.t)   # the EU's own t, 0.8 for members
    ec = _optional(cat, "export_controls")
    if ec is None or not len(ec):
        return t
    today = dt.date.today()
    for j, y in enumerate(inp.years):
        day = as_of or min(today, dt.date(int(y), 12, 31))
        m = controls.measures_as_of(ec, day)
        m = m[(m["status"] == "in_force") & m["restricts"].astype(bool)
              & (m["target_iso3"].astype(str) == "all")
              & m["stages"].fillna("").astype(str).str.split(";").map(lambda ss: inp.stage in ss)]
        for r in m.itertuples(index=False):
            if r.commodity in pos_c and r.country in pos_k:
                f = float(tparams.get(str(r.measure), tparams["none"]))
                arr[pos_c[r.commodity], pos_k[r.country], j] = max(arr[pos_c[r.commodity], pos_k[r.country], j], f)
    return t


def _per_commodity(spec: dict, commodities) -> xr.DataArray:
    vals = [float(spec.get("per_commodity", {}).get(c, spec["default"])) for c in commodities]
    return xr.DataArray(vals, dims=[COMMODITY], coords={COMMODITY: list(commodities)})


def _published_nir(cat: Catalog, inp: Inputs) -> xr.DataArray | None:
    labels = [i.label for i in inp.importers]
    if "USA" not in labels:
        return None
    try:
        sal = cat.table("us_salient")
    except CritminError:  # a dataset without U.S. salient statistics: computed NIR only
        return None
    nir = sal[(sal["statistic"] == "net_import_reliance") & sal["year"].isin(inp.years)]
    nir = nir[nir["commodity"].isin(inp.production[COMMODITY].values)].dropna(subset=["value"])
    if nir.empty:
        return None
    best = nir.groupby(["commodity", "year"], observed=True)["value"].max() / 100.0
    out = xr.DataArray(np.full((len(inp.production[COMMODITY]), len(labels), len(inp.years)), np.nan),
                       dims=[COMMODITY, IMPORTER, YEAR],
                       coords={COMMODITY: inp.production[COMMODITY].values, IMPORTER: labels, YEAR: inp.years})
    for (c, y), v in best.items():
        out.loc[c, "USA", int(y)] = float(v)
    return out


def concentration(inp: Inputs, allied: dict[str, Importer]) -> xr.Dataset:
    """HHI, top-3 share, top supplier share and allied shares per commodity × year."""
    s = shares(inp.production, dim=COUNTRY)
    named = inp.named
    top = s.where(named, -1.0).fillna(-1.0)
    top_idx = top.argmax(COUNTRY)
    data = {
        "hhi": hhi(s, named=named),
        "top3_share": top_k_share(s, 3, named=named),
        "top_supplier_share": s.where(named, 0.0).max(COUNTRY).where(s.notnull().any(COUNTRY)).assign_attrs(
            units="1"),
    }
    data["own_share"] = xr.dot(s.fillna(0.0), inp.membership, dim=COUNTRY).where(s.notnull().any(COUNTRY)).assign_attrs(
        units="1", long_name="share of supply from the importer's own members")
    for label, imp in allied.items():
        mask = xr.DataArray([c in imp.members for c in s[COUNTRY].values], dims=[COUNTRY],
                            coords={COUNTRY: s[COUNTRY].values})
        data[f"allied_share_{label.lower()}"] = allied_share(s, mask)
    ds = xr.Dataset(data).transpose(COMMODITY, IMPORTER, YEAR)
    ds.attrs.update(method="hhi", stage=inp.stage,
                    top_supplier={(c, int(y)): str(s[COUNTRY].values[int(top_idx.sel(commodity=c, year=y))])
                                  for c in s[COMMODITY].values for y in s[YEAR].values})
    return ds


def assess(method: str = "geopolrisk", importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
           stage: str = "mine", data: str | Path | None = None, params: str | Path | None = None,
           groups_file: str | Path | None = None, commodities: list[str] | None = None,
           catalog: Catalog | None = None) -> xr.Dataset:
    """Run one method; return a Dataset (commodity × importer × year) with units and sources in attrs."""
    return assess_many([method], importer, year, stage, data, params, groups_file, commodities, catalog)[method]


def assess_many(methods: list[str], importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
                stage: str = "mine", data: str | Path | None = None, params: str | Path | None = None,
                groups_file: str | Path | None = None, commodities: list[str] | None = None,
                catalog: Catalog | None = None, reliance: xr.DataArray | None = None,
                as_of: dt.date | None = None) -> dict[str, xr.Dataset]:
    """Several methods on one set of input arrays (built once): method → Dataset.

    ``reliance`` (commodity, importer, year), optional: import reliance from every traded form (the priority
    engine's) used by the EU-style SR (IR) and the USGS-style SR (TE) where given, instead of the reliance
    computed from this stage's trade alone."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method {bad[0]!r}; expected one of {', '.join(METHODS)}")
    cat = catalog or Catalog(data)
    importers = parse_importers(importer, groups_file)
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    if year is not None:
        prod = cat.table("production")
        have = sorted(set(prod.loc[prod["stage"] == stage, "year"].astype(int)))
        if int(year) not in have:
            span = f"{have[0]}-{have[-1]}" if have else "no year"
            raise ConfigError(f"--year {int(year)}: production data at stage {stage} cover {span}")
    years = [int(year)] if year is not None else [default_year(cat, stage)]
    inp = _inputs(cat, importers, years, stage, commodities)
    prm = load_params(params)
    return {m: _run_method(m, cat, inp, prm, data, reliance, as_of) for m in methods}


def _run_method(method: str, cat: Catalog, inp: Inputs, prm: dict, data,
                reliance: xr.DataArray | None = None, as_of: dt.date | None = None) -> xr.Dataset:
    if method == "geopolrisk":
        ds = geopolrisk(inp)
    elif method == "eu-sr":
        comm = inp.production[COMMODITY].values
        ds = eu_supply_risk(inp, t=export_restriction_t(cat, inp, prm, as_of),
                            eol_rir=_per_commodity(prm["eu_sr"]["eol_rir"], comm),
                            substitution=_per_commodity(prm["eu_sr"]["substitution_index"], comm),
                            missing_scaled=float(prm["eu_sr"]["missing_wgi_scaled"]["default"]),
                            import_reliance_override=reliance)
    elif method == "usgs":
        comm = inp.production[COMMODITY].values
        ds = usgs_supply_risk(inp, ev=_per_commodity(prm["usgs"]["economic_vulnerability"], comm),
                              published_nir=reliance if reliance is not None else _published_nir(cat, inp))
        if reliance is not None:
            ds["trade_exposure_published"].attrs["long_name"] = (
                "1 = trade exposure from the priority engine's import reliance (every traded form; USGS published "
                "figure for the USA where given)")
    else:
        allied = {"usa+jpn": parse_importers("USA+JPN")[0], "msp": parse_importers("msp")[0],
                  "g7": parse_importers("g7")[0], "quad": parse_importers("quad")[0]}
        ds = concentration(inp, allied)
    ds.attrs["sources"] = inp.sources
    ds.attrs["notes"] = inp.notes
    ds.attrs["governance_year"] = {str(k): v for k, v in inp.governance_year.items()}
    ds.attrs["basis"] = inp.basis
    ds.attrs["data"] = "user: " + str(data) if data else "bundled"
    return ds


def tidy(ds: xr.Dataset) -> pd.DataFrame:
    """Dataset → long table with columns ``method, commodity, stage, importer, year, indicator, value, unit``."""
    frames = []
    for name, da in ds.data_vars.items():
        if IMPORTER in ds.dims and IMPORTER not in da.dims:  # importer-independent term: repeat per importer
            da = da.expand_dims({IMPORTER: ds[IMPORTER].values})
        df = da.to_dataframe(name="value").reset_index()
        if IMPORTER not in df:
            df[IMPORTER] = ""
        df["indicator"] = name
        df["unit"] = da.attrs.get("units", "1")
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["method"] = ds.attrs.get("method", "")
    out["stage"] = ds.attrs.get("stage", "")
    out = out[TIDY_COLUMNS]
    out["year"] = out["year"].astype(int)
    return out.sort_values(["commodity", "importer", "year", "indicator"], kind="stable").reset_index(drop=True)


def _top(frame: pd.DataFrame, by: list[str], who: str, value: str) -> pd.DataFrame:
    """Row of the largest ``value`` per group, with its share of the group total."""
    tot = frame.groupby(by, observed=True)[value].transform("sum")
    f = frame.assign(share=frame[value] / tot.where(tot > 0))
    f = f.sort_values([*by, "share", who], ascending=[True] * len(by) + [False, True])
    return f.drop_duplicates(by)[[*by, who, "share"]]



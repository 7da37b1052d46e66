"""Load → compute → shape: the one place where IO meets the pure core.

CLI commands and the Python API call these functions; nothing here writes files
(writing is done by :mod:`critmin.report.export` once everything succeeded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, COUNTRY, IMPORTER, STAGES, YEAR
from critmin.errors import ConfigError, CritminError
from critmin.importers import Importer, groups, parse_importers
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
        raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return build_inputs(cat.table("production"), cat.table("trade"), cat.table("governance"),
                        importers=importers, years=years, stage=stage, commodities=commodities)


def export_restriction_t(cat: Catalog, inp: Inputs, params: dict) -> xr.DataArray:
    """t factor (commodity, country, year) from the cited export-controls catalogue."""
    tparams = params["eu_sr"]["export_restriction_t"]
    t = xr.DataArray(np.ones((len(inp.production[COMMODITY]), len(inp.production[COUNTRY]), len(inp.years))),
                     dims=[COMMODITY, COUNTRY, YEAR],
                     coords={COMMODITY: inp.production[COMMODITY].values, COUNTRY: inp.production[COUNTRY].values,
                             YEAR: inp.years})
    try:
        ec = cat.table("export_controls")
    except CritminError:  # a dataset without the curated table: no restrictions known
        return t
    stage_of = {"mine": "ore", "refine": "processed", "metal": "processed", "component": "product"}
    for row in ec.itertuples(index=False):
        stages = str(getattr(row, "stage", "")).split(";")
        if stage_of[inp.stage] not in [s.strip() for s in stages]:
            continue
        measure = str(getattr(row, "measure", "")).strip()
        factor = float(tparams.get(measure, tparams["none"]))
        start = pd.to_datetime(str(row.effective or row.announced), errors="coerce")
        end = pd.to_datetime(str(row.ended), errors="coerce") if str(row.ended or "") else None
        if pd.isna(start):
            continue
        country = str(row.country)
        if country not in t[COUNTRY].values:
            continue
        for c in str(row.commodity).split(";"):
            c = c.strip()
            if c not in t[COMMODITY].values:
                continue
            for y in inp.years:
                in_force = start.year <= y and (end is None or pd.isna(end) or end.year >= y)
                if in_force:
                    cur = float(t.loc[c, country, y])
                    t.loc[c, country, y] = max(cur, factor)
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
                catalog: Catalog | None = None) -> dict[str, xr.Dataset]:
    """Several methods on one set of input arrays (built once): method → Dataset."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method {bad[0]!r}; expected one of {', '.join(METHODS)}")
    cat = catalog or Catalog(data)
    importers = parse_importers(importer, groups_file)
    years = [int(year)] if year is not None else [default_year(cat, stage)]
    inp = _inputs(cat, importers, years, stage, commodities)
    prm = load_params(params)
    return {m: _run_method(m, cat, inp, prm, data) for m in methods}


def _run_method(method: str, cat: Catalog, inp: Inputs, prm: dict, data) -> xr.Dataset:
    if method == "geopolrisk":
        ds = geopolrisk(inp)
    elif method == "eu-sr":
        comm = inp.production[COMMODITY].values
        ds = eu_supply_risk(inp, t=export_restriction_t(cat, inp, prm),
                            eol_rir=_per_commodity(prm["eu_sr"]["eol_rir"], comm),
                            substitution=_per_commodity(prm["eu_sr"]["substitution_index"], comm),
                            missing_scaled=float(prm["eu_sr"]["missing_wgi_scaled"]["default"]))
    elif method == "usgs":
        comm = inp.production[COMMODITY].values
        ds = usgs_supply_risk(inp, ev=_per_commodity(prm["usgs"]["economic_vulnerability"], comm),
                              published_nir=_published_nir(cat, inp))
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


def priorities(importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
               data: str | Path | None = None, params: str | Path | None = None,
               groups_file: str | Path | None = None, allies: str = "msp",
               catalog: Catalog | None = None) -> tuple[pd.DataFrame, dict]:
    """Priority list per importer: methods combined, with thresholds and reasons.

    Returns
    -------
    (DataFrame, dict)
        One row per importer × commodity (ranked), and metadata (thresholds, year, sources, notes).
    """
    ranked, meta, _ = priorities_with_assessments(importer, year, data, params, groups_file, allies, catalog)
    return ranked, meta


def priorities_with_assessments(importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
                                data: str | Path | None = None, params: str | Path | None = None,
                                groups_file: str | Path | None = None, allies: str = "msp",
                                catalog: Catalog | None = None
                                ) -> tuple[pd.DataFrame, dict, dict[str, xr.Dataset]]:
    """:func:`priorities` plus the method Datasets it combined (so callers need not run them again)."""
    cat = catalog or Catalog(data)
    prm = load_params(params)
    importers = parse_importers(importer, groups_file)
    y = int(year) if year is not None else default_year(cat, "mine")
    kw = {"importer": [i.label for i in importers], "year": y, "stage": "mine", "data": None, "params": params,
              "groups_file": groups_file, "catalog": cat}
    runs = assess_many(["geopolrisk", "eu-sr", "usgs", "hhi"], **kw)
    gpr, eu, us = (tidy(runs[m]) for m in ("geopolrisk", "eu-sr", "usgs"))
    conc_ds = runs["hhi"]
    pick = {"geopolrisk_score": (gpr, "score"), "eu_sr": (eu, "supply_risk"), "usgs_sr": (us, "supply_risk"),
            "gpr_import_risk": (gpr, "import_risk"), "import_reliance": (eu, "import_reliance")}
    base = None
    for col, (df, ind) in pick.items():
        part = df[df["indicator"] == ind][["commodity", "importer", "value"]].rename(columns={"value": col})
        base = part if base is None else base.merge(part, on=["commodity", "importer"], how="outer")
    base["year"] = y
    # Mining concentration (USGS production).
    prod = cat.table("production")
    pm = prod[(prod["stage"] == "mine") & (prod["year"] == y) & (prod["row_type"] != "total")]
    pm = pm[pm["commodity"].map(conc_ds.attrs["basis"]).astype(str) == pm["basis"].astype(str)]
    s_total = pm.groupby("commodity")["value"].transform("sum")
    pmn = pm.assign(share=pm["value"] / s_total.where(s_total > 0))
    pmn = pmn[pmn["row_type"] == "country"].sort_values(["commodity", "share", "country"],
                                                         ascending=[True, False, True])
    top_mine = pmn.drop_duplicates("commodity")[["commodity", "country", "share"]].rename(
        columns={"country": "top_mine_supplier", "share": "top_mine_share"})
    base = base.merge(top_mine, on="commodity", how="left")
    base = base.merge(conc_ds["hhi"].sel(year=y).to_dataframe(name="hhi_mine").reset_index()[
        ["commodity", "hhi_mine"]], on="commodity", how="left")
    # Refining concentration from the cited processing-shares table (latest year <= y, no projections).
    try:
        ps = cat.table("processing_shares")
    except CritminError:  # a dataset without curated tables
        ps = pd.DataFrame(columns=["commodity", "stage_id", "country", "year", "share", "basis"])
    ref = ps[(ps.get("stage_id") == "refine") & (pd.to_numeric(ps["year"], errors="coerce") <= y)
             & (ps["country"] != "ROW")].copy()
    ref["year"] = pd.to_numeric(ref["year"], errors="coerce")
    ref["share"] = pd.to_numeric(ref["share"], errors="coerce")
    ref = ref.sort_values(["commodity", "year", "share"], ascending=[True, False, False])
    top_ref = ref.drop_duplicates("commodity")[["commodity", "country", "share", "year", "basis"]].rename(
        columns={"country": "top_refine_supplier", "share": "top_refine_share", "year": "top_refine_year",
                 "basis": "top_refine_basis"})
    base = base.merge(top_ref, on="commodity", how="left")
    # Import partners by value, all traded forms of the commodity, from outside the importer.
    trade = cat.table("trade")
    ty = y if y in set(trade["year"]) else int(trade["year"].max())
    rows = []
    for imp in importers:
        t = trade[(trade["year"] == ty) & trade["importer"].isin(imp.members) & ~trade["exporter"].isin(imp.members)]
        agg = t.groupby(["commodity", "exporter"], observed=True)["value_usd"].sum().reset_index()
        top = _top(agg, ["commodity"], "exporter", "value_usd").assign(importer=imp.label)
        rows.append(top)
    top_imp = pd.concat(rows, ignore_index=True).rename(columns={"exporter": "top_import_partner",
                                                                 "share": "top_import_share"})
    base = base.merge(top_imp, on=["commodity", "importer"], how="left")
    base["import_year"] = ty
    allied = set(groups(groups_file)[allies.lower()]["members"]) if allies.lower() in groups(groups_file) else set(
        parse_importers(allies)[0].members)
    from critmin.methods.priorities import combine

    pp = prm["priorities"]
    ranked = combine(base, eu_threshold=float(pp["eu_sr_threshold"]),
                     share_threshold=float(pp["single_supplier_share_threshold"]), allies=allied)
    meta = {"year": y, "import_year": ty, "thresholds": {"eu_sr": pp["eu_sr_threshold"],
                                                         "single_supplier_share": pp["single_supplier_share_threshold"]},
            "allies": allies, "rule": pp["reason"], "sources": sorted(set(conc_ds.attrs["sources"])),
            "notes": conc_ds.attrs.get("notes", [])}
    return ranked, meta, runs


def stage_vulnerabilities(cat: Catalog, year: int, allies: set[str], commodities: list[str] | None = None
                          ) -> pd.DataFrame:
    """Who controls each stage: top supplier, its share, allied share and HHI per commodity × stage.

    Mining, refining and metal come from USGS production where it reports the stage (shares of country rows
    plus the residual), otherwise from the cited processing-shares table (latest year <= ``year``, no
    projections; one basis per commodity and stage). Returns one row per commodity × stage with ``source``.
    """
    rows = []
    prod = cat.table("production")
    prod = prod[(prod["year"] == year) & (prod["row_type"] != "total")]
    for (c, st), grp in prod.groupby(["commodity", "stage"], observed=True):
        basis = grp["basis"].value_counts().index[0]
        g = grp[grp["basis"] == basis]
        rows.append(_stage_row(c, st, year, basis, g["country"], g["value"], g["row_type"] == "residual",
                               allies, ";".join(sorted(set(g["source"].astype(str))))))
    done = {(r["commodity"], r["stage"]) for r in rows}
    try:
        ps = cat.table("processing_shares")
    except CritminError:
        ps = pd.DataFrame(columns=["commodity", "stage_id", "country", "year", "share", "basis", "source"])
    ps = ps.assign(year=pd.to_numeric(ps["year"], errors="coerce"), share=pd.to_numeric(ps["share"], errors="coerce"))
    ps = ps[(ps["year"] <= year) & ps["stage_id"].isin(STAGES)]
    for (c, st), grp in ps.groupby(["commodity", "stage_id"], observed=True):
        if (c, st) in done:
            continue
        latest = grp[grp["year"] == grp["year"].max()]
        basis = latest["basis"].value_counts().index[0]
        g = latest[latest["basis"] == basis]
        rows.append(_stage_row(c, st, int(g["year"].iloc[0]), basis, g["country"], g["share"],
                               g["country"] == "ROW", allies, "processing_shares: " + "; ".join(
                                   sorted(set(g["citation"].astype(str)))) if "citation" in g else "processing_shares",
                               shares_given=True))
    out = pd.DataFrame(rows)
    if commodities is not None and len(out):
        out = out[out["commodity"].isin(commodities)]
    order = {s: i for i, s in enumerate(STAGES)}
    return out.sort_values(["commodity", "stage"], key=lambda s: s.map(order) if s.name == "stage" else s,
                           kind="stable").reset_index(drop=True)


def _stage_row(commodity, stage, year, basis, countries, values, residual, allies, source, *,
               shares_given: bool = False) -> dict:
    values = pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy(float)
    countries = countries.astype(str).to_numpy()
    residual = residual.to_numpy(bool)
    # Published shares are used as published (a table listing only "China > 95 %" must not become 100 %).
    total = max(values.sum(), 1.0) if shares_given else values.sum()
    share = values / total if total > 0 else np.full_like(values, np.nan)
    named = ~residual
    top = int(np.argmax(np.where(named, share, -1.0))) if named.any() else None
    allied = np.isin(countries, list(allies)) & named
    return {"commodity": commodity, "stage": stage, "year": int(year), "basis": basis,
            "top_supplier": countries[top] if top is not None else "",
            "top_share": float(share[top]) if top is not None else np.nan,
            "allied_share": float(share[allied].sum()) if total > 0 else np.nan,
            "hhi": float((share[named] ** 2).sum()) if total > 0 else np.nan,
            "countries_reported": int(named.sum()), "source": source}

"""The priority engine behind ``critmin priorities`` and the brief: stages, reliance, controls and methods
combined per importer × commodity, with reasons (no files written)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from critmin.constants import STAGES
from critmin.errors import ConfigError, CritminError
from critmin.importers import Importer, groups, parse_importers
from critmin.methods.registry import load_params
from critmin.reference.catalog import Catalog
from critmin.workflows.assess import (
    DEFAULT_IMPORTERS,
    _optional,
    assess_many,
)


def priorities(importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
               data: str | Path | None = None, params: str | Path | None = None,
               groups_file: str | Path | None = None, allies: str = "msp",
               catalog: Catalog | None = None, as_of: dt.date | str | None = None) -> tuple[pd.DataFrame, dict]:
    """Priority list per importer: stages, reliance, controls and methods combined, with reasons.

    Returns
    -------
    (DataFrame, dict)
        One row per importer × commodity (ranked; columns in the README, "Priority minerals"), and
        metadata (years, as-of date, thresholds, sources, notes).
    """
    res = priority_engine(importer, year, data, params, groups_file, allies, catalog, as_of)
    return res.table, res.meta


def priorities_with_assessments(importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
                                data: str | Path | None = None, params: str | Path | None = None,
                                groups_file: str | Path | None = None, allies: str = "msp",
                                catalog: Catalog | None = None, as_of: dt.date | str | None = None
                                ) -> tuple[pd.DataFrame, dict, dict[str, xr.Dataset]]:
    """:func:`priorities` plus the method Datasets per stage it combined (``"<method>/<stage>"`` keys)."""
    res = priority_engine(importer, year, data, params, groups_file, allies, catalog, as_of)
    return res.table, res.meta, res.runs


@dataclass
class PriorityResult:
    """Everything the priority engine computed (one consistent set of inputs)."""

    table: pd.DataFrame          # ranked, one row per importer × commodity
    meta: dict                   # years, as-of date, thresholds, rule, sources, notes
    stages: pd.DataFrame         # per importer × commodity × stage indicators
    shares: pd.DataFrame         # supplier shares per commodity × stage (the stage table's input)
    reliance: pd.DataFrame       # per importer × commodity reliance and partners
    measures: pd.DataFrame       # export-control status on the as-of date
    controls: pd.DataFrame       # measures binding an importer's stage (the rule's 'controls' hits)
    runs: dict[str, xr.Dataset]  # "<method>/<stage>" → Dataset


def allied_members(allies: str, groups_file: str | Path | None = None) -> set[str]:
    """ISO3 members of the allied group (a named group, an ISO3 code or a bloc)."""
    named = groups(groups_file)
    if allies.lower() in named:
        return set(named[allies.lower()]["members"])
    try:
        return set(parse_importers(allies, groups_file)[0].members)
    except ConfigError as exc:
        raise ConfigError(f"--allies {allies!r}: {exc}") from None


def parse_as_of(value: dt.date | str | None, year: int | None = None) -> dt.date:
    """``--as-of``: an ISO date ``YYYY-MM-DD``; by default today, or 31 December of ``year`` when a data year
    is asked for (a past year is judged with the measures of its own time)."""
    if value is None:
        return dt.date(int(year), 12, 31) if year is not None else dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"--as-of {value!r}: expected a date YYYY-MM-DD, e.g. 2026-12-04") from None


def _read_mapping(name: str) -> pd.DataFrame:
    from importlib import resources

    text = resources.files("critmin.reference").joinpath(f"mappings/{name}").read_text("utf-8")
    import io

    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def data_years(cat: Catalog, year: int | None) -> tuple[int, int, list[str]]:
    """(production year, trade year, notes): defaults are the latest each source has; ``year`` is checked."""
    prod = cat.table("production")
    trade = cat.table("trade")
    py_all = sorted(set(prod["year"].astype(int)))
    ty_all = sorted(set(trade.loc[trade["quantity"].notna(), "year"].astype(int))) if len(trade) else []
    if not py_all:
        raise ConfigError("no production data")
    if year is None:
        py = py_all[-1]
    else:
        py = int(year)
        if not py_all[0] <= py <= py_all[-1]:
            raise ConfigError(f"--year {py}: production data cover {py_all[0]}-{py_all[-1]}"
                              + (f", trade {ty_all[0]}-{ty_all[-1]}" if ty_all else ""))
    earlier = [y for y in ty_all if y <= py]
    ty = earlier[-1] if earlier else (ty_all[0] if ty_all else py)
    notes = [] if ty == py else [f"trade year {ty}: the latest with bilateral quantities <= {py}"]
    return py, ty, notes


def _wgi_scaled(gov: pd.DataFrame, year: int) -> tuple[pd.Series, int]:
    from critmin.constants import WGI_INDICATORS

    years = sorted(y for y in set(gov["year"].astype(int)) if y <= year) or sorted(set(gov["year"].astype(int)))
    gy = years[-1]
    g = gov[(gov["year"] == gy) & gov["indicator"].isin(WGI_INDICATORS)]
    mean = g.groupby("country")["value"].mean()
    return ((2.5 - mean) * 2.0).clip(0.0, 10.0), gy


def _t_factors(eu_supply: pd.DataFrame | None, measures: pd.DataFrame, tparams: dict, members: set[str]
               ) -> pd.DataFrame:
    """Export-restriction factor per commodity × stage × country for one importer: the EU 2023 global t
    where the EU assessed the stage, raised to critmin's per-measure factor for every restriction in force
    on the as-of date that targets all destinations or one of ``members``."""
    parts = []
    if eu_supply is not None and len(eu_supply):
        e = eu_supply[(eu_supply["scope"] == "global") & eu_supply["commodity"].astype(str).ne("")]
        parts.append(e[["commodity", "stage", "country", "t"]].astype({"t": float}))
    m = measures[(measures["status"] == "in_force") & measures["restricts"].astype(bool)]
    if len(m):
        tgt = m["target_iso3"].astype(str)
        m = m[(tgt == "all") | tgt.str.split(";").map(lambda ts: bool(set(ts) & members))]
        m = m.assign(stage=m["stages"].fillna("").astype(str).str.split(";")).explode("stage")
        m = m[m["stage"] != ""]
        m = m.assign(t=m["measure"].astype(str).map(lambda x: float(tparams.get(x, tparams["none"]))))
        parts.append(m[["commodity", "stage", "country", "t"]])
    if not parts:
        return pd.DataFrame(columns=["commodity", "stage", "country", "t"])
    t = pd.concat(parts, ignore_index=True)
    return t.groupby(["commodity", "stage", "country"], as_index=False)["t"].max()


def _withheld(us_salient: pd.DataFrame | None, year: int) -> dict[str, set[str]]:
    """Commodities whose US production USGS withholds ("W") in the latest year <= ``year``: the USA produces
    them, but no tonnage is published (world tables then omit the US row)."""
    if us_salient is None or not len(us_salient):
        return {}
    p = us_salient[(us_salient["statistic"] == "production") & (us_salient["year"] <= year)]
    p = p[p["year"] == p.groupby("commodity")["year"].transform("max")]
    # primary production only: a withheld secondary (scrap) or by-product line says nothing of primary supply
    primary = ~p["detail"].astype(str).str.contains("secondary|byproduct|by-product", case=False)
    w = p[p["code"].astype(str).str.strip().eq("W") & primary]
    return {str(c): {"USA"} for c in set(w["commodity"])}


def _primary(prod: pd.DataFrame, year: int) -> pd.DataFrame:
    """Domestic primary production: the first stage USGS reports per commodity, country rows (the same year
    and basis choice as the stage table, :func:`critmin.methods.supply.stage_shares`)."""
    from critmin.methods.supply import _usgs_block

    p = prod[prod["row_type"] != "total"]
    order = {s: i for i, s in enumerate(STAGES)}
    first = p.assign(o=p["stage"].astype(str).map(order)).groupby("commodity", observed=True)["o"].min()
    p = p[p["stage"].astype(str).map(order) == p["commodity"].map(first)]
    blk = _usgs_block(p, year)
    chosen = blk[["commodity", "stage", "year", "basis"]].drop_duplicates()
    rows = p[p["row_type"] == "country"].assign(commodity=lambda d: d["commodity"].astype(str),
                                                stage=lambda d: d["stage"].astype(str),
                                                basis=lambda d: d["basis"].astype(str))
    rows = rows.merge(chosen, on=["commodity", "stage", "year", "basis"])
    out = rows.groupby(["commodity", "country", "stage", "basis"], as_index=False)["value"].sum()
    out["content"] = out["basis"].str.lower().str.contains("content|metal|refined|primary")
    return out[["commodity", "country", "value", "content", "stage"]]


def _method_table(cat: Catalog, importers: list[Importer], ty: int, params, groups_file, stages_present: set[str],
                  rel: pd.DataFrame | None = None, as_of: dt.date | None = None
                  ) -> tuple[pd.DataFrame, dict[str, xr.Dataset], list[str]]:
    nir = None
    if rel is not None and len(rel):
        point = rel["reliance"].where(rel["reliance"].notna(), (rel["reliance_low"] + rel["reliance_high"]) / 2)
        nir = (rel.assign(value=point, year=ty).set_index(["commodity", "importer", "year"])["value"]
               .to_xarray())
    frames, runs, notes = [], {}, []
    pick = {"geopolrisk": ("score", "geopolrisk_score"), "eu-sr": ("supply_risk", "eu_sr"),
            "usgs": ("supply_risk", "usgs_sr")}
    for stage in (s for s in STAGES if s in stages_present):
        try:
            res = assess_many(list(pick), [i.label for i in importers], ty, stage, None, params, groups_file,
                              catalog=cat, reliance=nir, as_of=as_of)
        except (ConfigError, CritminError) as exc:
            notes.append(f"methods at stage {stage}: {exc}")
            continue
        for m, ds in res.items():
            runs[f"{m}/{stage}"] = ds
            var, col = pick[m]
            df = ds[var].sel(year=ty).to_dataframe(name=col).reset_index()[["commodity", "importer", col]]
            frames.append(df.assign(stage=stage).set_index(["importer", "commodity", "stage"]))
    if not frames:
        return pd.DataFrame(columns=["importer", "commodity", "stage", *[c for _, c in pick.values()]]), runs, notes
    out = pd.concat(frames, axis=0).groupby(level=[0, 1, 2]).first().reset_index()
    return out, runs, notes


def _eu_comparison(r, prm: dict) -> str:
    """Words on the EU's published 2023 SR beside critmin's EU-style SR for the same commodity."""
    if pd.isna(r.eu_published_sr):
        return ""
    text = (f"EU {int(r.eu_published_year)} published SR {r.eu_published_sr:.1f}, EI {r.eu_published_ei:.1f} "
            f"({r.eu_published_material})")
    if pd.isna(r.eu_sr):
        return text + "; critmin's EU-style SR not computable here (no production tonnes or trade at a stage)"
    eol = prm["eu_sr"]["eol_rir"]["default"]
    si = prm["eu_sr"]["substitution_index"]["default"]
    return (f"{text}; critmin EU-style SR {r.eu_sr:.1f} at {r.methods_stage} for {r.importer}: critmin uses "
            f"EoL-RIR {eol:g} and SI {si:g} (the EU, material values), {r.importer}'s own sourcing and reliance, "
            f"the latest production shares (the EU: 2016-2020 averages) and the export controls in force on the date")


def priority_engine(importer: str | list[str] = DEFAULT_IMPORTERS, year: int | None = None,
                    data: str | Path | None = None, params: str | Path | None = None,
                    groups_file: str | Path | None = None, allies: str = "msp",
                    catalog: Catalog | None = None, as_of: dt.date | str | None = None) -> PriorityResult:
    """The priority engine: every commodity with data at any stage or on the USGS 2025 list, per importer.

    Data flow: supplier shares per commodity × stage (:func:`critmin.methods.supply.stage_shares`) →
    export controls on ``as_of`` (:func:`critmin.methods.controls.measures_as_of`) → per-importer stage
    indicators with the export-restriction factor t → import reliance and partners from every traded
    form (:func:`critmin.methods.reliance.reliance_table`) → the three methods per stage (trade year) →
    rule, composite and reasons (:func:`critmin.methods.priorities.combine`).
    """
    from critmin.methods import controls, reliance, supply
    from critmin.methods.priorities import combine, control_hits

    cat = catalog or Catalog(data)
    prm = load_params(params)
    pp = prm["priorities"]
    day = parse_as_of(as_of, year)
    importers = parse_importers(importer, groups_file)
    allied = allied_members(allies, groups_file)
    py, ty, notes = data_years(cat, year)
    prod = cat.table("production")
    trade = cat.table("trade")
    eu_supply = _optional(cat, "eu_crm_supply")
    shares = supply.stage_shares(prod, _optional(cat, "processing_shares"), eu_supply, py)
    wgi, gy = _wgi_scaled(cat.table("governance"), py)
    if gy != py:
        notes.append(f"governance for {py}: WGI {gy} (latest available)")
    ec = _optional(cat, "export_controls")
    measures = controls.measures_as_of(ec, day) if ec is not None and len(ec) else pd.DataFrame(
        columns=list(controls.COLUMNS))
    tparams = prm["eu_sr"]["export_restriction_t"]
    inds = []
    cs = shares.groupby(["commodity", "stage"]).apply(
        lambda g: dict(zip(g["country"], g["share"], strict=True)), include_groups=False).rename("country_shares")
    for imp in importers:
        t = _t_factors(eu_supply, measures, tparams, set(imp.members))
        ind = supply.stage_indicators(shares, wgi, t, allied,
                                      missing_scaled=float(prm["eu_sr"]["missing_wgi_scaled"]["default"]))
        inds.append(ind.merge(cs.reset_index(), on=["commodity", "stage"], how="left").assign(importer=imp.label))
    ind_all = pd.concat(inds, ignore_index=True) if inds else pd.DataFrame()
    # the universe: supply data at any stage, traded forms, the USGS 2025 list
    crit = _optional(cat, "critical_lists")
    crit_ids = set(crit["commodity"].astype(str)) if crit is not None else set()
    traded = set(trade.loc[trade["year"] == ty, "commodity"].astype(str)) - set(reliance.GROUP_COMMODITIES)
    traded |= {m for g in reliance.GROUP_COMMODITIES.values() for m in g} & crit_ids
    ids = sorted(set(shares["commodity"]) | crit_ids | traded)
    have = set(shares["commodity"])
    uni = pd.DataFrame([{"importer": i.label, "commodity": c, "usgs_critical_2025": c in crit_ids,
                         "no_data_reason": "" if c in have else
                         ("no supply shares by country at any stage in the bundled dataset (no USGS MCS world "
                          "production table mapped for it, no cited processing shares, not in the EU 2023 assessment)"
                          + ("; on the USGS 2025 critical-minerals list" if c in crit_ids else ""))}
                        for i in importers for c in ids])
    factors = _read_mapping("content_factors.csv")
    factors["factor"] = factors["factor"].astype(float)
    gaps = _read_mapping("trade_gaps.csv")
    sal = _optional(cat, "us_salient")
    srcs = _optional(cat, "import_sources")
    rel = reliance.reliance_table(
        trade[trade["year"] == ty], factors, gaps, _primary(prod, py), importers, ids, withheld=_withheld(sal, py),
        published=reliance.published_reliance(sal, py) if sal is not None else None,
        us_partners=reliance.published_partners(srcs) if srcs is not None else None)
    rel = reliance.inherit_parent(rel, _read_mapping("commodity_parents.csv"))
    methods, runs, mnotes = _method_table(cat, importers, ty, params, groups_file, set(prod["stage"]), rel, day)
    notes += mnotes
    members = {i.label: set(i.members) for i in importers}
    hits = control_hits(ind_all, measures, members, allied, float(pp["control_share_threshold"]))
    table = combine(uni, ind_all, rel, hits, methods, share_threshold=float(pp["single_supplier_share_threshold"]),
                    impact_weight=float(pp["impact_weight"]["default"]), allies=allied)
    scores = _optional(cat, "eu_crm_scores")
    if scores is not None and len(scores):
        latest = scores[scores["year"] == scores["year"].max()]
        s23 = latest[latest["commodity"].astype(str).ne("")].assign(eu_material=lambda d: d["material"])
        grp = _read_mapping("eu_groups.csv").merge(latest.drop(columns=["commodity"]), on="material")
        grp = grp[~grp["commodity"].isin(set(s23["commodity"]))].assign(eu_material=lambda d: d["material"])
        s23 = pd.concat([s23, grp], ignore_index=True).sort_values("sr", ascending=False).drop_duplicates("commodity")
        table = table.merge(s23[["commodity", "sr", "ei", "year", "eu_material"]].rename(
            columns={"sr": "eu_published_sr", "ei": "eu_published_ei", "year": "eu_published_year",
                     "eu_material": "eu_published_material"}), on="commodity", how="left")
    if "eu_published_sr" in table:
        table["eu_comparison"] = [_eu_comparison(r, prm) for r in table.itertuples(index=False)]
    table["year"] = py
    table["trade_year"] = ty
    table["as_of"] = day.isoformat()
    srcs_used = sorted(set(shares["source"].astype(str)) | {"baci-critical-minerals", "wgi"}
                       | ({"baci-hs17-2024"} if (trade["source"] == "baci-hs17-2024").any() else set())
                       | ({"usgs-mcs-2026"} if sal is not None else set())
                       | ({"eu-crm"} if eu_supply is not None else set())
                       | ({"curated-export_controls", "critmin-addenda"} if ec is not None else set()))
    meta = {"year": py, "import_year": ty, "trade_year": ty, "as_of": day.isoformat(), "governance_year": gy,
            "thresholds": {"single_supplier_share": pp["single_supplier_share_threshold"],
                           "control_share": pp["control_share_threshold"], "eu_sr": pp["eu_sr_threshold"]},
            "impact_weight": pp["impact_weight"]["default"], "allies": allies, "rule": pp["reason"],
            "sources": srcs_used, "notes": notes}
    return PriorityResult(table=table, meta=meta, stages=ind_all.drop(columns=["country_shares"], errors="ignore"),
                          shares=shares, reliance=rel, measures=measures, controls=hits, runs=runs)


def stage_vulnerabilities(cat: Catalog, year: int, allies: set[str], commodities: list[str] | None = None
                          ) -> pd.DataFrame:
    """Who controls each stage: top supplier, its share, allied share and HHI per commodity × stage.

    The same supplier-share table as the priority engine (:func:`critmin.methods.supply.stage_shares`:
    USGS production, else the cited processing shares, else the EU 2023 assessment's global shares).
    """
    from critmin.methods import supply

    sh = supply.stage_shares(cat.table("production"), _optional(cat, "processing_shares"),
                             _optional(cat, "eu_crm_supply"), year)
    if commodities is not None:
        sh = sh[sh["commodity"].isin(commodities)]
    ind = supply.stage_indicators(sh, pd.Series(dtype=float), None, allies)
    if ind.empty:
        return ind
    order = {s: i for i, s in enumerate(STAGES)}
    ind = ind.rename(columns={"origin": "data"})
    ind = ind[["commodity", "stage", "year", "basis", "top_supplier", "top_share", "allied_share", "allied_share_low",
               "allied_share_high", "hhi", "countries_reported", "unallocated_share", "data", "source"]]
    return ind.sort_values(["commodity", "stage"], key=lambda s: s.map(order) if s.name == "stage" else s,
                           kind="stable").reset_index(drop=True)

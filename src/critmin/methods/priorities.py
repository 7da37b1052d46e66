"""Priority minerals: the rule, the composite and the reason, per importer × commodity.

Pure functions over the per-stage indicators (:mod:`critmin.methods.supply`), the reliance table
(:mod:`critmin.methods.reliance`) and the export-control status (:mod:`critmin.methods.controls`).
Every threshold and weight is declared in ``params.yml`` (``priorities``) with its reason; the README
section "Priority minerals" defines every column.

Rule: a commodity is a priority for an importer that is not a net exporter of it when

* **stage**: one supplier outside the allied group holds ≥ ``single_supplier_share_threshold`` of any
  stage (mine, refine, metal, component), or
* **imports**: net import reliance (its lower bound) ≥ that threshold and one non-allied partner supplies
  ≥ that share of the imports, or
* **controls**: an export restriction in force on the assessment date (``--as-of``), issued by a
  non-allied country that holds ≥ ``control_share_threshold`` of a stage the measure covers, applies to
  all destinations or to one of the importer's members.

Composite (ranking, 0–1, defined for every row that has supply data):
``supply_risk × exposure × (1 − w + w · impact)`` with supply_risk the largest HHI_WGI,t of any stage
divided by 10 (EU scale: WGI 0 best … 10 worst, t the export-restriction factor), exposure the net
import reliance (the midpoint of its bounds; 1 where unknown, flagged), impact the percentile of the
import value of all traded forms among the importer's commodities (0.5 where unknown) and w
``impact_weight``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from critmin.reference.countries import country_name

STAGE_WORDS = {"mine": "mining", "refine": "refining", "metal": "metal", "component": "components"}


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def percentile_rank(values: pd.Series) -> pd.Series:
    """Percentile rank in (0, 1]; NaN stays NaN."""
    return values.rank(pct=True, method="average")


def riskiest_stage(ind: pd.DataFrame) -> pd.DataFrame:
    """Per importer × commodity, the stage with the largest HHI_WGI,t (ties: the more concentrated)."""
    order = ind.sort_values(["importer", "commodity", "hhi_wgi_t", "top_non_allied_share"],
                            ascending=[True, True, False, False])
    return order.drop_duplicates(["importer", "commodity"])


def control_hits(ind: pd.DataFrame, measures: pd.DataFrame, members: dict[str, set[str]], allies: set[str],
                 share_threshold: float) -> pd.DataFrame:
    """Measures in force that bind a stage of each importer's supply: ``importer, commodity, stage, label``.

    A hit needs: status in force, a restriction, issuer outside ``allies``, target all or a member, the
    measure covering the stage and its issuer holding ≥ ``share_threshold`` of that stage.
    """
    cols = ["importer", "commodity", "stage", "event_id", "measure", "label", "issuer_share"]
    m = measures[(measures["status"] == "in_force") & measures["restricts"].astype(bool)
                 & ~measures["country"].isin(allies)]
    if m.empty or ind.empty:
        return pd.DataFrame(columns=cols)
    m = m.assign(stage=m["stages"].fillna("").astype(str).str.split(";")).explode("stage")
    m = m[m["stage"] != ""]
    out = []
    for imp, mem in members.items():
        targeted = m[(m["target_iso3"].astype(str) == "all")
                     | m["target_iso3"].astype(str).str.split(";").map(lambda ts, mem=mem: bool(set(ts) & mem))]
        if targeted.empty:
            continue
        shares = ind[ind["importer"] == imp][["commodity", "stage", "country_shares"]]
        j = targeted.merge(shares, on=["commodity", "stage"])
        for r in j.itertuples(index=False):
            s = r.country_shares.get(r.country, 0.0)
            if s >= share_threshold:
                out.append({"importer": imp, "commodity": r.commodity, "stage": r.stage, "event_id": r.event_id,
                            "measure": r.measure, "label": r.label, "issuer_share": s})
    return pd.DataFrame(out, columns=cols)


def combine(universe: pd.DataFrame, ind: pd.DataFrame, rel: pd.DataFrame, hits: pd.DataFrame, methods: pd.DataFrame,
            *, share_threshold: float, impact_weight: float, allies: set[str]) -> pd.DataFrame:
    """Ranked priority table, one row per importer × commodity of ``universe``.

    Parameters
    ----------
    universe : ``importer, commodity, usgs_critical_2025, no_data_reason``
    ind : per-stage indicators per importer (``importer, commodity, stage, hhi_wgi_t, top_non_allied,
        top_non_allied_share, top_supplier, top_share, allied_share, year, basis, origin, estimated``)
    rel : :func:`critmin.methods.reliance.reliance_table`
    hits : :func:`control_hits`
    methods : ``importer, commodity, stage, geopolrisk_score, eu_sr, usgs_sr`` (per stage where computed)
    """
    risky = riskiest_stage(ind)
    stage_flag = ind[ind["top_non_allied_share"] >= share_threshold]
    stage_flag = stage_flag.sort_values("top_non_allied_share", ascending=False).drop_duplicates(
        ["importer", "commodity"])
    base = universe.merge(rel, on=["importer", "commodity"], how="left")
    base = base.merge(risky[["importer", "commodity", "stage", "hhi_wgi_t", "top_supplier", "top_share",
                             "allied_share", "year", "basis", "origin", "estimated", "year_note"]].rename(
        columns={"stage": "risk_stage", "top_supplier": "risk_stage_supplier", "top_share": "risk_stage_share",
                 "allied_share": "risk_stage_allied_share", "year": "supply_year", "basis": "risk_stage_basis",
                 "origin": "supply_origin", "estimated": "supply_estimated", "year_note": "supply_year_note"}),
        on=["importer", "commodity"], how="left")
    base = base.merge(stage_flag[["importer", "commodity", "stage", "top_non_allied", "top_non_allied_share", "year",
                                  "origin", "estimated", "year_note"]].rename(
        columns={"stage": "flag_stage", "top_non_allied": "flag_supplier", "top_non_allied_share": "flag_share",
                 "year": "flag_year", "origin": "flag_origin", "estimated": "flag_estimated",
                 "year_note": "flag_year_note"}),
        on=["importer", "commodity"], how="left")
    hit1 = hits.sort_values("issuer_share", ascending=False).drop_duplicates(["importer", "commodity"])
    ctl = hits.groupby(["importer", "commodity"])["label"].apply(lambda s: "; ".join(dict.fromkeys(s))).rename(
        "controls_in_force").reset_index()
    base = base.merge(ctl, on=["importer", "commodity"], how="left").merge(
        hit1[["importer", "commodity", "stage"]].rename(columns={"stage": "control_stage"}),
        on=["importer", "commodity"], how="left")
    # methods at the riskiest stage where computed there, else the largest over stages
    if len(methods):
        mm = methods.merge(base[["importer", "commodity", "risk_stage"]], on=["importer", "commodity"])
        mm["at_risk"] = mm["stage"] == mm["risk_stage"]
        mm["has"] = mm[["geopolrisk_score", "eu_sr", "usgs_sr"]].notna().any(axis=1)
        mm = mm[mm["has"]].sort_values(["importer", "commodity", "at_risk", "usgs_sr"], ascending=[True, True, False, False])
        mm = mm.drop_duplicates(["importer", "commodity"])[["importer", "commodity", "stage", "geopolrisk_score",
                                                            "eu_sr", "usgs_sr"]].rename(columns={"stage": "methods_stage"})
        base = base.merge(mm, on=["importer", "commodity"], how="left")
    else:
        for c in ("methods_stage", "geopolrisk_score", "eu_sr", "usgs_sr"):
            base[c] = np.nan
    out = []
    for _imp, g in base.groupby("importer", sort=False):
        g = g.copy()
        g["supply_risk"] = (g["hhi_wgi_t"] / 10.0).clip(upper=1.0)
        mid = (g["reliance_low"] + g["reliance_high"]) / 2
        g["exposure"] = g["reliance"].where(g["reliance"].notna(), mid)
        g["exposure_assumed"] = g["exposure"].isna()
        g["exposure"] = g["exposure"].fillna(1.0)
        g["impact"] = percentile_rank(g["import_value_usd"]).fillna(0.5)
        g["composite"] = g["supply_risk"] * g["exposure"] * (1 - impact_weight + impact_weight * g["impact"])
        net_exporter = g["reliance_high"] == 0
        f_stage = g["flag_share"].notna()
        f_imp = ((g["reliance_low"] >= share_threshold) & (g["top_import_share"] >= share_threshold)
                 & ~g["top_import_partner"].isin(allies) & g["top_import_partner"].astype(str).ne(""))
        f_ctl = g["controls_in_force"].notna()
        g["rule_stage"] = f_stage
        g["rule_imports"] = f_imp.fillna(False)
        g["rule_controls"] = f_ctl
        g["net_exporter"] = net_exporter
        g["priority"] = (f_stage | g["rule_imports"] | f_ctl) & ~net_exporter
        g = g.sort_values(["priority", "composite", "commodity"], ascending=[False, False, True], na_position="last")
        g["rank"] = np.arange(1, len(g) + 1)
        g["reason"] = [_reason(r) for r in g.itertuples(index=False)]
        out.append(g)
    return pd.concat(out, ignore_index=True) if out else base


def _when(year, estimated, origin, note) -> str:
    est = "e" if bool(estimated) else ""
    extra = f"; {note}" if isinstance(note, str) and "not reported" in note else ""
    return f"({int(year)}{est}, {origin}{extra})"


def _reason(r) -> str:
    parts = []
    if isinstance(r.no_data_reason, str) and r.no_data_reason:
        parts.append(r.no_data_reason)
    if pd.notna(r.flag_share):
        parts.append(f"{STAGE_WORDS.get(r.flag_stage, r.flag_stage)}: {country_name(r.flag_supplier)} "
                     f"{_pct(r.flag_share)} {_when(r.flag_year, r.flag_estimated, r.flag_origin, r.flag_year_note)}")
    if pd.notna(r.risk_stage_share) and r.risk_stage != (r.flag_stage if pd.notna(r.flag_share) else None):
        parts.append(f"riskiest stage {STAGE_WORDS.get(r.risk_stage, r.risk_stage)}: "
                     f"{country_name(r.risk_stage_supplier)} {_pct(r.risk_stage_share)} "
                     f"{_when(r.supply_year, r.supply_estimated, r.supply_origin, r.supply_year_note)}")
    if isinstance(r.controls_in_force, str):
        parts.append(r.controls_in_force)
    if pd.notna(r.reliance):
        code = f"{r.reliance_code}, " if r.reliance_code else ""
        parts.append(f"import reliance {_pct(r.reliance)} ({code}{r.reliance_rule})")
    elif pd.notna(r.reliance_low) and r.reliance_low == r.reliance_high:
        parts.append(f"import reliance {_pct(r.reliance_low)} ({r.reliance_rule})")
    elif pd.notna(r.reliance_low):
        parts.append(f"import reliance {_pct(r.reliance_low)}–{_pct(r.reliance_high)} ({r.reliance_rule})")
    else:
        parts.append(f"import reliance unknown ({str(r.reliance_note).removeprefix('unknown: ')})")
    if isinstance(r.top_import_partner, str) and r.top_import_partner and pd.notna(r.top_import_share):
        text = f"{r.import_basis}: {country_name(r.top_import_partner)} {_pct(r.top_import_share)}"
        if isinstance(r.import_gaps, str) and r.import_gaps and "USGS" not in r.import_basis:
            text += f" (not in the data: {r.import_gaps})"
        parts.append(text)
    if bool(r.net_exporter):
        parts.append("net exporter: not a priority")
    return "; ".join(parts)

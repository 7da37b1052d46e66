"""Import reliance and import partners of an importer from every traded form of a commodity.

Pure functions over long tables (no IO). Definitions (README, "Priority minerals"):

* **Net import reliance** NIR = NI / (D + NI), on a contained-content basis: NI the net imports
  from outside the importer (imports − exports, every traded form whose content factor is published:
  ``mappings/content_factors.csv``), D the importer's domestic primary production (USGS MCS, the first
  stage USGS reports for the commodity, in content). NI ≤ 0 → 0 with code ``E`` (net exporter).
  Rules, first that applies:

  1. ``USGS``: a single importer USA with a published MCS figure (``us_salient``) → that figure, its
     code kept (``>50`` → 0.75 within 0.5–1, ``E`` → 0). The trade-based value is reported beside it.
  2. ``no domestic production``: USGS lists none of the importer's members among producers at the
     primary stage and the importer imports more of the commodity (all forms, by value) than it
     exports → 1 (all primary supply is imported in some form).
  3. ``trade``: every traded form carrying the flows has a content factor (≥ 95 % of import and of
     export value) and no significant form is missing from the data (``mappings/trade_gaps.csv``) →
     the computed NIR.
  4. ``members``: a bloc whose members' values are all known but whose consumption weights are not in
     the data → unknown, bounded by its members' values (a consumption-weighted mean lies between them).
  5. otherwise unknown (NaN), with the forms that are missing or lack a factor named.

* **Import partners**: shares of import value from outside the importer over every traded form
  (HS codes shared by several elements, such as HS 2017 811292, count for each of them: shares of
  partners, never tonnage). For the USA alone, USGS's published import sources (MCS 2026, 2021–24)
  are the reference, with the trade-based top partner beside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Trade codes that hold several elements: partner shares for each, never tonnage.
GROUP_COMMODITIES: dict[str, tuple[str, ...]] = {
    "gallium-germanium-group": ("gallium", "germanium", "hafnium", "indium", "niobium", "rhenium", "thallium"),
}
FORM_WORDS = {"mine": "ore", "refine": "compounds", "metal": "metal", "component": "products"}
COVERAGE = 0.95

COLUMNS = ["importer", "commodity", "reliance", "reliance_low", "reliance_high", "reliance_code", "reliance_rule",
           "reliance_note", "reliance_trade", "domestic_production_t", "import_value_usd", "import_value_shared_usd",
           "export_value_usd",
           "top_import_partner", "top_import_share", "import_basis", "trade_top_partner", "trade_top_share",
           "import_gaps"]


def expand_groups(trade: pd.DataFrame) -> pd.DataFrame:
    """Rows of group codes repeated for each element they hold, flagged ``group`` True."""
    t = trade.assign(group=False)
    parts = [t[~t["commodity"].isin(GROUP_COMMODITIES)]]
    for gid, members in GROUP_COMMODITIES.items():
        g = t[t["commodity"] == gid]
        if len(g):
            parts += [g.assign(commodity=m, group=True) for m in members]
    return pd.concat(parts, ignore_index=True)


def _forms(stages: pd.Series, group: pd.Series) -> str:
    order = list(FORM_WORDS)
    present = sorted(set(stages[~group].astype(str)), key=lambda s: order.index(s) if s in order else len(order))
    words = [FORM_WORDS.get(s, s) for s in present]
    if group.any():
        words.append("unwrought metal under a shared HS code")
    words = list(dict.fromkeys(words))
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def flows(trade: pd.DataFrame, factors: pd.DataFrame, members: set[str]) -> pd.DataFrame:
    """Per commodity: extra-bloc import/export value, contained content, factor coverage and forms."""
    t = trade.merge(factors[["nomenclature", "hs6", "factor"]], on=["nomenclature", "hs6"], how="left")
    t.loc[t["group"], "factor"] = np.nan
    imp = t[t["importer"].isin(members) & ~t["exporter"].isin(members)]
    exp = t[t["exporter"].isin(members) & ~t["importer"].isin(members)]

    def side(frame: pd.DataFrame, pre: str) -> pd.DataFrame:
        f = frame.assign(c=frame["quantity"] * frame["factor"],
                         vf=np.where(frame["factor"].notna() & frame["quantity"].notna(), frame["value_usd"], 0.0),
                         v_own=np.where(frame["group"], 0.0, frame["value_usd"]))
        return f.groupby("commodity").agg(**{f"{pre}_value": ("v_own", "sum"), f"{pre}_value_all": ("value_usd", "sum"),
                                             f"{pre}_content": ("c", "sum"), f"{pre}_value_factored": ("vf", "sum")})
    out = side(imp, "imp").join(side(exp, "exp"), how="outer").fillna(0.0)
    forms = pd.Series({c: _forms(g["stage"], g["group"]) for c, g in imp.groupby("commodity")}, dtype=object)
    out["forms"] = forms.reindex(out.index).fillna("") if len(out) else pd.Series(dtype=object)
    byp = imp.groupby(["commodity", "exporter"])["value_usd"].sum().reset_index()
    tot = byp.groupby("commodity")["value_usd"].transform("sum")
    byp = byp.assign(share=byp["value_usd"] / tot.where(tot > 0)).sort_values(
        ["commodity", "share", "exporter"], ascending=[True, False, True]).drop_duplicates("commodity")
    out = out.join(byp.set_index("commodity")[["exporter", "share"]].rename(
        columns={"exporter": "trade_top_partner", "share": "trade_top_share"}))
    return out


def published_reliance(us_salient: pd.DataFrame, year: int) -> pd.DataFrame:
    """USGS net import reliance for the US per commodity: the 'Total' line where given, else the largest line,
    for ``year`` or the latest earlier year. Columns commodity, value, low, high, code, detail, year (fractions)."""
    n = us_salient[(us_salient["statistic"] == "net_import_reliance") & (us_salient["year"] <= year)]
    n = n[n["value"].notna() | (n["code"].astype(str) == "E")]
    if n.empty:
        return pd.DataFrame(columns=["commodity", "value", "low", "high", "code", "detail", "year"])
    n = n[n["year"] == n.groupby("commodity")["year"].transform("max")]
    n = n.assign(total=n["detail"].astype(str).str.contains("Total", case=False),
                 v=n["value"].fillna(0.0))
    n = n.sort_values(["commodity", "total", "v"], ascending=[True, False, False]).drop_duplicates("commodity")
    code = n["code"].fillna("").astype(str)
    low = n["value_low"].where(n["value_low"].notna(), n["v"]) / 100.0
    high = n["value_high"].where(n["value_high"].notna(), n["v"]) / 100.0
    return pd.DataFrame({"commodity": n["commodity"].astype(str), "value": n["v"] / 100.0, "low": low.where(code != "E", 0.0),
                         "high": high.where(code != "E", 0.0), "code": code, "detail": n["detail"].astype(str),
                         "year": n["year"].astype(int)})


def published_partners(import_sources: pd.DataFrame) -> pd.DataFrame:
    """Top US import source per commodity from USGS: the 'Total'/'All' line where given, else a primary or
    refined form, else the first listed form that is not scrap."""
    s = import_sources[import_sources["partner"] != "ROW"].copy()
    if s.empty:
        return pd.DataFrame(columns=["commodity", "partner", "share", "detail", "period"])
    d = s["detail"].astype(str).str.lower()
    s["pref"] = np.select([d.str.contains("total") | d.str.startswith("all"),
                           d.str.contains("primary|refined|contained in principal"), d.str.contains("scrap")],
                          [0, 1, 3], default=2)
    s["order"] = np.arange(len(s))
    first = s.sort_values(["commodity", "pref", "order"]).drop_duplicates("commodity")[["commodity", "detail"]]
    s = s.merge(first, on=["commodity", "detail"])
    s = s.sort_values(["commodity", "share", "partner"], ascending=[True, False, True]).drop_duplicates("commodity")
    return s[["commodity", "partner", "share", "detail", "period"]]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def reliance_table(trade: pd.DataFrame, factors: pd.DataFrame, gaps: pd.DataFrame, primary: pd.DataFrame,
                   importers, commodities: list[str], *, published: pd.DataFrame | None = None,
                   us_partners: pd.DataFrame | None = None,
                   withheld: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """One row per importer × commodity (:data:`COLUMNS`).

    Parameters
    ----------
    trade : one year of the ``trade`` table (group codes not yet expanded)
    factors : ``nomenclature, hs6, factor`` (t of the commodity per t of product)
    gaps : ``commodity, form`` — significant forms not in the trade data
    primary : USGS domestic primary production, ``commodity, country, value, content`` (content: bool,
        the tonnes are contained element / metal), country rows only
    importers : :class:`critmin.importers.Importer` list
    published, us_partners : :func:`published_reliance` and :func:`published_partners` (USA)
    withheld : commodity → countries that produce it but whose tonnage the world table does not give (USGS
        "W": withheld to avoid disclosing company data); their domestic production D is unknown
    """
    withheld = withheld or {}
    year = int(trade["year"].max()) if len(trade) else 0
    tr = expand_groups(trade)
    gap_forms = gaps.groupby("commodity")["form"].apply(lambda s: "; ".join(x for x in s if x)).to_dict()
    pub = published.set_index("commodity") if published is not None and len(published) else None
    usp = us_partners.set_index("commodity") if us_partners is not None and len(us_partners) else None
    listed = primary.groupby("commodity")["country"].apply(set).to_dict()
    dom = {c: dict(zip(g["country"], g["value"], strict=True)) for c, g in primary.groupby("commodity")}
    content = primary.groupby("commodity")["content"].all().to_dict()
    rows: list[dict] = []
    single: dict[tuple[str, str], dict] = {}
    from critmin.importers import Importer

    labels = {i.label for i in importers}
    hidden = [Importer(m, (m,)) for i in importers if i.is_bloc for m in i.members if m not in labels]
    order = list(dict.fromkeys([*hidden, *[i for i in importers if not i.is_bloc], *[i for i in importers if i.is_bloc]]))
    for imp in order:
        members = set(imp.members)
        fl = flows(tr, factors, members)
        for c in commodities:
            f = fl.loc[c] if c in fl.index else None
            iv = float(f["imp_value_all"]) if f is not None else 0.0
            ev = float(f["exp_value_all"]) if f is not None else 0.0
            own_iv = float(f["imp_value"]) if f is not None else 0.0
            own_ev = float(f["exp_value"]) if f is not None else 0.0
            producers = listed.get(c, set())
            hidden = members & withheld.get(c, set())   # producers with a withheld tonnage: D unknown
            D = float(sum(v for k, v in dom.get(c, {}).items() if k in members))
            r = {"importer": imp.label, "commodity": c, "reliance": np.nan, "reliance_low": np.nan,
                 "reliance_high": np.nan, "reliance_code": "", "reliance_rule": "", "reliance_note": "",
                 "reliance_trade": np.nan, "domestic_production_t": D if producers and not hidden else np.nan,
                 "import_value_usd": own_iv if own_iv > 0 else np.nan,
                 "import_value_shared_usd": iv - own_iv if iv - own_iv > 0 else np.nan,
                 "export_value_usd": own_ev, "top_import_partner": "", "top_import_share": np.nan,
                 "import_basis": "", "trade_top_partner": "", "trade_top_share": np.nan,
                 "import_gaps": gap_forms.get(c, "")}
            # trade-based NIR (rule 3) where the flows are covered by content factors
            complete = (f is not None and c not in gap_forms and c in listed and content.get(c, False) and not hidden
                        and own_iv > 0 and float(f["imp_value_factored"]) >= COVERAGE * own_iv
                        and float(f["exp_value_factored"]) >= COVERAGE * own_ev)
            odd_exporter = False
            if complete:
                ni = float(f["imp_content"] - f["exp_content"])
                if ni <= 0 and not (members & producers):
                    # no primary production, yet net exports of the traded forms: the forms it imports (ores,
                    # intermediates) or its recycling are not in the data; not a net exporter of primary supply
                    odd_exporter = True
                else:
                    r["reliance_trade"] = 0.0 if ni <= 0 else ni / (D + ni)
            if f is not None and isinstance(f["trade_top_partner"], str):
                r["trade_top_partner"], r["trade_top_share"] = f["trade_top_partner"], float(f["trade_top_share"])
                r["top_import_partner"], r["top_import_share"] = r["trade_top_partner"], r["trade_top_share"]
                r["import_basis"] = f"imports of {c} {f['forms']} (BACI {year}, by value)"
            if members == {"USA"} and usp is not None and c in usp.index:
                p = usp.loc[c]
                r["top_import_partner"], r["top_import_share"] = str(p["partner"]), float(p["share"])
                r["import_basis"] = f"USGS MCS import sources {p['period']} ({p['detail']})"
            # reliance rules
            if members == {"USA"} and pub is not None and c in pub.index:
                p = pub.loc[c]
                r.update(reliance=float(p["value"]), reliance_low=float(p["low"]), reliance_high=float(p["high"]),
                         reliance_code=str(p["code"]), reliance_rule="USGS",
                         reliance_note=f"USGS MCS {int(p['year'])}: {p['detail']}"
                                       + (f" ({p['code']})" if p["code"] else ""))
                if pd.notna(r["reliance_trade"]):
                    r["reliance_note"] += f"; from bundled trade: {_pct(r['reliance_trade'])}"
            elif c in listed and not (members & producers) and not hidden and iv > ev and iv > 0:
                r.update(reliance=1.0, reliance_low=1.0, reliance_high=1.0, reliance_rule="no domestic production",
                         reliance_note=f"USGS lists no {imp.label} production of {c}; imports exceed exports by value")
            elif pd.notna(r["reliance_trade"]):
                v = r["reliance_trade"]
                r.update(reliance=v, reliance_low=v, reliance_high=v, reliance_code="E" if v == 0 else "",
                         reliance_rule="trade", reliance_note="net imports of every traded form, contained content")
            else:
                why = []
                if hidden:
                    why.append(f"{', '.join(sorted(hidden))} production withheld by USGS (W): domestic supply unknown")
                elif c not in listed:
                    why.append("USGS publishes no world production by country for it, so domestic supply is unknown")
                elif odd_exporter:
                    why.append("no domestic primary production reported by USGS, yet net exports of the traded "
                               "forms (the ores or intermediates it imports, or its recycling, are not in the data)")
                elif c in gap_forms:
                    why.append(f"forms not in the trade data: {gap_forms[c]}")
                elif f is None or iv == 0:
                    why.append("no traded form of it in the bundled trade data")
                elif c in listed and not content.get(c, False):
                    why.append("USGS production is not on a contained-content basis")
                else:
                    why.append("traded forms without a published content factor")
                r["reliance_note"] = "unknown: " + "; ".join(why)
                if imp.is_bloc:
                    known = [single.get((m, c)) for m in imp.members]
                    if all(k is not None and pd.notna(k["reliance_low"]) for k in known):
                        lo = min(k["reliance_low"] for k in known)
                        hi = max(k["reliance_high"] for k in known)
                        r.update(reliance_low=lo, reliance_high=hi, reliance_rule="members",
                                 reliance_note=f"unknown, between {_pct(lo)} and {_pct(hi)} (members' values; the "
                                               "bloc's consumption weights are not in the data)")
                    else:
                        miss = [m for m, k in zip(imp.members, known, strict=True)
                                if k is None or pd.isna(k["reliance_low"])]
                        if miss:
                            r["reliance_note"] += f"; member{'s' if len(miss) > 1 else ''} unknown: {', '.join(miss)}"
            rows.append(r)
            if not imp.is_bloc:
                single[(imp.label, c)] = r
    wanted = {i.label for i in importers}
    out = pd.DataFrame([r for r in rows if r["importer"] in wanted], columns=COLUMNS)
    return out


def inherit_parent(rel: pd.DataFrame, parents: pd.DataFrame) -> pd.DataFrame:
    """Fill an element's unknown reliance and missing partners from its group (``mappings/commodity_parents.csv``:
    individual rare earths from ``rare-earths``, iridium/rhodium/ruthenium from ``platinum-group-metals``)."""
    out = rel.copy()
    par = dict(zip(parents["commodity"], parents["parent"], strict=True))
    idx = out.set_index(["importer", "commodity"]).index
    by = {k: i for i, k in enumerate(idx)}
    cols_rel = ["reliance", "reliance_low", "reliance_high", "reliance_code"]
    for i, (imp, c) in enumerate(idx):
        p = par.get(c)
        j = by.get((imp, p)) if p else None
        if j is None:
            continue
        src = out.iloc[j]
        if pd.isna(out.iloc[i]["reliance_low"]) and pd.notna(src["reliance_low"]):
            for col in cols_rel:
                out.iat[i, out.columns.get_loc(col)] = src[col]
            out.iat[i, out.columns.get_loc("reliance_rule")] = f"as {p}: {src['reliance_rule']}"
            out.iat[i, out.columns.get_loc("reliance_note")] = f"{p}: {src['reliance_note']}"
        if not out.iloc[i]["top_import_partner"] and src["top_import_partner"]:
            for col in ("top_import_partner", "top_import_share"):
                out.iat[i, out.columns.get_loc(col)] = src[col]
            out.iat[i, out.columns.get_loc("import_basis")] = f"as {p}: {src['import_basis']}"
    return out

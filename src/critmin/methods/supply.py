"""Who supplies each stage: one table of supplier shares per commodity × stage, and its indicators.

Pure functions over the long tables (no IO). Three sources, in order of precedence for a
commodity × stage (the first that reports it wins, so shares of one stage never mix sources):

1. **USGS MCS production** (tonnes by country plus the "Other countries" residual). Shares use the
   sum of country rows plus the residual as denominator. The year is the requested one where the
   commodity has it, else the latest earlier year, else the earliest later one (the row says so).
2. **The cited processing-shares table** (curated): the latest year <= the requested one, never a
   projection; shares as published (a table listing only "China > 95 %" stays 95 %).
3. **The EU CRM 2023 assessment's global supply shares** (Appendix 7; data years 2016–2020 averages
   as the report states), for stages 1 and 2 do not cover (gallium-like refine-only commodities,
   individual rare earths).

:func:`stage_indicators` adds per commodity × stage: top supplier and share, HHI, allied share, the
largest non-allied supplier, and the governance-weighted concentration HHI_WGI,t of the EU method
(Σ s_c² · WGI_c · t_c, WGI rescaled to 0 (best) … 10 (worst)) with the export-restriction factor t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from critmin.constants import PSEUDO_COUNTRIES, STAGES

SHARE_COLUMNS = ["commodity", "stage", "country", "share", "year", "basis", "origin", "source", "estimated",
                 "year_note"]
ORIGIN_USGS, ORIGIN_CURATED, ORIGIN_EU = "USGS MCS", "processing shares (cited)", "EU CRM 2023"


def _pick_year(years: np.ndarray, want: int) -> tuple[int, str]:
    years = np.sort(np.unique(years))
    if want in years:
        return int(want), ""
    earlier = years[years < want]
    if len(earlier):
        return int(earlier[-1]), f"{want} not reported; latest earlier year {int(earlier[-1])} used"
    return int(years[0]), f"{want} not reported; earliest year {int(years[0])} used"


def _usgs_block(prod: pd.DataFrame, year: int) -> pd.DataFrame:
    """USGS shares per commodity × stage (vectorised): the year (requested, else latest earlier, else earliest
    later), the most frequent basis (ties: alphabetical), country rows plus the residual as denominator."""
    key = ["commodity", "stage"]
    p = prod.assign(commodity=prod["commodity"].astype(str), stage=prod["stage"].astype(str),
                    basis=prod["basis"].astype(str), year=prod["year"].astype(int))
    yrs = p.groupby(key)["year"]
    has = p.assign(hit=p["year"] == year).groupby(key)["hit"].transform("any")
    earlier = p["year"].where(p["year"] < year).groupby([p["commodity"], p["stage"]]).transform("max")
    chosen = np.where(has, year, np.where(earlier.notna(), earlier, yrs.transform("min"))).astype(int)
    p = p.assign(chosen=chosen)
    p = p[p["year"] == p["chosen"]]
    counts = p.groupby([*key, "basis"]).size().reset_index(name="n").sort_values(
        [*key, "n", "basis"], ascending=[True, True, False, True])
    best = counts.drop_duplicates(key)[[*key, "basis"]]
    p = p.merge(best, on=[*key, "basis"])
    g = p.groupby([*key, "country"], sort=True).agg(value=("value", "sum"), estimated=("estimated", "any"),
                                                    source=("source", "first"), year=("year", "first"),
                                                    basis=("basis", "first")).reset_index()
    total = g.groupby(key)["value"].transform("sum")
    g = g[total > 0]
    total = total[total > 0]
    note = np.where(g["year"] == year, "",
                    np.where(g["year"] < year, "{} not reported; latest earlier year {} used",
                             "{} not reported; earliest year {} used"))
    notes = [n.format(year, y) if n else "" for n, y in zip(note, g["year"], strict=True)]
    return pd.DataFrame({"commodity": g["commodity"], "stage": g["stage"], "country": g["country"].astype(str),
                         "share": g["value"] / total, "year": g["year"].astype(int), "basis": g["basis"],
                         "origin": ORIGIN_USGS, "source": g["source"].astype(str),
                         "estimated": g["estimated"].astype(bool), "year_note": notes})


def stage_shares(production: pd.DataFrame, processing: pd.DataFrame | None, eu_supply: pd.DataFrame | None,
                 year: int) -> pd.DataFrame:
    """Long table of supplier shares: one block per commodity × stage from the best source.

    Returns columns :data:`SHARE_COLUMNS`; ``country`` ``ROW`` is the unallocated residual.
    """
    blocks: list[pd.DataFrame] = []
    done: set[tuple[str, str]] = set()
    prod = production[production["row_type"] != "total"]
    if len(prod):
        blocks.append(_usgs_block(prod, year))
        done |= set(zip(blocks[-1]["commodity"], blocks[-1]["stage"], strict=True))
    if processing is not None and len(processing):
        ps = processing.assign(year=pd.to_numeric(processing["year"], errors="coerce"),
                               share=pd.to_numeric(processing["share"], errors="coerce"))
        ps = ps[ps["stage_id"].isin(STAGES) & ps["year"].notna() & ps["share"].notna()
                & ps["commodity"].astype(str).str.match(r"^[a-z-]+$")]
        for (c, st), grp in ps.groupby(["commodity", "stage_id"], observed=True, sort=True):
            if (c, st) in done:
                continue
            past = grp[grp["year"] <= year]
            if past.empty:
                continue  # only projections or later years: not used for a past year
            y = int(past["year"].max())
            g = past[past["year"] == y]
            basis = str(g["basis"].astype(str).value_counts().sort_index().idxmax())
            g = g[g["basis"].astype(str) == basis]
            note = "" if y == year else f"latest cited year <= {year}: {y}"
            blocks.append(pd.DataFrame({
                "commodity": c, "stage": st, "country": g["country"].astype(str).to_numpy(),
                "share": g["share"].to_numpy(float), "year": y, "basis": basis, "origin": ORIGIN_CURATED,
                "source": g["source"].astype(str).to_numpy(), "estimated": False, "year_note": note}))
            done.add((c, st))
    if eu_supply is not None and len(eu_supply):
        eu = eu_supply[(eu_supply["scope"] == "global") & eu_supply["commodity"].astype(str).ne("")
                       & eu_supply["stage"].isin(STAGES)]
        for (c, st), grp in eu.groupby(["commodity", "stage"], observed=True, sort=True):
            if (c, st) in done or len(grp["material"].unique()) != 1:
                continue  # several EU materials on one id (e.g. LREE and HREE groups): not one market
            g = grp.groupby("country", observed=True).agg(share=("share", "sum"), source=("source", "first"))
            g = g.reset_index()
            blocks.append(pd.DataFrame({
                "commodity": c, "stage": st, "country": g["country"].astype(str), "share": g["share"].astype(float),
                "year": 2023, "basis": f"EU CRM 2023 supply shares ({grp['material'].iloc[0]})",
                "origin": ORIGIN_EU, "source": g["source"].astype(str), "estimated": False,
                "year_note": "assessment year 2023 (the report's multi-year averages)"}))
            done.add((c, st))
    if not blocks:
        return pd.DataFrame(columns=SHARE_COLUMNS)
    out = pd.concat(blocks, ignore_index=True)[SHARE_COLUMNS]
    order = {s: i for i, s in enumerate(STAGES)}
    return out.sort_values(["commodity", "stage", "share", "country"], ascending=[True, True, False, True],
                           key=lambda s: s.map(order) if s.name == "stage" else s, kind="stable"
                           ).reset_index(drop=True)


def stage_indicators(shares: pd.DataFrame, wgi_scaled: pd.Series, t: pd.DataFrame | None, allies: set[str],
                     missing_scaled: float = 5.0) -> pd.DataFrame:
    """Per commodity × stage: concentration, allied share and HHI_WGI,t.

    Parameters
    ----------
    shares : output of :func:`stage_shares`
    wgi_scaled : Series indexed by ISO3, WGI mean rescaled to 0 (best) … 10 (worst)
    t : DataFrame ``commodity, stage, country, t`` (missing = 1)
    allies : ISO3 codes whose supply counts as allied
    missing_scaled : scaled WGI for a supplier with no estimate (mid-scale by default)
    """
    s = shares.copy()
    s["named"] = ~s["country"].isin(PSEUDO_COUNTRIES)
    s["allied"] = s["country"].isin(allies) & s["named"]
    s["w"] = s["country"].map(wgi_scaled).astype(float).fillna(missing_scaled)
    if t is not None and len(t):
        s = s.merge(t[["commodity", "stage", "country", "t"]], on=["commodity", "stage", "country"], how="left")
    else:
        s["t"] = np.nan
    s["t"] = s["t"].fillna(1.0)
    s["sq"] = np.where(s["named"], s["share"] ** 2, 0.0)
    s["wt"] = s["sq"] * s["w"] * s["t"]
    s["allied_sh"] = np.where(s["allied"], s["share"], 0.0)
    s["unalloc_sh"] = np.where(s["named"], 0.0, s["share"])
    key = ["commodity", "stage"]
    agg = s.groupby(key, sort=False).agg(
        year=("year", "first"), basis=("basis", "first"), origin=("origin", "first"),
        estimated=("estimated", "any"), year_note=("year_note", "first"), hhi=("sq", "sum"),
        hhi_wgi_t=("wt", "sum"), named_allied=("allied_sh", "sum"), unallocated_share=("unalloc_sh", "sum"),
        countries_reported=("named", "sum")).reset_index()
    # rows are sorted by share (descending) within each block: the first named row is the top supplier
    named = s[s["named"]]
    top = named.drop_duplicates(key)[[*key, "country", "share"]].rename(
        columns={"country": "top_supplier", "share": "top_share"})
    na = named[~named["allied"]].drop_duplicates(key)[[*key, "country", "share", "t"]].rename(
        columns={"country": "top_non_allied", "share": "top_non_allied_share", "t": "top_non_allied_t"})
    src = (s[[*key, "source"]].astype({"source": str}).drop_duplicates().sort_values([*key, "source"])
           .groupby(key, sort=False)["source"].agg(";".join).reset_index())
    out = agg.merge(top, on=key, how="left").merge(na, on=key, how="left").merge(src, on=key, how="left")
    out["top_supplier"] = out["top_supplier"].fillna("")
    out["top_non_allied"] = out["top_non_allied"].fillna("")
    out["top_non_allied_share"] = out["top_non_allied_share"].fillna(0.0)
    out["top_non_allied_t"] = out["top_non_allied_t"].fillna(1.0)
    known = out["unallocated_share"] < ALLIED_KNOWN_BELOW
    out["allied_share"] = out["named_allied"].where(known)
    out["allied_share_low"] = out["named_allied"]
    out["allied_share_high"] = (out["named_allied"] + out["unallocated_share"]).clip(upper=1.0)
    out["year"] = out["year"].astype(int)
    out["estimated"] = out["estimated"].astype(bool)
    out["countries_reported"] = out["countries_reported"].astype(int)
    return out[["commodity", "stage", "year", "basis", "origin", "estimated", "year_note", "top_supplier",
                "top_share", "top_non_allied", "top_non_allied_share", "top_non_allied_t", "allied_share",
                "allied_share_low", "allied_share_high", "unallocated_share", "hhi", "hhi_wgi_t",
                "countries_reported", "source"]]


#: Unallocated ("Other countries") share below which the allied share is taken as known.
ALLIED_KNOWN_BELOW = 0.05


def _allied(named_allied: float, unallocated: float) -> dict:
    """Allied share of a stage: the allied countries' named share is a lower bound, plus everything not
    allocated to a country an upper bound; a point value only where the unallocated rest is small."""
    return {"allied_share": named_allied if unallocated < ALLIED_KNOWN_BELOW else np.nan,
            "allied_share_low": named_allied, "allied_share_high": min(1.0, named_allied + unallocated),
            "unallocated_share": unallocated}

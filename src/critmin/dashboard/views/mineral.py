"""Mineral page (``/mineral/{commodity}``): who controls each stage, where, what it costs, what the methods say.

State in the query string: ``importer`` (one importer or bloc, for import partners and the methods' scores),
``stage`` and ``year`` (the concentration map), ``as_of`` (the date export controls are judged on). Downloads:
``format=csv|xlsx`` with ``table=`` one of :data:`TABLES`.

Numbers: supplier shares, allied shares, the methods' scores and their reasons come from
:func:`critmin.api.priorities`; deposits and projects from the layers :func:`critmin.api.map` draws
(:mod:`critmin.geo.layers`); production, trade and prices are rows of the dataset tables (``production``,
``trade``, ``prices``, ``import_sources``) summed or filtered, never modelled here.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Query, Request

from critmin.dashboard.common import (
    PALETTE,
    BadInput,
    cached,
    catalog,
    check_format,
    data_key,
    download,
    figure,
    render,
    sources_for,
)
from critmin.dashboard.views.overview import engine_importers, priorities
from critmin.errors import CritminError
from critmin.reference.countries import country_name

router = APIRouter()

STAGES = ("mine", "refine", "metal", "component")
STAGE_LABEL = {"mine": "mining", "refine": "refining", "metal": "metal", "component": "components"}
TABLES = ("stages", "shares", "partners", "usgs_partners", "production", "prices", "events", "facilities",
          "methods")
#: Suppliers drawn by name in the stage bars; the rest are summed as "others" (a display choice).
TOP_SUPPLIERS = 6
METHOD_COLUMNS = ["importer", "commodity", "priority", "rank", "composite", "methods_stage", "geopolrisk_score",
                  "eu_sr", "usgs_sr", "eu_published_sr", "eu_published_ei", "eu_published_year",
                  "usgs_critical_2025", "eu_comparison", "reason"]


def known_commodities(request: Request) -> list[str]:
    cat = catalog(request)
    return cached(("commodities", data_key(request)), lambda: sorted(
        set(cat.table("production")["commodity"].astype(str)) | set(cat.table("prices")["commodity"].astype(str))))


def check_commodity(request: Request, commodity: str) -> str:
    c = commodity.strip().lower().replace(" ", "-").replace("_", "-")
    known = known_commodities(request)
    if c not in known:
        from critmin import suggest

        hint = suggest.did_you_mean(commodity, known)
        raise BadInput("commodity", f"{commodity!r} is not in the dataset" + (f"; {hint}" if hint else ""), 404)
    return c


def check_importer(importer: str):
    from critmin.importers import parse_importers

    try:
        imps = parse_importers(importer)
    except CritminError as exc:
        raise BadInput("importer", f"{importer!r}: {exc}") from None
    if len(imps) != 1:
        raise BadInput("importer", f"{importer!r}: one importer or bloc on this page (e.g. USA or USA+JPN)")
    return imps[0]


def stage_figure(shares: pd.DataFrame, stages: pd.DataFrame) -> go.Figure:
    """Stepped bars: each stage's supplier shares stacked (largest suppliers named), the allied share marked."""
    order = [s for s in STAGES if s in set(shares["stage"])]
    best = shares.groupby("country")["share"].max().sort_values(ascending=False)
    top = best[best > 0].head(TOP_SUPPLIERS).index.tolist()
    fig = go.Figure()
    for i, c in enumerate(top):
        sub = shares[shares["country"] == c].set_index("stage")["share"]
        label = country_name(c) if c != "ROW" else "rest of world"
        fig.add_bar(name=label, x=[STAGE_LABEL[s] for s in order], text=[label] * len(order),
                    y=[float(sub.get(s, 0.0)) for s in order], marker_color=PALETTE[i % (len(PALETTE) - 1)],
                    width=0.55, texttemplate="%{text} %{y:.0%}", textposition="inside",
                    insidetextanchor="middle", hovertemplate="%{x}: %{fullData.name} %{y:.1%}<extra></extra>")
    rest = shares[~shares["country"].isin(top)].groupby("stage")["share"].sum()
    if rest.sum() > 0:
        fig.add_bar(name="others", x=[STAGE_LABEL[s] for s in order], y=[float(rest.get(s, 0.0)) for s in order],
                    marker_color="#bdbdbd", width=0.55, hovertemplate="%{x}: others %{y:.1%}<extra></extra>")
    st = stages.drop_duplicates("stage").set_index("stage")
    fig.add_scatter(name="allied share (at least)", x=[STAGE_LABEL[s] for s in order],
                    y=[float(st["allied_share_low"].get(s, float("nan"))) for s in order], mode="lines+markers",
                    line=dict(color="#000000", dash="dot", shape="hv"), marker=dict(symbol="diamond", size=11),
                    hovertemplate="%{x}: allied %{y:.1%}<extra></extra>")
    fig.update_layout(barmode="stack", height=420, uniformtext=dict(minsize=10, mode="hide"),
                      yaxis=dict(title="share of world output", tickformat=".0%", range=[0, 1.02]),
                      xaxis=dict(title="stage (mine → refine → metal → component)"),
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=20, b=40))
    return fig


def production_rows(request: Request, commodity: str) -> pd.DataFrame:
    prod = catalog(request).table("production")
    rows = prod[(prod["commodity"] == commodity) & (prod["row_type"].astype(str) == "country")]
    return rows[["commodity", "stage", "country", "year", "value", "unit", "basis", "estimated", "source"]]


#: Where the page's Plotly.js fetches the country outlines (the app serves critmin.geo's bundled file there).
OUTLINES_URL = "/geo/countries-110m.geojson"


def concentration_map(prod: pd.DataFrame, stage: str, year: int, facilities: pd.DataFrame) -> go.Figure:
    """Production by country in ``year`` (choropleth on the bundled Natural Earth outlines, which the browser
    loads once from :data:`OUTLINES_URL`) with deposits and projects."""
    from critmin.geo.outlines import load_outlines

    sub = prod[(prod["stage"] == stage) & (prod["year"] == year)]
    total = sub["value"].sum()
    outlines = load_outlines()
    unit = sub["unit"].iloc[0] if len(sub) else ""
    fig = go.Figure(go.Choropleth(
        geojson=OUTLINES_URL, featureidkey="properties.iso3", locations=sub["country"], z=sub["value"],
        colorscale="Blues", marker_line_color="#6b6b6b", marker_line_width=0.4, name=f"{stage} output",
        colorbar=dict(title=f"{unit} ({year})", len=0.7),
        customdata=[[country_name(c), v / total if total else float("nan")] for c, v in
                    zip(sub["country"], sub["value"], strict=True)],
        hovertemplate="%{customdata[0]}: %{z:,.0f} " + unit + " (%{customdata[1]:.1%} of the countries listed)"
                      "<extra></extra>"))
    # the country outlines without data, drawn so the map reads as a map
    empty = [f["properties"]["iso3"] for f in outlines["features"]
             if f["properties"].get("iso3") and f["properties"]["iso3"] not in set(sub["country"])]
    fig.add_trace(go.Choropleth(geojson=OUTLINES_URL, featureidkey="properties.iso3", locations=empty, z=[0] * len(empty),
                                showscale=False, colorscale=[[0, "#f2f2f2"], [1, "#f2f2f2"]], hoverinfo="skip",
                                marker_line_color="#9e9e9e", marker_line_width=0.3, name="no data"))
    for kind, symbol, colour in (("deposit", "circle", PALETTE[1]), ("project", "diamond", PALETTE[2])):
        pts = facilities[facilities["kind"] == kind] if len(facilities) else facilities
        if len(pts):
            fig.add_trace(go.Scattergeo(lat=pts["lat"], lon=pts["lon"], mode="markers", name=f"{kind}s",
                                        marker=dict(symbol=symbol, size=7 if kind == "deposit" else 11, color=colour,
                                                    line=dict(width=0.5, color="#000")),
                                        text=pts["name"], hovertemplate="%{text}<extra>" + kind + "</extra>"))
    fig.update_geos(showland=False, showocean=False, showlakes=False, showrivers=False, showcountries=False,
                    showcoastlines=False, showframe=False, projection_type="natural earth",
                    lataxis_range=[-58, 85])
    fig.update_layout(height=460, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.02))
    return fig


def facilities_table(request: Request, commodity: str) -> tuple[pd.DataFrame, list[str]]:
    """Deposits and projects of ``commodity`` (one table, ``kind`` says which): the layers of ``critmin map``
    (:func:`critmin.geo.layers.deposit_layer` and :func:`~critmin.geo.layers.facility_layer`, the functions
    :func:`critmin.api.map` draws), without building its figure."""
    from critmin.geo.layers import deposit_layer, facility_layer

    cat = catalog(request)
    dep = deposit_layer(cat.table("deposits"), [commodity]).assign(kind="deposit")
    proj = facility_layer(cat.table("projects"), [commodity]).assign(kind="project")
    notes = [f"{dep.attrs.get('dropped_no_coords', 0)} deposits and {proj.attrs.get('dropped_no_coords', 0)} "
             "projects have no coordinates and are not shown."]
    frame = pd.concat([proj, dep], ignore_index=True)
    keep = [c for c in ("kind", "id", "name", "country", "commodity", "stage", "status", "lat", "lon", "source",
                        "detail") if c in frame.columns]
    return frame[keep], notes


def partners_table(request: Request, commodity: str, imp) -> tuple[pd.DataFrame, str | None]:
    """The importer's suppliers by stage in the latest trade year (BACI rows summed over the importer's members;
    trade among a bloc's own members left out), and a note when the commodity is traded only under an HS code
    shared with other elements (its group's rows are used then, e.g. ``gallium-germanium-group``)."""
    trade = catalog(request).table("trade")
    names = trade["commodity"].astype(str)
    code, note = commodity, None
    if not (names == commodity).any():
        from critmin.methods.reliance import GROUP_COMMODITIES  # the engine's mapping of shared codes

        groups = [g for g, members in GROUP_COMMODITIES.items() if commodity in members and (names == g).any()]
        if groups:
            code = groups[0]
            note = (f"{commodity} is traded under an HS code shared with other elements: these are the partners of "
                    f"'{code}', an upper bound on {commodity}'s own trade.")
    t = trade[(names == code) & trade["importer"].isin(imp.members) & ~trade["exporter"].isin(imp.members)]
    if not len(t):
        return pd.DataFrame(columns=["importer", "stage", "year", "partner", "unit", "value_usd", "quantity", "share",
                                     "source"]), note
    year = int(t["year"].max())
    t = t[t["year"] == year]
    g = (t.groupby(["stage", "exporter", "unit"], as_index=False)[["value_usd", "quantity"]].sum()
         .rename(columns={"exporter": "partner"}))
    g["share"] = g["value_usd"] / g.groupby("stage")["value_usd"].transform("sum")
    g = g.sort_values(["stage", "value_usd"], ascending=[True, False])
    g.insert(0, "importer", imp.label)
    g.insert(2, "year", year)
    g["source"] = ",".join(sorted(t["source"].astype(str).unique()))
    return g.reset_index(drop=True), note


def published_partners(request: Request, commodity: str, imp) -> pd.DataFrame:
    """USGS MCS import sources of the United States (the ``import_sources`` table), when the importer is USA."""
    if imp.label != "USA":
        return pd.DataFrame()
    src = catalog(request).table("import_sources")
    return src[src["commodity"] == commodity].sort_values("share", ascending=False).reset_index(drop=True)


def partners_figure(partners: pd.DataFrame, top: int = 8) -> go.Figure:
    fig = go.Figure()
    for i, (stage, rows) in enumerate(partners.groupby("stage", sort=False)):
        r = rows.head(top)
        fig.add_bar(name=STAGE_LABEL.get(stage, stage), y=[f"{country_name(p)} · {stage}" for p in r["partner"]],
                    x=r["share"], orientation="h", marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate="%{y}: %{x:.1%} of imports by value<extra></extra>")
    fig.update_layout(height=max(260, 26 * min(len(partners), 24) + 80), xaxis=dict(tickformat=".0%",
                      title="share of the importer's imports (value)"), yaxis=dict(autorange="reversed"),
                      margin=dict(l=10, r=20, t=10, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def price_rows(request: Request, commodity: str) -> pd.DataFrame:
    prices = catalog(request).table("prices")
    return prices[prices["commodity"] == commodity].reset_index(drop=True)


def _period(p) -> pd.Timestamp:
    s = str(p)
    return pd.Timestamp(f"{s}-07-01") if len(s) == 4 else pd.Timestamp(s if len(s) > 7 else f"{s}-01")


def price_figure(prices: pd.DataFrame, events: pd.DataFrame) -> go.Figure:
    """Each price series over time (own axis scale per unit) with the export-control events marked."""
    fig = go.Figure()
    series = prices["series"].drop_duplicates().tolist()[:6]
    for i, s in enumerate(series):
        rows = prices[prices["series"] == s].copy()
        rows["t"] = rows["period"].map(_period)
        rows = rows.sort_values("t")
        label = s if len(s) < 60 else s[:57] + "…"
        fig.add_scatter(x=rows["t"], y=rows["value"], name=f"{label} ({rows['unit'].iloc[0]})",
                        mode="lines+markers" if len(rows) < 30 else "lines",
                        line=dict(color=PALETTE[i % (len(PALETTE) - 1)]))
    marks = events.dropna(subset=["since"]).drop_duplicates(["country", "measure", "since"])
    for i, e in enumerate(marks.itertuples(index=False)):   # one mark per measure and date (the table lists all)
        if not e.since:
            continue
        x = pd.Timestamp(e.since)
        fig.add_vline(x=x.timestamp() * 1000, line=dict(color="#7a1f00", width=1, dash="dash"))
        fig.add_annotation(x=x, y=1.0 - 0.07 * (i % 6), yref="paper", text=f"{e.country} {e.measure}",
                           showarrow=False, xanchor="left", font=dict(size=11, color="#7a1f00"),
                           bgcolor="rgba(255,255,255,0.8)", hovertext=e.label)
    fig.update_layout(height=420, yaxis=dict(title="price (unit per series)", type="log"),
                      xaxis=dict(title="time"), legend=dict(orientation="h", y=-0.25),
                      margin=dict(l=60, r=20, t=10, b=40))
    return fig


def events_table(res, commodity: str) -> pd.DataFrame:
    m = res.tables["export_controls"]
    return m[m["commodity"].astype(str) == commodity].sort_values("since").reset_index(drop=True)


def page_data(request: Request, commodity: str, imp, day: dt.date) -> dict:
    """Every table and figure of the page (cached by inputs except the map's stage and year)."""
    res = priorities(request, engine_importers(imp.label), day)
    shares = res.tables["shares"]
    shares = shares[shares["commodity"] == commodity].reset_index(drop=True)
    stages = res.tables["stages"]
    stages = stages[stages["commodity"] == commodity]
    if "importer" in stages.columns:   # the stage rows repeat per importer; the allied share does not depend on it
        stages = stages[stages["importer"] == stages["importer"].iloc[0]] if len(stages) else stages
    stages = stages.reset_index(drop=True)
    prio = res.tables["priorities"]
    methods = prio[(prio["commodity"] == commodity) & (prio["importer"] == imp.label)]
    methods = methods[[c for c in METHOD_COLUMNS if c in methods.columns]].reset_index(drop=True)
    facilities, map_notes = cached(("facilities", data_key(request), commodity),
                                   lambda: facilities_table(request, commodity))
    partners, partners_note = cached(("partners", data_key(request), commodity, imp.label),
                                     lambda: partners_table(request, commodity, imp))
    return {"res": res, "shares": shares, "stages": stages, "methods": methods, "facilities": facilities,
            "map_notes": map_notes, "partners": partners, "partners_note": partners_note,
            "usgs_partners": published_partners(request, commodity, imp),
            "production": production_rows(request, commodity), "prices": price_rows(request, commodity),
            "events": events_table(res, commodity)}


@router.get("/mineral", name="mineral_index")
def mineral_index(request: Request, commodity: str = Query("gallium")):
    """The form's target: ``/mineral?commodity=x`` redirects to ``/mineral/x``."""
    from fastapi.responses import RedirectResponse

    c = check_commodity(request, commodity)
    rest = str(request.url.include_query_params().query)
    rest = "&".join(p for p in rest.split("&") if p and not p.startswith("commodity="))
    return RedirectResponse(f"/mineral/{c}" + (f"?{rest}" if rest else ""), status_code=303)


@router.get("/mineral/{commodity}", name="mineral")
def mineral(request: Request, commodity: str,
            importer: str = Query("USA", description="one importer or bloc"),
            stage: str | None = Query(None, description="stage of the concentration map"),
            year: int | None = Query(None, description="year of the concentration map"),
            as_of: str | None = Query(None, description="date YYYY-MM-DD on which measures are judged"),
            table: str = Query("stages", description="table to download"),
            format: str | None = Query(None, description="csv or xlsx: download the table")):
    """One commodity's page, or one of its tables as CSV/XLSX."""
    from critmin.workflows import parse_as_of

    fmt = check_format(format)
    c = check_commodity(request, commodity)
    imp = check_importer(importer)
    try:
        day = parse_as_of(as_of or None)
    except CritminError:
        raise BadInput("as_of", f"{as_of!r}: expected a date YYYY-MM-DD, e.g. 2026-12-04") from None
    d = page_data(request, c, imp, day)
    prod = d["production"]
    map_stages = [s for s in STAGES if s in set(prod["stage"])]
    if stage is not None and stage not in STAGES:
        raise BadInput("stage", f"{stage!r}: one of {', '.join(STAGES)}")
    if stage is not None and stage not in map_stages:
        raise BadInput("stage", f"{stage!r}: no production data for {c} at this stage; stages with data: "
                                f"{', '.join(map_stages) or 'none'}")
    map_stage = stage or (map_stages[0] if map_stages else None)
    years = sorted(int(y) for y in prod.loc[prod["stage"] == map_stage, "year"].unique()) if map_stage else []
    if year is not None and years and year not in years:
        raise BadInput("year", f"{year}: {c} {map_stage} has data for {years[0]}–{years[-1]} "
                               f"({', '.join(map(str, years))})")
    map_year = year or (years[-1] if years else None)
    if fmt:
        if table not in TABLES:
            raise BadInput("table", f"{table!r}: one of {', '.join(TABLES)}")
        frame = d[table] if table != "production" else prod
        return download(frame, fmt, f"critmin-{c}-{table}-{imp.label.replace('+', '-')}")
    key = (data_key(request), c, imp.label, day.isoformat())
    figs = {
        "stages": cached(("fig-stages", *key), lambda: figure(stage_figure(d["shares"], d["stages"]), "fig-stages"))
        if len(d["shares"]) else None,
        "map": cached(("fig-map", *key, map_stage, map_year),
                      lambda: figure(concentration_map(prod, map_stage, map_year, d["facilities"]), "fig-map"))
        if map_stage else None,
        "partners": cached(("fig-partners", *key), lambda: figure(partners_figure(d["partners"]), "fig-partners"))
        if len(d["partners"]) else None,
        "prices": cached(("fig-prices", *key), lambda: figure(price_figure(d["prices"], d["events"]), "fig-prices"))
        if len(d["prices"]) else None,
    }
    cat = catalog(request)
    partner_ids = [x for v in d["partners"]["source"].unique() for x in str(v).split(",")]
    srcs = sources_for([d["shares"], d["prices"], prod, d["facilities"], d["usgs_partners"]], cat,
                       ids=[*d["res"].meta.get("sources", []), *partner_ids])
    shares_rows = d["shares"].sort_values(["stage", "share"], ascending=[True, False])
    return render(request, "mineral.html", commodity=c, importer=imp.label, as_of=day.isoformat(),
                  commodities=known_commodities(request), stages=d["stages"].to_dict("records"),
                  shares=shares_rows.to_dict("records"), methods=d["methods"].to_dict("records"),
                  partners=d["partners"].groupby("stage", sort=False).head(5).to_dict("records"),
                  partners_note=d["partners_note"], usgs_partners=d["usgs_partners"].to_dict("records"),
                  events=d["events"].to_dict("records"), facilities=d["facilities"],
                  n_deposits=int((d["facilities"]["kind"] == "deposit").sum()) if len(d["facilities"]) else 0,
                  projects=d["facilities"][d["facilities"]["kind"] == "project"].to_dict("records")
                  if len(d["facilities"]) else [], map_notes=d["map_notes"], figs=figs, map_stage=map_stage,
                  map_stages=map_stages, years=years, map_year=map_year, stage_label=STAGE_LABEL,
                  name=country_name, sources=srcs)

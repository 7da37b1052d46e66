"""The resource map: an interactive Plotly figure written as ONE self-contained offline HTML file.

Country outlines come from the shipped Natural Earth GeoJSON, never from Plotly's CDN. Two
things make Plotly.js fetch its own ``world_110m.json`` topology from ``topojsonURL``
(default ``https://cdn.plot.ly/``) when a geo subplot is drawn (plotly.js ``Geo.plot``):

1. any base layer switched on (``showland``, ``showcountries``, ``showcoastlines``, ``showocean``,
   ``showlakes``, ``showrivers``, ``showsubunits``) — the default Plotly template switches some on;
2. a trace with a ``locationmode`` — which includes a ``Choropleth`` drawn from inline GeoJSON
   (``locationmode = "geojson-id"``; plotly.js issue #6767).

:func:`map_figure` switches every base layer off explicitly and sets ``geo.visible = False``
(against 1), and puts lat/lon traces before the choropleth (plotly.js <= 4.1 only looks at the
first trace's ``locationmode``; defence in depth, not the guarantee). :func:`write_map_html`
pre-registers an empty topology under the name Plotly would fetch in ``window.PlotlyGeoAssets``
before the plot is created, so the fetch is skipped whatever the traces (against 2), and sets
``config.topojsonURL = ""`` so that no CDN is named. Pages that embed the figure themselves should
include :func:`offline_geo_script`. ``tests/test_geo.py`` checks both in headless Chromium.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from critmin.geo.layers import COUNTRY_STATUSES

#: Fill colours of countries by allied status (light, so the points stay readable).
STATUS_COLOURS = {"USA": "#8fb8de", "JPN": "#f4a6a6", "ally": "#b9dfb0", "other": "#e3e3e3"}
STATUS_LABELS = {"USA": "United States", "JPN": "Japan", "ally": "Allies", "other": "Other countries"}

#: Plotly layout keys of the geo base layers; all must be off for an offline map.
BASE_LAYER_FLAGS = ("showland", "showcountries", "showcoastlines", "showocean", "showlakes",
                    "showrivers", "showsubunits", "showframe")

#: Scope and resolution fix the topology name Plotly would look up (``world_110m``).
GEO_SCOPE, GEO_RESOLUTION = "world", 110

#: Label of points whose deposit lists no critmin commodity.
UNMAPPED = "unmapped"

ATTRIBUTION = ("Country outlines: Natural Earth 1:110m (public domain) via world-atlas 2.0.2. "
               "Deposits: USGS (PP1802, Major Mineral Deposits of the World, Lithium Deposits of the US). "
               "Projects: critmin curated table (row-level citations).")

DIV_ID = "critmin-resource-map"


def _palette() -> list[str]:
    import plotly.colors as pc

    return list(pc.qualitative.Dark24) + list(pc.qualitative.Light24)


def _commodities(*layers: pd.DataFrame) -> list[str]:
    seen: set[str] = set()
    for layer in layers:
        seen.update(layer["commodity"].fillna(UNMAPPED).astype(str))
    # Unmapped last so the real commodities head the legend and the dropdown.
    return sorted(seen - {UNMAPPED}) + ([UNMAPPED] if UNMAPPED in seen else [])


def _text(value) -> str:
    return "–" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _hover(layer: pd.DataFrame) -> list[str]:
    from critmin.reference.countries import country_name

    rows = []
    for r in layer.itertuples(index=False):
        country = _text(r.country)
        rows.append("<br>".join([
            f"<b>{html.escape(_text(r.name))}</b> ({r.kind})",
            f"country: {html.escape(country_name(country))} ({html.escape(country)})",
            f"commodity: {html.escape(_text(r.commodity))}",
            f"stage: {html.escape(_text(r.stage))}",
            f"status: {html.escape(_text(r.status))}",
            f"detail: {html.escape(_text(r.detail))}",
            f"source: {html.escape(_text(r.source))}",
        ]))
    return rows


def map_figure(deposits_layer: pd.DataFrame, facilities_layer: pd.DataFrame, outlines: dict,
               country_status: pd.DataFrame, title: str | None = None):
    """The resource map: allied status of countries, deposits and projects by commodity.

    Parameters
    ----------
    deposits_layer, facilities_layer : DataFrame
        Layers from :func:`~critmin.geo.layers.deposit_layer` and
        :func:`~critmin.geo.layers.facility_layer` (lat/lon in degrees).
    outlines : dict
        GeoJSON FeatureCollection of country polygons with ``properties.iso3`` and
        ``properties.name`` (:func:`~critmin.geo.outlines.load_outlines`).
    country_status : DataFrame
        ``iso3, status`` from :func:`~critmin.geo.layers.country_status`; countries not listed
        are drawn as ``other``.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Choropleth`` of country status (plus one for outlines without an ISO code), four
        legend-only status keys, then per commodity a ``Scattergeo`` of deposits (circles) and one
        of projects (diamonds, larger). A dropdown shows all commodities or one. Every geo base
        layer is off, so nothing is drawn from Plotly's own topology.
    """
    import plotly.graph_objects as go

    status = dict(zip(country_status["iso3"], country_status["status"], strict=True))
    code = {s: i for i, s in enumerate(COUNTRY_STATUSES)}
    n = len(COUNTRY_STATUSES) - 1
    # A stepped colour scale: each integer status code gets one flat colour.
    scale = []
    for i, s in enumerate(COUNTRY_STATUSES):
        lo, hi = max(0.0, (i - 0.5) / n), min(1.0, (i + 0.5) / n)
        scale += [[lo, STATUS_COLOURS[s]], [hi, STATUS_COLOURS[s]]]
    allies = country_status.attrs.get("allies", "allies")

    def status_label(s: str) -> str:
        return f"ally ({allies})" if s == "ally" else STATUS_LABELS[s]

    # Legend keys first. A choropleth has no legend entries of its own; and plotly.js (<= 4.1)
    # decides whether to fetch its topology from the FIRST trace's locationmode only, so a
    # lat/lon trace in front keeps even an un-seeded embedding of this figure offline.
    traces = []
    for s in COUNTRY_STATUSES:
        traces.append(go.Scattergeo(lat=[None], lon=[None], mode="markers", name=status_label(s),
                                    legendgroup="countries", legendgrouptitle_text="Countries",
                                    marker=dict(symbol="square", size=12, color=STATUS_COLOURS[s]),
                                    hoverinfo="skip"))
    keyed = [f for f in outlines["features"] if f["properties"].get("iso3")]
    unkeyed = [f for f in outlines["features"] if not f["properties"].get("iso3")]
    iso = [f["properties"]["iso3"] for f in keyed]
    st = [status.get(c, "other") for c in iso]
    common = dict(colorscale=scale, zmin=0, zmax=n, showscale=False, hoverinfo="text",
                  marker_line_color="#ffffff", marker_line_width=0.5)
    traces.append(go.Choropleth(
        geojson={"type": "FeatureCollection", "features": keyed}, featureidkey="properties.iso3",
        locations=iso, z=[code[s] for s in st], name="countries",
        text=[f"{html.escape(f['properties'].get('name') or c)} ({c})<br>{status_label(s)}"
              for f, c, s in zip(keyed, iso, st, strict=True)], **common))
    if unkeyed:
        # Natural Earth units without an ISO code (N. Cyprus, Somaliland): drawn, keyed by name.
        names = [f["properties"]["name"] for f in unkeyed]
        traces.append(go.Choropleth(
            geojson={"type": "FeatureCollection", "features": unkeyed}, featureidkey="properties.name",
            locations=names, z=[code["other"]] * len(names), name="countries without ISO code",
            text=[f"{html.escape(nm)} (no ISO code)<br>{STATUS_LABELS['other']}" for nm in names],
            **common))

    palette = _palette()
    commodities = _commodities(deposits_layer, facilities_layer)
    for shape, label in (("circle", "deposit (USGS)"), ("diamond", "project or plant")):
        # what the two symbols mean, once, instead of a legend entry per commodity and kind
        traces.append(go.Scattergeo(lat=[None], lon=[None], mode="markers", name=label,
                                    marker=dict(symbol=shape, size=10 if shape == "diamond" else 7,
                                                color="#ffffff", line=dict(width=1.2, color="#111111")),
                                    hoverinfo="skip"))
    n_fixed = len(traces)
    owner: list[str] = []
    for i, com in enumerate(commodities):
        colour = palette[i % len(palette)]
        counts = {kind: int((layer["commodity"].fillna(UNMAPPED) == com).sum())
                  for layer, kind in ((deposits_layer, "deposit"), (facilities_layer, "project"))}
        entry = f"{com} ({', '.join(f'{n} {k}' + ('s' if n != 1 else '') for k, n in counts.items() if n)})"
        shown = False
        for layer, kind in ((deposits_layer, "deposit"), (facilities_layer, "project")):
            sub = layer[layer["commodity"].fillna(UNMAPPED) == com]
            if sub.empty:
                continue
            is_project = kind == "project"
            # one legend entry per commodity (its colour); the symbol tells deposits from projects
            traces.append(go.Scattergeo(
                lat=sub["lat"].tolist(), lon=sub["lon"].tolist(), mode="markers",
                name=entry, showlegend=not shown,
                legendgroup=com, text=_hover(sub), hoverinfo="text",
                marker=dict(symbol="diamond" if is_project else "circle", size=13 if is_project else 5,
                            color=colour, opacity=1.0 if is_project else 0.75,
                            line=dict(width=1.2 if is_project else 0, color="#111111"))))
            shown = True
            owner.append(com)

    buttons = [dict(label="All commodities", method="restyle",
                    args=[{"visible": [True] * (n_fixed + len(owner))}])]
    for com in commodities:
        buttons.append(dict(label=com, method="restyle",
                            args=[{"visible": [True] * n_fixed + [o == com for o in owner]}]))

    geo = dict(visible=False, scope=GEO_SCOPE, resolution=GEO_RESOLUTION,
               projection_type="natural earth", bgcolor="#ffffff", domain=dict(x=[0, 1], y=[0, 1]))
    geo.update(dict.fromkeys(BASE_LAYER_FLAGS, False))
    head, sub, lines = _title_lines(title or "Critical-minerals resource map", len(commodities))
    fig = go.Figure(data=traces)
    fig.update_layout(
        # the title on lines short enough for a phone; the legend below the map, across its width, so neither is
        # cut at any page width; the attribution under the title
        title=dict(text=head, subtitle=dict(text=sub, font=dict(size=12, color="#444444")), x=0.0,
                   xanchor="left", xref="paper", y=1.0, yanchor="bottom", yref="paper", pad=dict(b=14, l=4),
                   font=dict(size=15), automargin=True),
        geo=geo, height=760 + 18 * lines, margin=dict(l=4, r=4, t=20, b=8, autoexpand=True),
        paper_bgcolor="#ffffff",
        legend=dict(orientation="h", x=0.0, xanchor="left", y=-0.01, yanchor="top", itemsizing="constant",
                    groupclick="togglegroup", font=dict(size=10), entrywidth=0, tracegroupgap=4),
        updatemenus=[dict(type="dropdown", buttons=buttons, direction="down", showactive=True,
                          x=1.0, xanchor="right", y=1.0, yanchor="top")],
        annotations=[dict(text=_wrap_html(ATTRIBUTION, 90), showarrow=False, xref="paper", yref="paper",
                          x=1.0, y=0.0, xanchor="right", yanchor="bottom", align="right",
                          font=dict(size=8, color="#555555"), bgcolor="rgba(255,255,255,0.8)")],
    )
    return fig


#: Longest title line (characters) drawn in the figure: about 400 px at the title's font size.
TITLE_LINE_CHARS = 52


def _title_lines(title: str, n_commodities: int) -> tuple[str, str, int]:
    """The figure's title (the first `` · `` part of ``title``) and subtitle (the rest, on lines of at most
    :data:`TITLE_LINE_CHARS` characters; a long comma list of commodities becomes "N commodities": the dropdown
    and the legend name each), escaped; and the number of subtitle lines."""
    import textwrap

    head, *rest = title.split(" · ")
    parts = []
    for part in rest:
        if part.count(",") >= 3 and len(part) > TITLE_LINE_CHARS:
            part = f"{n_commodities} commodities" if n_commodities else "several commodities"
        parts.append(part)
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= TITLE_LINE_CHARS:
            lines[-1] = f"{lines[-1]} · {part}"
        else:
            lines.extend(textwrap.wrap(part, TITLE_LINE_CHARS) or [part])
    return html.escape(head), "<br>".join(html.escape(line) for line in lines), len(lines)


def _wrap_html(text: str, width: int) -> str:
    import textwrap

    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


def topojson_name(fig) -> str:
    """The topology name Plotly.js derives from the geo subplot (``<scope>_<resolution>m``)."""
    scope = fig.layout.geo.scope or GEO_SCOPE
    resolution = fig.layout.geo.resolution or GEO_RESOLUTION
    return f"{scope.replace(' ', '-')}_{int(resolution)}m"


def _empty_topology() -> dict:
    layers = ("land", "ocean", "lakes", "rivers", "countries", "coastlines", "subunits")
    return {"type": "Topology", "arcs": [],
            "objects": {name: {"type": "GeometryCollection", "geometries": []} for name in layers}}


#: Plotly config for the offline file: no CDN topology URL, no logo link to plotly.com.
OFFLINE_CONFIG = {"topojsonURL": "", "displaylogo": False, "responsive": True}


def offline_geo_script(fig=None) -> str:
    """A ``<script>`` tag that stops Plotly.js fetching its topology; put it before the figure.

    It registers an empty topology under the name Plotly.js would fetch
    (:func:`topojson_name`, ``world_110m`` by default) in ``window.PlotlyGeoAssets``; Plotly.js then
    finds the topology "already loaded" and makes no request. Safe to include more than once and
    before or after the Plotly.js bundle (it keeps an existing ``PlotlyGeoAssets``). Pages that
    embed :func:`map_figure` output themselves (e.g. a report template) need it as well.
    """
    name = topojson_name(fig) if fig is not None else f"{GEO_SCOPE}_{GEO_RESOLUTION}m"
    seed = json.dumps({name: _empty_topology()}, separators=(",", ":"))
    return ("<script type=\"text/javascript\">window.PlotlyGeoAssets = window.PlotlyGeoAssets || "
            "{topojson: {}};\nwindow.PlotlyGeoAssets.topojson = window.PlotlyGeoAssets.topojson || {};\n"
            f"Object.assign(window.PlotlyGeoAssets.topojson, {seed});</script>")


#: Grows the map until its whole legend shows (Plotly would otherwise make a long legend scroll, hiding entries,
#: on a narrow screen); runs after every draw, at most four times per window size.
FIT_LEGEND_SCRIPT = """<script type="text/javascript">
(function () {
  function fit(gd) {
    var bg = gd.querySelector(".legend rect.bg"), box = gd.querySelector(".legend .scrollbox");
    if (!bg || !box || !window.Plotly || !gd._fullLayout) { return; }
    var leg = gd._fullLayout.legend || {};
    var extra = Math.max(box.getBBox().height - bg.getBBox().height,
                         (leg._height || 0) - (leg._effHeight || leg._height || 0));
    var tries = gd.__fitTries || 0;
    if (extra > 2 && tries < 4) {
      gd.__fitTries = tries + 1;
      var h = gd._fullLayout.height + Math.ceil(extra) + 16;
      if (gd.parentElement && gd.parentElement.style.height) { gd.parentElement.style.height = h + "px"; }
      window.Plotly.relayout(gd, {height: h});
    }
  }
  function hook() {
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (!gd.__fitHooked && gd.on) { gd.__fitHooked = true; gd.on("plotly_afterplot", function () { fit(gd); }); }
      fit(gd);
    });
  }
  window.addEventListener("resize", function () {
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) { gd.__fitTries = 0; });
  });
  window.addEventListener("load", hook);
  hook();
})();
</script>"""


def render_map_html(fig, title: str | None = None) -> str:
    """The map as one self-contained HTML document (Plotly.js inlined, no external resource)."""
    body = fig.to_html(full_html=False, include_plotlyjs=True, include_mathjax=False,
                       config=OFFLINE_CONFIG, div_id=DIV_ID)
    page_title = html.escape(title or "critmin resource map")
    # The seed must run before Plotly.newPlot (in ``body``): see offline_geo_script.
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{page_title}</title>\n{offline_geo_script(fig)}\n"
            "<style>body{margin:0;font-family:sans-serif}</style>\n</head>\n<body>\n"
            f"{body}\n{FIT_LEGEND_SCRIPT}\n</body>\n</html>\n")


def write_map_html(fig, path: str | Path, title: str | None = None) -> Path:
    """Write the map atomically as one self-contained, offline HTML file.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        From :func:`map_figure`.
    path : str or Path
        Output file; its folder must exist.
    title : str, optional
        The HTML page title.

    Returns
    -------
    Path
        The written file.
    """
    from critmin.files import write_atomic

    return write_atomic(render_map_html(fig, title).encode("utf-8"), path)

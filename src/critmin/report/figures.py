"""Plotly figures of the brief (pure: DataFrames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from critmin.reference.countries import country_name

PALETTE = ["#1f4e79", "#c0392b", "#2e8b57", "#8e44ad", "#d68910", "#117a65", "#7f8c8d", "#a04000"]


#: Nominal plot area of the matrix (px) for placing labels; the page hides any label that still collides at the
#: width it is shown at (see the brief template's ``declutter``).
MATRIX_PLOT_PX = (1000.0, 390.0)
#: Label positions tried in turn around a point: above, below, right, left, then the corners.
LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
                   "bottom right", "bottom left")
_CHAR_PX, _LINE_PX, _PAD_PX = 6.8, 14.0, 2.0


def _label_box(x: float, y: float, r: float, text: str, pos: str) -> tuple[float, float, float, float]:
    """Box (x0, y0, x1, y1; y down) of ``text`` at Plotly ``textposition`` ``pos`` around a marker of radius ``r``."""
    w, h = _CHAR_PX * len(text), _LINE_PX
    vert, horiz = pos.split()
    if horiz == "center":
        x0 = x - w / 2
    elif horiz == "right":
        x0 = x + (r if vert == "middle" else 0.0) + _PAD_PX
    else:
        x0 = x - (r if vert == "middle" else 0.0) - _PAD_PX - w
    if vert == "top":
        y0 = y - r - _PAD_PX - h
    elif vert == "bottom":
        y0 = y + r + _PAD_PX
    else:
        y0 = y - h / 2
    return x0, y0, x0 + w, y0 + h


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(px: np.ndarray, py: np.ndarray, radius: np.ndarray, texts: list[str], wanted: np.ndarray,
                 size: tuple[float, float] = MATRIX_PLOT_PX) -> list[str | None]:
    """Greedy label placement: points in the given order (most important first); each wanted label takes the
    first of :data:`LABEL_POSITIONS` whose box stays inside the plot and clear of every marker and of the labels
    already placed; ``None`` when no position is free (the label is left out)."""
    markers = [(x - r, y - r, x + r, y + r) for x, y, r in zip(px, py, radius, strict=True)]
    placed: list[tuple] = []
    out: list[str | None] = []
    for i, (x, y, r, t) in enumerate(zip(px, py, radius, texts, strict=True)):
        choice = None
        if wanted[i]:
            for pos in LABEL_POSITIONS:
                box = _label_box(x, y, r, t, pos)
                if box[0] < 0 or box[1] < 0 or box[2] > size[0] or box[3] > size[1]:
                    continue
                if any(_overlaps(box, o) for o in placed) or any(
                        _overlaps(box, mk) for j, mk in enumerate(markers) if j != i):
                    continue
                choice = pos
                placed.append(box)
                break
        out.append(choice)
    return out


def _pixels(x: np.ndarray, y: np.ndarray, log_x: bool, size: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Data → nominal plot pixels (y down), with Plotly-like padding of the autoranged axes."""
    xv = np.log10(x) if log_x else np.asarray(x, float)
    lo, hi = float(np.nanmin(xv)), float(np.nanmax(xv))
    pad = 0.06 * (hi - lo or 1.0)
    ytop = float(np.nanmax(y)) * 1.06 or 1.0
    return (xv - lo + pad) / (hi - lo + 2 * pad) * size[0], (1 - np.asarray(y, float) / ytop) * size[1]


def criticality_matrix(matrix: pd.DataFrame, order: list[str] | None = None) -> go.Figure:
    """Supply risk (riskiest stage's HHI_WGI,t / 10, 0..1) vs importance (import value, USD, log) per importer.

    ``matrix`` columns: importer, commodity, importance_usd, supply_risk, priority (and composite, to order the
    labels). Only priority minerals are labelled, highest composite first, each label placed by
    :func:`place_labels` (above, below, right or left of its point, whichever is free) or left out when no place
    is free; every point names itself on hover.
    """
    fig = go.Figure()
    importers = [i for i in (order or []) if i in set(matrix["importer"])] or list(dict.fromkeys(matrix["importer"]))
    unlabelled: dict[str, int] = {}
    for i, imp in enumerate(importers):
        m = matrix[(matrix["importer"] == imp) & (matrix["importance_usd"] > 0) & matrix["supply_risk"].notna()]
        rank = m["composite"] if "composite" in m else m["supply_risk"]
        m = m.assign(_rank=rank.fillna(-1.0)).sort_values(["priority", "_rank"], ascending=[False, False])
        prio = m["priority"].astype(bool).to_numpy()
        names = m["commodity"].astype(str).tolist()
        if len(m):
            px, py = _pixels(m["importance_usd"].to_numpy(float), m["supply_risk"].to_numpy(float), True,
                             MATRIX_PLOT_PX)
            pos = place_labels(px, py, np.where(prio, 6.5, 4.0), names, prio)
        else:
            pos = []
        unlabelled[imp] = int(sum(1 for p, w in zip(pos, prio, strict=True) if w and p is None))
        fig.add_trace(go.Scatter(
            x=m["importance_usd"], y=m["supply_risk"], mode="markers+text",
            text=[n if p else "" for n, p in zip(names, pos, strict=True)],
            textposition=[p or "top center" for p in pos], textfont=dict(size=11, color="#1b2631"),
            customdata=names, name=imp, visible=(i == 0), cliponaxis=False,
            marker=dict(size=np.where(prio, 13, 8), color=np.where(prio, "#c0392b", "#1f4e79"),
                        line=dict(width=1, color="white")),
            hovertemplate="%{customdata}<br>import value %{x:$,.0f}<br>supply-risk composite %{y:.2f}<extra>" + imp
                          + "</extra>"))
    buttons = [dict(label=imp, method="update",
                    args=[{"visible": [j == i for j in range(len(importers))]}, {"title.text": f"Criticality matrix · {imp}"}])
               for i, imp in enumerate(importers)]
    fig.update_layout(
        title=f"Criticality matrix · {importers[0] if importers else ''}", height=520,
        xaxis=dict(title="importance: import value, all traded forms (USD, log)", type="log", automargin=True),
        yaxis=dict(title="supply risk: riskiest stage's HHI_WGI,t / 10", rangemode="tozero", automargin=True),
        updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.15, yanchor="top")],
        margin=dict(l=60, r=20, t=70, b=60), showlegend=False, template="plotly_white",
        meta={"unlabelled_priorities": unlabelled})
    return fig


def stage_shares(stages: pd.DataFrame) -> go.Figure:
    """Top supplier share and allied share per commodity × stage (grouped bars)."""
    labels = [f"{c} · {s}" for c, s in zip(stages["commodity"], stages["stage"], strict=True)]
    top_names = [f"{country_name(c)} ({y})" for c, y in zip(stages["top_supplier"], stages["year"], strict=True)]
    fig = go.Figure([
        go.Bar(name="largest supplier", x=labels, y=stages["top_share"], text=top_names, marker_color="#c0392b",
               hovertemplate="%{x}<br>%{text}: %{y:.0%}<extra></extra>"),
        go.Bar(name="allied suppliers (MSP), at least", x=labels, y=stages["allied_share_low"], marker_color="#2e8b57",
               hovertemplate="%{x}<br>allied: %{y:.0%}<extra></extra>"),
    ])
    fig.update_layout(barmode="group", height=460, yaxis=dict(title="share of stage output", tickformat=".0%",
                                                                range=[0, 1.05]),
                      xaxis=dict(tickangle=-40, automargin=True), template="plotly_white",
                      margin=dict(l=60, r=20, t=30, b=40),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    return fig


def scenario_paths(results: dict[str, pd.DataFrame], consumer: str) -> go.Figure:
    """Shortfall (% of demand) and price multiple over time for one consumer, one preset per menu entry.

    ``results``: preset → long frame with columns commodity, stage, month, shortfall_pct, price_multiple.
    """
    fig = go.Figure()
    names = list(results)
    vis_map = []
    for i, name in enumerate(names):
        f = results[name]
        for (c, s), g in f.groupby(["commodity", "stage"], sort=True):
            fig.add_trace(go.Scatter(x=g["month"], y=g["shortfall_pct"], mode="lines", name=f"{c} · {s}",
                                     visible=(i == 0), legendgroup=name,
                                     hovertemplate=f"{name}<br>{c} · {s}<br>%{{x}}: %{{y:.1f}}% of demand unmet"
                                                   "<extra></extra>"))
            vis_map.append(i)
    buttons = [dict(label=name, method="update",
                    args=[{"visible": [j == i for j in vis_map]},
                          {"title.text": f"Unmet demand over time · {consumer} · {name}"}])
               for i, name in enumerate(names)]
    fig.update_layout(title=f"Unmet demand over time · {consumer} · {names[0] if names else ''}", height=460,
                      xaxis=dict(title="month"), yaxis=dict(title="shortfall, % of demand", rangemode="tozero"),
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.17,
                                        yanchor="top")],
                      template="plotly_white", margin=dict(l=60, r=20, t=80, b=50))
    return fig


def risk_bars(risk: pd.DataFrame, consumer: str) -> go.Figure:
    """Expected shortfall and CVaR 99 % of 12-month unmet demand as % of demand, per commodity · stage."""
    r = risk[risk["consumer"] == consumer].copy()
    r["label"] = r["commodity"] + " · " + r["stage"]
    annual = r["demand_t"].where(r["demand_t"] > 0)
    r = r.assign(es_pct=100 * r["expected_shortfall_t"] / annual, cvar_pct=100 * r["cvar_99_t"] / annual)
    r = r.sort_values("cvar_pct", ascending=True)
    fig = go.Figure([
        go.Bar(y=r["label"], x=r["es_pct"], orientation="h", name="expected shortfall", marker_color="#1f4e79",
               hovertemplate="%{y}: %{x:.2f}% of demand<extra>expected</extra>"),
        go.Bar(y=r["label"], x=r["cvar_pct"], orientation="h", name="CVaR 99 %", marker_color="#c0392b",
               customdata=r["p_shortfall"],
               hovertemplate="%{y}: %{x:.1f}% of demand<br>P(any shortfall) %{customdata:.1%}<extra>CVaR 99%</extra>"),
    ])
    fig.update_layout(barmode="group", height=max(320, 40 * len(r) + 120), template="plotly_white",
                      xaxis=dict(title="unmet demand over the horizon, % of demand"),
                      yaxis=dict(automargin=True), legend=dict(orientation="h", y=1.02, yanchor="bottom"),
                      margin=dict(l=20, r=20, t=40, b=50))
    return fig


def stockpile_days(plan: pd.DataFrame) -> go.Figure:
    """Optimal complementary stock in days of consumption per commodity × holder, with the 60/180-day rules; the
    hover gives the tonnes with their basis (``basis`` column of the plan, when present) and the value."""
    fig = go.Figure()
    for holder, g in plan.groupby("holder", sort=False):
        basis = g["basis"].astype(str) if "basis" in g else pd.Series("basis not stated", index=g.index)
        unit = g["unit"].astype(str) if "unit" in g else pd.Series("t", index=g.index)
        tonnes = [f"{amount_text(t)} {u} {b}" for t, u, b in zip(g["stock_t"], unit, basis, strict=True)]
        days = [days_text(d) for d in g["days"]]
        fig.add_trace(go.Bar(x=g["commodity"], y=g["days"], name=str(holder),
                             customdata=np.c_[tonnes, days, (g["stock_usd"] / 1e6).round(2)],
                             hovertemplate="%{x}: %{customdata[1]} days of consumption<br>%{customdata[0]}<br>"
                                           "USD %{customdata[2]} m<extra>" + str(holder) + "</extra>"))
    for d, label in ((60, "JOGMEC 60 days"), (180, "high-risk 180 days")):
        fig.add_hline(y=d, line_dash="dot", line_color="#7f8c8d", annotation_text=label,
                      annotation_position="top left")
    fig.update_layout(barmode="group", height=420, template="plotly_white",
                      yaxis=dict(title="stock, days of consumption", automargin=True),
                      xaxis=dict(automargin=True), legend=dict(orientation="h", y=1.02, yanchor="bottom"),
                      margin=dict(l=60, r=20, t=40, b=60))
    return fig


def amount_text(v: float) -> str:
    """Tonnes as read: 3 significant figures below 1,000, whole numbers with separators above."""
    if pd.isna(v):
        return "–"
    a = abs(float(v))
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    return np.format_float_positional(float(v), precision=3, unique=False, fractional=False, trim="-")


def days_text(d: float) -> str:
    """Days of cover rounded as a planner reads them: whole days from 10, one decimal below, "< 0.1" for a trace."""
    if pd.isna(d):
        return "–"
    d = float(d)
    if d == 0:
        return "0"
    if d < 0.1:
        return "< 0.1"
    return f"{d:,.1f}".removesuffix(".0") if d < 10 else f"{d:,.0f}"


def delivery_timeline(timeline: pd.DataFrame) -> go.Figure:
    """Months to first production per project (median, P5–P95), selected projects highlighted."""
    t = timeline.sort_values("median_months", ascending=False)
    colour = np.where(t["selected"], "#2e8b57", "#1f4e79")
    label = [_wrap(f"{n[:60]} ({c})", 34) for n, c in zip(t["name"].astype(str), t["commodity"].astype(str),
                                                            strict=True)]
    fig = go.Figure(go.Bar(
        y=label, x=t["p95_months"] - t["p5_months"], base=t["p5_months"], orientation="h", marker_color=colour,
        opacity=0.45, name="P5–P95", hovertemplate="%{y}<br>P5–P95 %{base:.0f}–%{x:.0f}+base months<extra></extra>"))
    fig.add_trace(go.Scatter(y=label, x=t["median_months"], mode="markers", marker=dict(size=10, color=colour),
                             name="median", customdata=t["track"],
                             hovertemplate="%{y}<br>median %{x:.0f} months (%{customdata})<extra></extra>"))
    fig.update_layout(height=max(300, 40 * len(t) + 120), template="plotly_white", showlegend=False,
                      xaxis=dict(title="months to first production", rangemode="tozero"),
                      yaxis=dict(automargin=True), margin=dict(l=20, r=20, t=30, b=50))
    return fig


def _wrap(text: str, width: int) -> str:
    """Break a label into lines of at most ``width`` characters at spaces (Plotly's ``<br>``)."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width)) or text

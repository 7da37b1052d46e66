"""Plotly figures of the brief (pure: DataFrames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from critmin.reference.countries import country_name

PALETTE = ["#1f4e79", "#c0392b", "#2e8b57", "#8e44ad", "#d68910", "#117a65", "#7f8c8d", "#a04000"]


def criticality_matrix(matrix: pd.DataFrame, order: list[str] | None = None) -> go.Figure:
    """Supply risk (riskiest stage's HHI_WGI,t / 10, 0..1) vs importance (import value, USD, log) per importer.

    ``matrix`` columns: importer, commodity, importance_usd, supply_risk, priority.
    """
    fig = go.Figure()
    importers = [i for i in (order or []) if i in set(matrix["importer"])] or list(dict.fromkeys(matrix["importer"]))
    for i, imp in enumerate(importers):
        m = matrix[matrix["importer"] == imp]
        fig.add_trace(go.Scatter(
            x=m["importance_usd"], y=m["supply_risk"], mode="markers+text", text=m["commodity"],
            textposition="top center", name=imp, visible=(i == 0),
            marker=dict(size=np.where(m["priority"], 13, 8), color=np.where(m["priority"], "#c0392b", "#1f4e79"),
                        line=dict(width=1, color="white")),
            hovertemplate="%{text}<br>import value %{x:$,.0f}<br>supply-risk composite %{y:.2f}<extra>" + imp
                          + "</extra>"))
    buttons = [dict(label=imp, method="update",
                    args=[{"visible": [j == i for j in range(len(importers))]}, {"title.text": f"Criticality matrix · {imp}"}])
               for i, imp in enumerate(importers)]
    fig.update_layout(
        title=f"Criticality matrix · {importers[0] if importers else ''}", height=520,
        xaxis=dict(title="importance: import value of all traded forms (USD, log scale)", type="log"),
        yaxis=dict(title="supply risk: riskiest stage's HHI_WGI,t / 10", rangemode="tozero"),
        updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.15, yanchor="top")],
        margin=dict(l=60, r=20, t=70, b=60), showlegend=False, template="plotly_white")
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
                      xaxis=dict(tickangle=-40), template="plotly_white", margin=dict(l=60, r=20, t=30, b=140),
                      legend=dict(orientation="h", y=1.08))
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
                      legend=dict(orientation="h", y=1.08), margin=dict(l=200, r=20, t=40, b=50))
    return fig


def stockpile_days(plan: pd.DataFrame) -> go.Figure:
    """Optimal complementary stock in days of consumption per commodity × holder, with the 60/180-day rules."""
    fig = go.Figure()
    for holder, g in plan.groupby("holder", sort=False):
        fig.add_trace(go.Bar(x=g["commodity"], y=g["days"], name=str(holder),
                             customdata=np.c_[g["stock_t"], g["stock_usd"] / 1e6],
                             hovertemplate="%{x}: %{y:.0f} days<br>%{customdata[0]:,.0f} t · "
                                           "USD %{customdata[1]:,.1f} m<extra>" + str(holder) + "</extra>"))
    for d, label in ((60, "JOGMEC 60 days"), (180, "high-risk 180 days")):
        fig.add_hline(y=d, line_dash="dot", line_color="#7f8c8d", annotation_text=label,
                      annotation_position="top left")
    fig.update_layout(barmode="group", height=420, template="plotly_white",
                      yaxis=dict(title="stock, days of consumption"), legend=dict(orientation="h", y=1.1),
                      margin=dict(l=60, r=20, t=40, b=60))
    return fig


def delivery_timeline(timeline: pd.DataFrame) -> go.Figure:
    """Months to first production per project (median, P5–P95), selected projects highlighted."""
    t = timeline.sort_values("median_months", ascending=False)
    colour = np.where(t["selected"], "#2e8b57", "#1f4e79")
    label = t["name"].str.slice(0, 48) + " (" + t["commodity"].astype(str) + ")"
    fig = go.Figure(go.Bar(
        y=label, x=t["p95_months"] - t["p5_months"], base=t["p5_months"], orientation="h", marker_color=colour,
        opacity=0.45, name="P5–P95", hovertemplate="%{y}<br>P5–P95 %{base:.0f}–%{x:.0f}+base months<extra></extra>"))
    fig.add_trace(go.Scatter(y=label, x=t["median_months"], mode="markers", marker=dict(size=10, color=colour),
                             name="median", customdata=t["track"],
                             hovertemplate="%{y}<br>median %{x:.0f} months (%{customdata})<extra></extra>"))
    fig.update_layout(height=max(300, 34 * len(t) + 120), template="plotly_white", showlegend=False,
                      xaxis=dict(title="months from now to first production", rangemode="tozero"),
                      margin=dict(l=330, r=20, t=30, b=50))
    return fig

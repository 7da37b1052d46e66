"""Plotly figures of the brief (pure: DataFrames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from critmin.reference.countries import country_name

PALETTE = ["#1f4e79", "#c0392b", "#2e8b57", "#8e44ad", "#d68910", "#117a65", "#7f8c8d", "#a04000"]


def criticality_matrix(matrix: pd.DataFrame, order: list[str] | None = None) -> go.Figure:
    """Supply risk (composite percentile, 0..1) vs importance (import value, USD, log) per importer.

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
        yaxis=dict(title="supply risk: composite percentile (0–1)", range=[0, 1.08]),
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
        go.Bar(name="allied suppliers (MSP)", x=labels, y=stages["allied_share"], marker_color="#2e8b57",
               hovertemplate="%{x}<br>allied: %{y:.0%}<extra></extra>"),
    ])
    fig.update_layout(barmode="group", height=460, yaxis=dict(title="share of stage output", tickformat=".0%",
                                                                range=[0, 1.05]),
                      xaxis=dict(tickangle=-40), template="plotly_white", margin=dict(l=60, r=20, t=30, b=140),
                      legend=dict(orientation="h", y=1.08))
    return fig

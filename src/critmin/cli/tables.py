"""Rich table views for the terminal."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

KEY_INDICATORS = {
    "geopolrisk": ["hhi", "import_risk", "score", "price", "cf"],
    "eu-sr": ["hhi_wgi_t_global", "hhi_wgi_t_sourcing", "import_reliance", "supply_risk"],
    "usgs": ["disruption_potential", "trade_exposure", "economic_vulnerability", "supply_risk"],
    "hhi": None,
}
SORT_BY = {"geopolrisk": "score", "eu-sr": "supply_risk", "usgs": "supply_risk", "hhi": "hhi"}


def assessment_view(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """Wide, ranked view: one row per importer × commodity, key indicators as columns."""
    keep = KEY_INDICATORS.get(method)
    f = frame if keep is None else frame[frame["indicator"].isin(keep)]
    wide = f.pivot_table(index=["importer", "commodity", "year"], columns="indicator", values="value",
                         aggfunc="first", dropna=False).reset_index()
    cols = ["importer", "commodity", "year"] + [c for c in (keep or sorted(set(f["indicator"]))) if c in wide]
    wide = wide[cols]
    key = SORT_BY[method]
    wide = wide.sort_values(["importer", key], ascending=[True, False], na_position="last")
    wide.insert(0, "rank", wide.groupby("importer").cumcount() + 1)
    return wide.reset_index(drop=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v == 0:
            return "0"
        if abs(v) >= 1e15 or abs(v) < 1e-3:
            return f"{v:.3e}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(v)


def print_table(console: Console, frame: pd.DataFrame, title: str = "") -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for c in frame.columns:
        table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(frame[c]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def print_priorities(console: Console, table: pd.DataFrame, meta: dict, top: int = 10) -> None:
    th = meta["thresholds"]
    share = 100 * float(th["single_supplier_share"])
    console.print(f"[bold]Priority minerals[/] · production {meta['year']} (e = USGS estimate) · trade "
                  f"{meta['trade_year']} · export controls as of {meta['as_of']} · priority (●) if a non-allied "
                  f"({meta['allies']}) supplier holds ≥ {share:.0f}% of any stage, or import reliance ≥ {share:.0f}% "
                  f"with one non-allied partner ≥ that share of imports, or a non-allied holder of ≥ "
                  f"{100 * float(th['control_share']):.0f}% of a stage restricts its exports; never for a net "
                  "exporter · ranked by composite = riskiest stage's HHI_WGI,t/10 × import reliance × impact")
    for imp, grp in table.groupby("importer", sort=False):
        n = int(grp["priority"].sum())
        t = Table(title=f"{imp} · {n} priorities of {len(grp)} commodities (first {min(top, len(grp))} shown)",
                  title_justify="left", show_lines=True)
        for c, j in (("#", "right"), ("commodity", "left"), ("priority", "center"), ("composite", "right"),
                     ("stage", "left"), ("reliance", "right"), ("GeoPolRisk", "right"), ("EU SR", "right"),
                     ("USGS SR", "right"), ("why", "left")):
            t.add_column(c, justify=j, overflow="fold")
        for r in grp.head(top).itertuples(index=False):
            rel = (f"{100 * r.reliance:.0f}%" if pd.notna(r.reliance) else
                   (f"{100 * r.reliance_low:.0f}–{100 * r.reliance_high:.0f}%" if pd.notna(r.reliance_low)
                    else "unknown"))
            if isinstance(r.reliance_code, str) and r.reliance_code:
                rel += f" ({r.reliance_code})"
            t.add_row(str(r.rank), r.commodity, "●" if r.priority else "", _fmt(r.composite),
                      str(r.risk_stage) if isinstance(r.risk_stage, str) else "–", rel, _fmt(r.geopolrisk_score),
                      _fmt(r.eu_sr), _fmt(r.usgs_sr), escape(str(r.reason)))
        console.print(t)
    for note in meta.get("notes", []):
        console.print(f"[dim]note: {note}[/]")


def print_sources(console: Console, cat) -> None:
    man = cat.manifest
    t = Table(title=f"critmin reference dataset · built from {len(man['sources'])} sources", title_justify="left",
              show_lines=True)
    for c in ("source", "publisher", "licence", "years", "rows", "title / url"):
        t.add_column(c, overflow="fold")
    for s in man["sources"]:
        t.add_row(s["id"], s.get("publisher", ""), s.get("licence", ""), s.get("years", ""),
                  str(s.get("rows", "")), f"{s.get('title', '')}\n{s.get('url', '')}")
    console.print(t)
    tt = Table(title="tables", title_justify="left")
    for c in ("table", "rows", "sha256 (content)"):
        tt.add_column(c)
    for name, info in man["tables"].items():
        tt.add_row(name, str(info["rows"]), info["content_sha256"][:16])
    console.print(tt)

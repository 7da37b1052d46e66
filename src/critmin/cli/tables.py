"""Rich table views for the terminal."""

from __future__ import annotations

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
    from critmin.report.export import human

    return human(v)


#: Columns that identify a row: repeated on every page of a table too wide for the terminal.
KEY_COLUMNS = {"rank", "#", "importer", "consumer", "holder", "commodity", "stage", "country", "project_id",
               "instrument", "method", "preset", "scenario", "indicator", "section", "quantity", "year", "month",
               "period"}
#: Text wider than this wraps inside its column instead of widening the table.
TEXT_WIDTH = 48


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def print_table(console: Console, frame: pd.DataFrame, title: str = "") -> None:
    """Print ``frame`` in full: numbers as people read them, every header whole.

    A table wider than the terminal is cut into pages of whole columns, each repeating the columns that
    identify a row (importer, commodity, stage …), instead of squeezing headers into "allied_share_…".
    Long text wraps inside its column.
    """
    cells = {c: [_fmt(v) for v in frame[c].tolist()] for c in frame.columns}
    numeric = {c: _is_numeric(frame[c]) for c in frame.columns}
    widths = {}
    for c in frame.columns:
        longest = max((len(x) for x in cells[c]), default=0)
        widths[c] = max(len(str(c)), min(longest, TEXT_WIDTH) if not numeric[c] else longest)
    cols = list(frame.columns)
    keys = []
    for c in cols[:4]:
        if str(c) not in KEY_COLUMNS:
            break
        keys.append(c)
    room = max(console.width, 40) - 1

    def cost(group) -> int:
        return sum(widths[c] + 3 for c in group)

    def split(limit: int) -> list[list]:
        rest = [c for c in cols if c not in keys]
        out: list[list] = []
        page: list = []
        for c in rest:
            if page and cost(keys) + cost([*page, c]) > limit:
                out.append(keys + page)
                page = []
            page.append(c)
        return [*out, keys + page]

    if cost(cols) <= room or len(cols) <= len(keys) + 1:
        pages = [cols]
    else:   # as few pages as fit, then the columns spread evenly over them
        pages = split(room)
        even = cost(keys) + -(-cost([c for c in cols if c not in keys]) // len(pages))
        for limit in range(even, room):
            balanced = split(limit)
            if len(balanced) == len(pages):
                pages = balanced
                break
    n = len(cols)
    for i, page in enumerate(pages):
        label = title
        if len(pages) > 1:
            shown = [cols.index(c) + 1 for c in page if c not in keys]
            label = (f"{title} · " if title else "") + f"columns {shown[0]}–{shown[-1]} of {n} ({i + 1}/{len(pages)})"
        table = Table(title=escape(label) if label else None, title_justify="left", show_lines=False)
        for c in page:
            table.add_column(escape(str(c)), justify="right" if numeric[c] else "left", min_width=len(str(c)),
                             overflow="fold", no_wrap=numeric[c])
        for r in range(len(frame)):
            table.add_row(*[escape(cells[c][r]) for c in page])
        console.print(table)
        if not len(frame) and i == 0:
            console.print("[dim](no rows)[/]")
            break


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
    """Sources and tables of the catalog; with ``--data``, the user's files and the tables they replace."""
    from critmin.reference.build import content_hash

    man = cat.manifest
    user = getattr(cat, "user", {}) or {}
    t = Table(title=f"critmin reference dataset · built from {len(man['sources'])} sources"
              + (f" · your tables from {escape(str(cat.data_dir))}" if user else ""), title_justify="left",
              show_lines=True)
    for c in ("source", "publisher", "licence", "years", "rows", "title / url"):
        t.add_column(c, overflow="fold")
    for name, frame in user.items():
        years = sorted({int(y) for y in frame["year"].dropna()}) if "year" in frame else []
        t.add_row(f"user:{name}.csv", "user-supplied", "as supplied by the user",
                  f"{years[0]}-{years[-1]}" if years else "", _fmt(len(frame)),
                  escape(f"{name}.csv\n{cat.data_dir}"))
    for s in man["sources"]:
        t.add_row(s["id"], s.get("publisher", ""), s.get("licence", ""), s.get("years", ""),
                  _fmt(s.get("rows", "")), escape(f"{s.get('title', '')}\n{s.get('url', '')}"))
    console.print(t)
    tt = Table(title="tables", title_justify="left")
    for c in ("table", "rows", "sha256 (content)", "from"):
        tt.add_column(c, justify="right" if c == "rows" else "left")
    for name, info in man["tables"].items():
        if name in user:
            frame = user[name]
            tt.add_row(name, _fmt(len(frame)), content_hash(frame)[:16], f"your {name}.csv (replaces the bundled table)")
        else:
            tt.add_row(name, _fmt(info["rows"]), info["content_sha256"][:16], "bundled")
    for name in user:
        if name not in man["tables"]:
            tt.add_row(name, _fmt(len(user[name])), content_hash(user[name])[:16], f"your {name}.csv")
    console.print(tt)

"""Data (``/data``): every source with publisher, licence and years; every table; the rows behind a number.

Each view's sources block links here (``/data#src-<source id>``). ``?table=NAME`` (with optional ``commodity``,
``country``, ``year``) lists that table's rows with their source and, for the curated tables, the row's
citation; ``format=csv|xlsx`` downloads them (``table=sources`` or ``tables`` for the two lists).
"""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Query, Request

from critmin.dashboard.common import BadInput, cached, catalog, check_format, data_key, download, render
from critmin.reference.catalog import ALL_TABLES

router = APIRouter()

#: Rows of a table shown on the page (the download has every matching row).
MAX_ROWS = 200


def sources_frame(request: Request) -> pd.DataFrame:
    """Every source of the dataset (and the user's files) as one table, without the per-file checksums."""
    cat = catalog(request)
    rows = [{k: v for k, v in s.items() if k != "files"} for s in cat.manifest["sources"]]
    for name, frame in cat.user.items():
        years = sorted({int(y) for y in frame["year"].dropna()}) if "year" in frame else []
        rows.insert(0, {"id": f"user:{name}", "publisher": "user-supplied", "title": f"{name}.csv",
                        "licence": "as supplied by the user", "url": "", "version": "",
                        "years": f"{years[0]}–{years[-1]}" if years else "", "rows": len(frame)})
    cols = ["id", "publisher", "title", "licence", "years", "rows", "version", "url"]
    return pd.DataFrame(rows).reindex(columns=cols)


def tables_frame(request: Request) -> pd.DataFrame:
    cat = catalog(request)
    rows = []
    for name, info in cat.manifest["tables"].items():
        rows.append({"table": name, "rows": len(cat.user[name]) if name in cat.user else info["rows"],
                     "from": f"your {name}.csv" if name in cat.user else "bundled",
                     "sources": ", ".join(info.get("sources", [])), "columns": ", ".join(info.get("columns", [])),
                     "content_sha256": info.get("content_sha256", "")})
    return pd.DataFrame(rows)


def table_rows(request: Request, table: str, commodity: str | None, country: str | None,
               year: int | None) -> pd.DataFrame:
    cat = catalog(request)
    frame = cat.table(table)
    if commodity:
        if "commodity" not in frame.columns:
            raise BadInput("commodity", f"table {table!r} has no commodity column")
        col = frame["commodity"].astype(str)
        multi = col.str.contains(";", regex=False)   # curated rows may list several commodities
        mask = col == commodity
        if multi.any():
            mask |= multi & col.where(multi, "").str.split(";").map(lambda xs: commodity in xs)
        frame = frame[mask]
    if country:
        cols = [c for c in ("country", "exporter", "importer", "partner") if c in frame.columns]
        if not cols:
            raise BadInput("country", f"table {table!r} has no country column")
        code = country.strip().upper()
        mask = pd.Series(False, index=frame.index)
        for c in cols:
            mask |= frame[c].astype(str) == code
        frame = frame[mask]
    if year is not None:
        if "year" not in frame.columns:
            raise BadInput("year", f"table {table!r} has no year column")
        frame = frame[pd.to_numeric(frame["year"], errors="coerce") == year]
    return frame.reset_index(drop=True)


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values (NaN, NA, None) as ``None``, which the page leaves blank."""
    return frame.astype(object).where(frame.notna(), None)


@router.get("/data", name="data")
def data(request: Request,
         table: str | None = Query(None, description="a dataset table to list (or sources|tables to download)"),
         commodity: str | None = Query(None, description="only rows of this commodity"),
         country: str | None = Query(None, description="only rows of this country (ISO3)"),
         year: int | None = Query(None, description="only rows of this year"),
         format: str | None = Query(None, description="csv or xlsx: download")):
    """The data page, or a list as CSV/XLSX."""
    fmt = check_format(format)
    cat = catalog(request)
    known = list(dict.fromkeys([*ALL_TABLES, *cat.user]))
    if table is not None and table not in (*known, "sources", "tables"):
        from critmin import suggest

        hint = suggest.did_you_mean(table, known)
        raise BadInput("table", f"{table!r} is not a dataset table" + (f"; {hint}" if hint else "")
                       + f" (known: {', '.join(known)})")
    sources = cached(("data-sources", data_key(request)), lambda: sources_frame(request))
    tables = cached(("data-tables", data_key(request)), lambda: tables_frame(request))
    rows = None
    if table in known:
        rows = cached(("data-rows", data_key(request), table, commodity, country, year),
                      lambda: table_rows(request, table, commodity, country, year))
    if fmt:
        if table is None or table == "sources":
            return download(sources, fmt, "critmin-sources")
        if table == "tables":
            return download(tables, fmt, "critmin-tables")
        name = "-".join(str(x) for x in (table, commodity, country, year) if x)
        return download(rows, fmt, f"critmin-{name}")
    return render(request, "data.html", source_rows=sources.to_dict("records"), table_rows=tables.to_dict("records"),
                  table=table if table in known else None,
                  rows=None if rows is None else _shown(rows.head(MAX_ROWS)),
                  n_rows=0 if rows is None else len(rows), max_rows=MAX_ROWS, commodity=commodity or "",
                  country=country or "", year=year, known=known, data_dir=request.app.state.data)

"""Tables as files: CSV, JSON, Parquet, XLSX (with a Sources sheet) and Markdown; the format of an output.

``write_atomic`` lives in :mod:`critmin.files` (the maps write through it too); it is re-exported here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.errors import ConfigError
from critmin.files import write_atomic

__all__ = ["EXTENSIONS", "FILE_FORMATS", "FORMATS", "human", "output_format", "render_bytes", "render_markdown",
           "write_atomic"]

#: ``--format`` values: ``table`` is the terminal view, the others are file formats.
FORMATS = ("table", "csv", "json", "parquet", "xlsx", "md")
FILE_FORMATS = FORMATS[1:]
#: File name endings → format (what ``--out`` implies when ``--format`` is not given).
EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx",
              ".md": "md", ".markdown": "md", ".txt": "md"}
#: Formats that are not text: they need a file.
BINARY = ("parquet", "xlsx")


def output_format(fmt: str | None, out: str | Path | None, *, allowed: tuple[str, ...] = FORMATS) -> str:
    """The format to write: ``--format``, else the ``--out`` file's extension, else ``table``.

    ``table`` with a file means "follow the extension". Raises :class:`ConfigError` (one line, naming the
    options) for an unknown format, a format that contradicts the extension (``--format csv --out p.xlsx``),
    an extension critmin cannot tell the format from, or a binary format without ``--out``.
    """
    fmt = (fmt or "table").strip().lower()
    if fmt not in allowed:
        from critmin.suggest import did_you_mean

        hint = did_you_mean(fmt, allowed)
        raise ConfigError(f"--format {fmt!r}: {hint + ' ' if hint else ''}expected one of {', '.join(allowed)}")
    if out is None:
        if fmt in BINARY:
            raise ConfigError(f"--format {fmt} needs --out FILE (it is not text)")
        return fmt
    suffix = Path(out).suffix.lower()
    implied = EXTENSIONS.get(suffix)
    if fmt == "table":
        if implied is None:
            known = ", ".join(sorted(set(EXTENSIONS) - {".pq", ".markdown", ".txt"}))
            what = f"the extension {suffix!r} names no format" if suffix else "no extension to tell the format from"
            raise ConfigError(f"--out {str(out)!r}: {what}; end the name with {known} or give --format")
        if implied not in allowed:
            raise ConfigError(f"--out {str(out)!r}: {implied} is not an output of this command "
                              f"(expected one of {', '.join(f for f in allowed if f != 'table')})")
        return implied
    if implied is not None and implied != fmt:
        raise ConfigError(f"--format {fmt} does not match --out {str(out)!r} (a {suffix} name means {implied}); "
                          "make them agree or drop --format")
    return fmt


def render_bytes(frame: pd.DataFrame, fmt: str, sources: list[dict] | None = None) -> bytes:
    """Serialise ``frame`` in ``fmt`` (a file format, not ``table``)."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if fmt == "json":
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return (json.dumps({"rows": records, "sources": sources or []}, indent=1, ensure_ascii=False,
                           default=_json_default)
                + "\n").encode("utf-8")
    if fmt == "parquet":
        import io

        buf = io.BytesIO()
        _parquet_safe(frame).to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "xlsx":
        import io

        buf = io.BytesIO()
        with pd.ExcelWriter(buf, engine="openpyxl") as xw:
            _excel_safe(frame).to_excel(xw, sheet_name="data", index=False)
            pd.DataFrame(sources or [], columns=["id", "publisher", "title", "licence", "url"]).to_excel(
                xw, sheet_name="Sources", index=False)
        return buf.getvalue()
    if fmt == "md":
        return render_markdown(frame, sources).encode("utf-8")
    raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FILE_FORMATS)}")


def render_markdown(frame: pd.DataFrame, sources: list[dict] | None = None, title: str = "") -> str:
    """A GitHub-flavoured Markdown table (numbers as in the terminal view), then the sources."""
    def cell(v) -> str:
        return human(v).replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in frame.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    if sources:
        lines += ["", "Sources:", ""]
        lines += [f"- {s.get('id', '')}: {s.get('publisher', '')}, {s.get('title', '')} ({s.get('licence', '')})"
                  + (f" {s['url']}" if s.get("url") else "") for s in sources]
    return "\n".join(lines) + "\n"


def human(v) -> str:
    """A number as people read it: thousands separators, at most 4 significant digits below 1,000, no float
    noise (``305199999.9999999`` → ``305,200,000``); NaN as an en dash; anything else as ``str``."""
    if v is None or v is pd.NA or v is pd.NaT:
        return "–"
    if isinstance(v, bool) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "b"):
        return str(bool(v))
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        v = int(v)
        return f"{v:,}" if abs(v) >= 10_000 else str(v)   # years stay 2024, counts get separators
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        v = float(v)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1e15:
            return f"{v:.3e}"
        if a < 1e-4:   # positional, as people read a trace: 2.58e-05 → 0.0000258
            return np.format_float_positional(v, precision=4, unique=False, fractional=False, trim="-")
        if a >= 1000:
            return f"{v:,.0f}"
        text = f"{v:.4g}"
        return f"{float(text):,.0f}" if "e" in text else text
    return str(v)


def _json_default(value):
    """numpy scalars and other non-JSON types (full float precision is kept by json for Python floats)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of mixed Python objects (lists, dicts, mixed types) as text, so any table can go to Parquet."""
    out = frame
    for c in frame.columns:
        if frame[c].dtype == object:
            kinds = {type(v) for v in frame[c].dropna()}
            if len(kinds) > 1 or kinds & {list, dict, tuple, set}:
                out = out.assign(**{str(c): frame[c].map(lambda v: v if v is None or v is pd.NA or
                                                         (isinstance(v, float) and math.isnan(v)) else str(v))})
    return out


def _excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel cells take no lists, dicts or time zones: those become text."""
    out = _parquet_safe(frame)
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out = out.assign(**{str(c): out[c].dt.tz_localize(None)})
    return out

"""Write tables atomically (nothing half-written): CSV, JSON, Parquet, XLSX (with a Sources sheet).

``write_atomic`` lives in :mod:`critmin.files` (the maps write through it too); it is re-exported here.
"""

from __future__ import annotations

import json

import pandas as pd

from critmin.errors import ConfigError
from critmin.files import write_atomic

__all__ = ["FORMATS", "render_bytes", "write_atomic"]

FORMATS = ("table", "csv", "json", "parquet", "xlsx")


def render_bytes(frame: pd.DataFrame, fmt: str, sources: list[dict] | None = None) -> bytes:
    """Serialise ``frame`` in ``fmt`` (not ``table``)."""
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
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "xlsx":
        import io

        buf = io.BytesIO()
        with pd.ExcelWriter(buf, engine="openpyxl") as xw:
            frame.to_excel(xw, sheet_name="data", index=False)
            pd.DataFrame(sources or [], columns=["id", "publisher", "title", "licence", "url"]).to_excel(
                xw, sheet_name="Sources", index=False)
        return buf.getvalue()
    raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _json_default(value):
    """numpy scalars and other non-JSON types (full float precision is kept by json for Python floats)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)

"""Bring-your-own-data: read and validate the user's long tables (``--data DIR``).

Each file is checked once, here at the boundary, and every problem is reported
with the file, the 1-based line number (header = line 1) and the column, as a
:class:`~critmin.errors.DataError`. Tables a user does not give fall back to the
bundled ones (see :mod:`critmin.reference.catalog`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.constants import RESIDUAL, ROW_COUNTRY, ROW_RESIDUAL, ROW_TOTAL, STAGES, WGI_INDICATORS, WORLD
from critmin.errors import DataError, UnitError
from critmin.reference.countries import is_valid_code
from critmin.units import mass_factor


@dataclass(frozen=True)
class Field:
    name: str
    kind: str            # text | stage | country | year | number | nonneg | indicator | mass_unit | period
    required: bool = True
    default: str | None = None


#: The user-table formats (documented in the README). Optional fields have defaults.
FORMATS: dict[str, tuple[Field, ...]] = {
    "production": (
        Field("commodity", "text"), Field("stage", "stage"), Field("country", "country"),
        Field("year", "year"), Field("value", "nonneg"), Field("unit", "mass_unit"),
        Field("basis", "text", required=False, default="as given by user"),
    ),
    "trade": (
        Field("commodity", "text"), Field("exporter", "country"), Field("importer", "country"),
        Field("year", "year"), Field("quantity", "nonneg_or_empty"), Field("unit", "mass_unit"),
        Field("value_usd", "nonneg"),
        Field("stage", "stage", required=False, default="mine"),
        Field("hs6", "text_or_empty", required=False, default=""),
        # free text (HS92, HS17, ...); empty when not given, like the hs6 it qualifies
        Field("nomenclature", "text_or_empty", required=False, default=""),
    ),
    "governance": (
        Field("country", "country"), Field("year", "year"), Field("indicator", "indicator"),
        Field("value", "number"),
    ),
    "prices": (
        Field("commodity", "text"), Field("period", "period"), Field("value", "nonneg"),
        Field("unit", "text"),
        Field("series", "text", required=False, default="user"),
        Field("frequency", "text", required=False, default="annual"),
    ),
}

USER_TABLES = tuple(FORMATS)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the file as UTF-8", file=path.name, row=line) from None


def _rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty (expected a header row)", file=path.name, row=1) from None
    header = [h.strip() for h in header]
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise DataError(f"expected {len(header)} fields as in the header, found {len(fields)}",
                                file=path.name, row=line)
            rows.append((line, [f.strip() for f in fields]))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=path.name, row=reader.line_num) from None
    return header, rows


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def read_table(path: Path, table: str) -> pd.DataFrame:
    """Read and validate one user table; return it in critmin's long format.

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, comma-separated, one header row).
    table : str
        One of :data:`USER_TABLES`.

    Raises
    ------
    DataError
        Naming file, line and column of the first problem found.
    """
    fields = FORMATS[table]
    text = _decode(path)
    header, rows = _rows(path, text)
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"duplicate column(s) {dup}", file=path.name, row=1)
    known = {f.name for f in fields}
    for f in fields:
        if f.required and f.name not in header:
            raise DataError(f"missing required column (expected columns: "
                            f"{', '.join(x.name for x in fields if x.required)})",
                            file=path.name, row=1, column=f.name)
    extra = [h for h in header if h not in known and h != "source"]
    if extra:
        raise DataError(f"unknown column(s) {extra}; allowed: {sorted(known | {'source'})}",
                        file=path.name, row=1, column=extra[0])
    if not rows:
        raise DataError("no data rows", file=path.name, row=2)
    idx = {h: i for i, h in enumerate(header)}
    out: dict[str, list] = {f.name: [] for f in fields}
    factors: list[float] = []
    for line, values in rows:
        for f in fields:
            text_value = values[idx[f.name]] if f.name in idx else (f.default or "")
            try:
                out[f.name].append(_coerce(f, text_value))
            except (ValueError, UnitError) as exc:
                raise DataError(_explain(f, text_value, exc), file=path.name, row=line, column=f.name) from None
        if "unit" in out and fields[[x.name for x in fields].index("unit")].kind == "mass_unit":
            factors.append(mass_factor(out["unit"][-1]))
    frame = pd.DataFrame(out)
    frame["source"] = f"user:{path.name}"
    if factors:  # harmonise every mass to metric tonnes at the boundary
        f_arr = np.asarray(factors)
        for col in ("value", "quantity"):
            if col in frame:
                frame[col] = frame[col].astype(float) * f_arr
        frame["unit"] = "t"
    frame["_line"] = [line for line, _ in rows]
    _check_duplicates(frame, table, path)
    frame = frame.drop(columns="_line")
    if table == "production":
        frame["row_type"] = np.select([frame.country.eq(RESIDUAL), frame.country.eq(WORLD)],
                                      [ROW_RESIDUAL, ROW_TOTAL], ROW_COUNTRY)
        frame["estimated"] = False
        frame["series"] = "user"
    return frame


_KEYS = {
    "production": ["commodity", "stage", "country", "year"],
    "trade": ["commodity", "stage", "nomenclature", "hs6", "exporter", "importer", "year"],
    "governance": ["country", "year", "indicator"],
    "prices": ["commodity", "series", "period"],
}


def _check_duplicates(frame: pd.DataFrame, table: str, path: Path) -> None:
    keys = _KEYS[table]
    dup = frame.duplicated(keys, keep="first")
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise DataError(f"duplicate row for { {k: first[k] for k in keys} }",
                        file=path.name, row=int(first["_line"]))


def _coerce(f: Field, v: str):
    kind = f.kind
    if kind in ("text", "period"):
        if not v:
            raise ValueError("empty")
        return v
    if kind == "text_or_empty":
        return v
    if kind == "stage":
        if v not in STAGES:
            raise ValueError("stage")
        return v
    if kind == "country":
        if not is_valid_code(v):
            raise ValueError("country")
        return v
    if kind == "year":
        year = int(v)
        if not 1800 <= year <= 2200:
            raise ValueError("year range")
        return year
    if kind == "number":
        return _number(v)
    if kind in ("nonneg", "nonneg_or_empty"):
        if kind == "nonneg_or_empty" and v == "":
            return float("nan")
        value = _number(v)
        if value < 0:
            raise ValueError("negative")
        return value
    if kind == "indicator":
        if v not in WGI_INDICATORS:
            raise ValueError("indicator")
        return v
    if kind == "mass_unit":
        mass_factor(v)
        return v
    raise AssertionError(kind)


def _explain(f: Field, v: str, exc: Exception) -> str:
    shown = repr(v)
    match f.kind:
        case "country":
            return (f"unknown country code {shown} (expected ISO 3166 alpha-3 such as USA, JPN, CHN; "
                    "ROW/WLD for residual/total)")
        case "stage":
            return f"unknown stage {shown} (expected one of {', '.join(STAGES)})"
        case "year":
            return f"{shown} is not a year"
        case "indicator":
            return f"unknown WGI indicator {shown} (expected one of {', '.join(WGI_INDICATORS)})"
        case "mass_unit":
            return str(exc)
        case "nonneg" | "nonneg_or_empty":
            if str(exc) == "negative":
                return f"negative value {shown} (must be >= 0)"
            return f"{shown} is not a number"
        case "number":
            return f"{shown} is not a number"
    return f"empty value (the column '{f.name}' is required)"


def read_dir(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read every user table present in ``data_dir`` (``production.csv``, ``trade.csv``, ...)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"--data directory {str(d)!r} does not exist or is not a directory")
    found = {t: d / f"{t}.csv" for t in USER_TABLES if (d / f"{t}.csv").is_file()}
    if not found:
        raise DataError(f"--data directory {d.name!r} holds none of "
                        f"{', '.join(t + '.csv' for t in USER_TABLES)}")
    return {t: read_table(p, t) for t, p in found.items()}

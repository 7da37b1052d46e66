"""Bring-your-own-data: read and validate the user's long tables (``--data DIR``).

Each file is checked once, here at the boundary, against the row model of its
table (:data:`FORMATS`, pydantic), and every problem is reported with the file,
the 1-based line number (header = line 1) and the column, as a
:class:`~critmin.errors.DataError`. Tables a user does not give fall back to the
bundled ones (see :mod:`critmin.reference.catalog`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from critmin.constants import RESIDUAL, ROW_COUNTRY, ROW_RESIDUAL, ROW_TOTAL, STAGES, WGI_INDICATORS, WORLD
from critmin.errors import DataError, UnitError
from critmin.reference.countries import is_valid_code
from critmin.units import mass_factor


@dataclass(frozen=True)
class Kind:
    """What a column holds; :func:`_coerce` checks and converts the cell text of each kind."""

    name: str


def _cell(kind: str) -> Any:
    """A column type: the raw cell text (stripped) → its value, or an error of type ``kind`` (see :func:`_explain`)."""

    def check(value: str) -> Any:
        try:
            return _coerce(kind, value)
        except (ValueError, UnitError) as exc:
            raise PydanticCustomError(kind, "{reason}", {"reason": str(exc)}) from None

    return Annotated[Any, Kind(kind), PlainValidator(check)]


Text = _cell("text")                        # non-empty text
TextOrEmpty = _cell("text_or_empty")
Period = _cell("period")                    # non-empty text (the monitor checks its grammar)
Stage = _cell("stage")                      # one of constants.STAGES
Country = _cell("country")                  # ISO3, ROW or WLD
Year = _cell("year")                        # integer in 1800..2200
Indicator = _cell("indicator")              # a WGI indicator code
Number = _cell("number")                    # finite float
NonNeg = _cell("nonneg")                    # finite float >= 0
NonNegOrEmpty = _cell("nonneg_or_empty")    # finite float >= 0, or empty (NaN)
MassUnit = _cell("mass_unit")               # a mass unit of critmin.units (converted to t)


class UserRow(BaseModel):
    """One row of a user table. Fields in order; a field with a default is an optional column (the default is
    checked like a cell). A ``source`` column is allowed in every table and replaced by ``user:<file>``."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class ProductionRow(UserRow):
    """``production.csv``: output of a stage in a country and year, in any mass unit (converted to t)."""

    commodity: Text
    stage: Stage
    country: Country
    year: Year
    value: NonNeg
    unit: MassUnit
    basis: Text = "as given by user"


class TradeRow(UserRow):
    """``trade.csv``: bilateral flows; ``quantity`` may be empty (value only)."""

    commodity: Text
    exporter: Country
    importer: Country
    year: Year
    quantity: NonNegOrEmpty
    unit: MassUnit
    value_usd: NonNeg
    stage: Stage = "mine"
    hs6: TextOrEmpty = ""
    # free text (HS92, HS17, ...); empty when not given, like the hs6 it qualifies
    nomenclature: TextOrEmpty = ""


class GovernanceRow(UserRow):
    """``governance.csv``: one WGI estimate."""

    country: Country
    year: Year
    indicator: Indicator
    value: Number


class PriceRow(UserRow):
    """``prices.csv``: one price observation; ``unit`` is free text (a price unit, not converted)."""

    commodity: Text
    period: Period
    value: NonNeg
    unit: Text
    series: Text = "user"
    frequency: Text = "annual"


#: The user-table formats (documented in the README): table → row model.
FORMATS: dict[str, type[UserRow]] = {
    "production": ProductionRow, "trade": TradeRow, "governance": GovernanceRow, "prices": PriceRow,
}

USER_TABLES = tuple(FORMATS)


def column_kind(model: type[UserRow], column: str) -> str:
    """The :class:`Kind` of a column of a row model."""
    return next(m.name for m in model.model_fields[column].metadata if isinstance(m, Kind))


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
    if len(header) == 1 and ";" in header[0]:
        raise DataError("the file is separated by semicolons; critmin reads comma-separated CSV (save it as "
                        "'CSV UTF-8, comma-delimited')", file=path.name, row=1)
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
        One of :data:`USER_TABLES` (its row model in :data:`FORMATS`).

    Raises
    ------
    DataError
        Naming file, line and column of the first problem found.
    """
    model = FORMATS[table]
    fields = model.model_fields
    text = _decode(path)
    header, rows = _rows(path, text)
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"duplicate column(s) {dup}", file=path.name, row=1)
    required = [name for name, f in fields.items() if f.is_required()]
    for name in required:
        if name not in header:
            raise DataError(f"missing required column (expected columns: {', '.join(required)})",
                            file=path.name, row=1, column=name)
    extra = [h for h in header if h not in fields and h != "source"]
    if extra:
        raise DataError(f"unknown column(s) {extra}; allowed: {sorted(set(fields) | {'source'})}",
                        file=path.name, row=1, column=extra[0])
    if not rows:
        raise DataError("no data rows", file=path.name, row=2)
    idx = {h: i for i, h in enumerate(header)}
    cells = [(name, idx.get(name), f.default) for name, f in fields.items()]
    try:
        records = _rows_adapter(model).validate_python(
            [{name: values[i] if i is not None else default for name, i, default in cells} for _, values in rows])
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        index, column = int(err["loc"][0]), str(err["loc"][1])
        raise DataError(_explain(err["type"], column, err["input"], err["ctx"]["reason"]), file=path.name,
                        row=rows[index][0], column=column) from None
    out = {name: [r[name] for r in records] for name in fields}
    frame = pd.DataFrame(out)
    frame["source"] = f"user:{path.name}"
    if "unit" in fields and column_kind(model, "unit") == "mass_unit":
        # harmonise every mass to metric tonnes at the boundary
        f_arr = np.asarray([mass_factor(u) for u in out["unit"]])
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


_ADAPTERS: dict[type[UserRow], TypeAdapter] = {}


def _rows_adapter(model: type[UserRow]) -> TypeAdapter:
    """Validator of a list of rows of ``model``, every column given (absent optional ones as their default).

    The rows are validated as TypedDicts of the model's column types: the same checks, without building a
    model instance per row (twice as fast on a large trade table).
    """
    if model not in _ADAPTERS:
        cells = TypedDict(f"{model.__name__}Cells", {n: f.rebuild_annotation() for n, f in model.model_fields.items()})
        _ADAPTERS[model] = TypeAdapter(list[with_config(extra="forbid")(cells)])
    return _ADAPTERS[model]


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
        shown = ", ".join(f"{k}={first[k].item() if hasattr(first[k], 'item') else first[k]}" for k in keys)
        raise DataError(f"duplicate row for {shown}",
                        file=path.name, row=int(first["_line"]))


def _coerce(kind: str, v: str):
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


def _explain(kind: str, column: str, v: str, reason: str) -> str:
    """The message for a cell of ``column`` that failed its ``kind`` check (``reason`` from :func:`_coerce`)."""
    shown = repr(v)
    match kind:
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
            return reason
        case "nonneg" | "nonneg_or_empty":
            if reason == "negative":
                return f"negative value {shown} (must be >= 0)"
            return f"{shown} is not a number"
        case "number":
            return f"{shown} is not a number"
    return f"empty value (the column '{column}' is required)"


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

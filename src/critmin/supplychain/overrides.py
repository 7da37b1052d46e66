"""User overrides of the hazards: a YAML or CSV file read and validated once, at the boundary, and applied to
the hazards table. The one place of the Monte Carlo that reads a file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator
from pydantic_core import PydanticCustomError

from critmin.constants import STAGES
from critmin.contracts import parse_yaml, validate
from critmin.errors import DataError
from critmin.supplychain.measures import ALL, MEASURES, WILD

_OVERRIDE_COLUMNS = {"country", "commodity", "stage", "target", "p_annual", "duration_months", "measure",
                     "magnitude_lo", "magnitude_hi", "reason"}


def apply_overrides(table: pd.DataFrame, rows: list[dict] | None, file: str | None) -> pd.DataFrame:
    """The hazards table with the user's rows (from :func:`load_overrides`) applied; a row the table lacks
    is added. Each changed row's ``source`` names the file and line."""
    if not rows:
        return table
    table = table.copy()
    for r in rows:
        line = r.get("_line")
        key = (r["country"], r.get("commodity", WILD), r.get("stage", WILD), r.get("target", ALL))
        mask = ((table["country"] == key[0]) & (table["commodity"] == key[1]) & (table["stage"] == key[2])
                & (table["target"] == key[3]))
        if not mask.any():
            new = dict.fromkeys(table.columns, np.nan)
            new.update({"country": key[0], "commodity": key[1], "stage": key[2], "target": key[3], "n_events": 0,
                        "events": "", **{f"w_{m}": float(m == "disruption") for m in MEASURES}})
            table = pd.concat([table, pd.DataFrame([new])], ignore_index=True)
            mask = table.index == table.index[-1]
        if "p_annual" in r:
            p = r["p_annual"]
            table.loc[mask, ["p_annual", "shape", "exposure_years"]] = [p, np.nan, np.nan]
            table.loc[mask, "rate_per_year"] = -math.log1p(-p) if p < 1 else np.inf
        if "measure" in r:
            for m in MEASURES:
                table.loc[mask, f"w_{m}"] = float(m == r["measure"])
        for col in ("duration_months", "magnitude_lo", "magnitude_hi"):
            if col in r:
                table.loc[mask, col] = r[col]
        table.loc[mask, "source"] = f"override ({file or 'mapping'}{f', line {line}' if line else ''})"
    return table


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read user hazard overrides from YAML or CSV, validated once at the boundary.

    YAML::

        background_rate: 0.0              # events/yr for countries without a catalogue event
        magnitudes: {licensing: [0.1, 0.4]}
        hazards:
          - {country: CHN, commodity: cobalt, stage: refine, p_annual: 0.1, duration_months: 12, measure: ban}

    CSV: one hazard per line with the columns of ``hazards`` above (``country`` required; ``commodity``,
    ``stage`` default ``*``, ``target`` default ``all``; ``p_annual`` in [0, 1), ``duration_months`` ≥ 0,
    ``measure`` one of :data:`MEASURES`, ``magnitude_lo`` ≤ ``magnitude_hi`` in [0, 1]; ``reason`` free text).

    Raises
    ------
    DataError
        With the file, line and column of the first bad value.
    """
    p = Path(path)
    name = p.name
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise DataError(f"cannot read hazards file: {exc.strerror}", file=name) from None
    out: dict[str, Any] = {"_file": name}
    if p.suffix.lower() == ".csv":
        import csv
        import io

        reader = csv.reader(io.StringIO(text))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError("empty file", file=name, row=1) from None
        for h in header:
            if h not in _OVERRIDE_COLUMNS:
                raise DataError(f"unknown column; expected some of {', '.join(sorted(_OVERRIDE_COLUMNS))}",
                                file=name, row=1, column=h)
        rows = []
        for i, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{len(values)} fields, header has {len(header)}", file=name, row=i)
            rows.append(_check_override({h: v.strip() for h, v in zip(header, values, strict=True) if v.strip()},
                                        name, i))
        out["hazards"] = rows
        return out
    doc = parse_yaml(text, where=name, error=DataError, file=name)
    if doc.data is None:
        return out
    data = validate(HazardsFile, doc.data, where=name, error=DataError, file=name, node=doc.node)
    given = data.model_fields_set
    if "background_rate" in given:
        out["background_rate"] = data.background_rate
    if "magnitudes" in given:
        out["magnitudes"] = dict(data.magnitudes)
    if "hazards" in given:
        items = doc.data["hazards"]
        out["hazards"] = [_check_override({k: v for k, v in item.items() if v is not None}, name, line)
                          for item, line in zip(items, _item_lines(doc.node, "hazards", len(items)), strict=True)]
    return out


# --- the YAML file's contract ----------------------------------------------------------------------------

def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


def _rate(v: Any) -> float:
    if not isinstance(v, (int, float)) or v < 0:
        raise _fail("rate", f"must be a number ≥ 0 (events per year), got {v!r}")
    return float(v)


def _measure(m: Any) -> str:
    if m not in MEASURES:
        raise _fail("measure", f"unknown measure; expected one of {', '.join(MEASURES)}")
    return m


def _range(v: Any) -> tuple[float, float]:
    ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
          and 0 <= v[0] <= v[1] <= 1)
    if not ok:
        raise _fail("range", f"expected [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got {v!r}")
    return float(v[0]), float(v[1])


def _rows(v: Any) -> Any:
    # A YAML list only: pydantic's list would also take a set (``!!set``) or a tuple.
    if not isinstance(v, list):
        raise _fail("rows", "expected a list of hazard rows")
    return v


class HazardRow(BaseModel):
    """One row of ``hazards``: the columns of the CSV form; values are checked by :func:`_check_override`."""

    model_config = ConfigDict(extra="forbid")

    country: Any = None
    commodity: Any = None
    stage: Any = None
    target: Any = None
    p_annual: Any = None
    duration_months: Any = None
    measure: Any = None
    magnitude_lo: Any = None
    magnitude_hi: Any = None
    reason: Any = None


class HazardsFile(BaseModel):
    """The hazards YAML file. Every key is optional; a key that is given must not be null."""

    model_config = ConfigDict(extra="forbid")

    background_rate: Annotated[float, PlainValidator(_rate)] = None  # type: ignore[assignment]
    magnitudes: dict[Annotated[str, PlainValidator(_measure)],
                     Annotated[tuple[float, float], PlainValidator(_range)]] = None  # type: ignore[assignment]
    hazards: Annotated[list[HazardRow], BeforeValidator(_rows)] = None  # type: ignore[assignment]


def _item_lines(node: Any, key: str, n: int) -> list[int | None]:
    """1-based line of each item of the top-level list ``key`` (the last such key, as the parser keeps)."""
    value = None
    for k, v in getattr(node, "value", []):
        if getattr(k, "value", None) == key:
            value = v
    items = getattr(value, "value", None)
    if not isinstance(items, list) or len(items) != n:
        return [None] * n
    return [item.start_mark.line + 1 for item in items]


def _check_override(r: dict[str, Any], file: str, line: int) -> dict[str, Any]:
    out: dict[str, Any] = {"_line": line}
    if "country" not in r:
        raise DataError("missing country (ISO3 or *)", file=file, row=line, column="country")
    for col in ("country", "commodity", "stage", "target"):
        if col in r:
            out[col] = str(r[col]).strip()
    if not (out["country"] == WILD or re.fullmatch(r"[A-Z]{3}", out["country"])):
        raise DataError(f"expected an ISO3 code or *, got {out['country']!r}", file=file, row=line, column="country")
    if "stage" in out and out["stage"] not in (*STAGES, WILD):
        raise DataError(f"expected one of {', '.join(STAGES)} or *, got {out['stage']!r}", file=file, row=line,
                        column="stage")
    if "target" in out and not (out["target"] == ALL or re.fullmatch(r"[A-Z]{3}", out["target"])):
        raise DataError(f"expected all or an ISO3 code, got {out['target']!r}", file=file, row=line, column="target")
    for col, lo, hi in (("p_annual", 0.0, 1.0 - 1e-12), ("duration_months", 0.0, math.inf),
                        ("magnitude_lo", 0.0, 1.0), ("magnitude_hi", 0.0, 1.0)):
        if col in r:
            try:
                v = float(r[col])
            except (TypeError, ValueError):
                raise DataError(f"not a number: {r[col]!r}", file=file, row=line, column=col) from None
            if not (lo <= v <= hi):
                raise DataError(f"{v} outside [{lo}, {hi}]", file=file, row=line, column=col)
            out[col] = v
    if "measure" in r:
        if str(r["measure"]) not in MEASURES:
            raise DataError(f"unknown measure {r['measure']!r}; expected one of {', '.join(MEASURES)}", file=file,
                            row=line, column="measure")
        out["measure"] = str(r["measure"])
    if ("magnitude_lo" in out) != ("magnitude_hi" in out) or out.get("magnitude_lo", 0) > out.get("magnitude_hi", 1):
        raise DataError("give both magnitude_lo ≤ magnitude_hi", file=file, row=line, column="magnitude_lo")
    return out


__all__ = ["apply_overrides", "load_overrides"]

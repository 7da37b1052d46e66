"""User overrides of the hazards: a YAML or CSV file read and validated once, at the boundary, and applied to
the hazards table. The one place of the Monte Carlo that reads a file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from critmin.constants import STAGES
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
    import yaml

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
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=name,
                        row=mark.line + 1 if mark else None) from None
    if doc is None:
        return out
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with hazards / magnitudes / background_rate", file=name, row=1)
    lines = {k.value: (k.start_mark.line + 1, v) for k, v in node.value} if node is not None else {}
    for key in doc:
        if key not in ("hazards", "magnitudes", "background_rate"):
            raise DataError("unknown key; expected hazards, magnitudes or background_rate", file=name,
                            row=lines.get(key, (None,))[0], column=str(key))
    if "background_rate" in doc:
        v = doc["background_rate"]
        if not isinstance(v, (int, float)) or v < 0:
            raise DataError(f"must be a number ≥ 0 (events per year), got {v!r}", file=name,
                            row=lines["background_rate"][0], column="background_rate")
        out["background_rate"] = float(v)
    if "magnitudes" in doc:
        mline, mnode = lines["magnitudes"]
        mlines = {k.value: k.start_mark.line + 1 for k, _ in getattr(mnode, "value", [])}
        if not isinstance(doc["magnitudes"], dict):
            raise DataError("expected measure: [lo, hi]", file=name, row=mline, column="magnitudes")
        out["magnitudes"] = {}
        for m, v in doc["magnitudes"].items():
            if m not in MEASURES:
                raise DataError(f"unknown measure; expected one of {', '.join(MEASURES)}", file=name,
                                row=mlines.get(m, mline), column=str(m))
            ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                  and 0 <= v[0] <= v[1] <= 1)
            if not ok:
                raise DataError(f"expected [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got {v!r}", file=name,
                                row=mlines.get(m, mline), column=str(m))
            out["magnitudes"][m] = (float(v[0]), float(v[1]))
    if "hazards" in doc:
        hline, hnode = lines["hazards"]
        if not isinstance(doc["hazards"], list):
            raise DataError("expected a list of hazard rows", file=name, row=hline, column="hazards")
        rows = []
        for item, inode in zip(doc["hazards"], hnode.value, strict=True):
            line = inode.start_mark.line + 1
            if not isinstance(item, dict):
                raise DataError("expected a mapping (country, commodity, stage, …)", file=name, row=line)
            for k in item:
                if k not in _OVERRIDE_COLUMNS:
                    raise DataError(f"unknown field; expected some of {', '.join(sorted(_OVERRIDE_COLUMNS))}",
                                    file=name, row=line, column=str(k))
            rows.append(_check_override({k: v for k, v in item.items() if v is not None}, name, line))
        out["hazards"] = rows
    return out


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

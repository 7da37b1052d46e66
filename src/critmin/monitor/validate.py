"""Read and validate the monitor's NEW data files; every problem is a DataError naming file, line, column.

``prices.csv`` is the user ``prices`` format and goes through
:func:`critmin.reference.userdata.read_table`. ``us_trade.csv`` and ``export_controls.csv`` need
checks that the user-format field kinds cannot express (``flow`` ∈ import/export, a period
grammar with its month count, "``hts4`` or ``commodity``", ``;``-lists mapped through the
curated export-control mappings, dates), so they are validated here, with the same CSV reader
and the same error wording as the user formats. (Adding them to ``userdata.FORMATS`` would also
make every ``--data`` command pick them up as table overrides, which they are not.)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.constants import PSEUDO_COUNTRIES, STAGES
from critmin.errors import DataError, MappingError, UnitError
from critmin.monitor.rules import price_step, trade_period
from critmin.reference.countries import is_valid_code, to_iso3
from critmin.reference.userdata import _decode, _number, _rows, read_table
from critmin.units import mass_factor

US_TRADE_COLUMNS = {
    "required": ("flow", "partner", "period", "value_usd"),
    "optional": ("hts4", "commodity", "stage", "months", "quantity", "quantity_unit", "source"),
}
EXPORT_CONTROL_COLUMNS = {
    "required": ("event_id", "country_iso3", "commodities", "measure"),
    "optional": ("stage", "targets", "announced", "effective", "ended", "scope_note", "source", "source_url",
                 "verified"),
}
#: Measures of the curated export-control catalogue (curated/SOURCE.md).
MEASURES = ("quota", "licensing", "ban", "tax", "suspension", "disruption")
PRICE_FREQUENCIES = ("monthly", "annual")
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _read(path: Path, spec: dict) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header check (required/unknown columns) and rows as dicts with their line numbers."""
    header, rows = _rows(path, _decode(path))
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"duplicate column(s) {dup}", file=path.name, row=1)
    for col in spec["required"]:
        if col not in header:
            raise DataError(f"missing required column (expected columns: {', '.join(spec['required'])})",
                            file=path.name, row=1, column=col)
    allowed = set(spec["required"]) | set(spec["optional"])
    extra = [h for h in header if h not in allowed]
    if extra:
        raise DataError(f"unknown column(s) {extra}; allowed: {sorted(allowed)}", file=path.name, row=1,
                        column=extra[0])
    if not rows:
        raise DataError("no data rows", file=path.name, row=2)
    return header, [(line, dict(zip(header, values, strict=True))) for line, values in rows]


def read_us_trade(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """Read NEW U.S. trade rows (``us_trade`` long format) and validate every cell.

    Parameters
    ----------
    path : Path
        ``us_trade.csv``: columns ``flow`` (import|export), ``partner`` (ISO3 or a DataWeb country
        name), ``period`` (``YYYY`` or ``YYYY-YTDmm``), ``value_usd`` (USD, ≥ 0), and ``hts4``
        (4-digit heading, mapped through ``mappings/hts4.csv``) or ``commodity`` (critmin id) or
        both; optional ``stage``, ``months`` (must agree with ``period``), ``quantity`` and
        ``quantity_unit`` (mass converted to t), ``source``.
    notes : list of str, optional
        Receives a line for rows dropped because their heading is skipped in ``hts4.csv``.

    Returns
    -------
    pandas.DataFrame
        Columns of ``schema.TABLES["us_trade"]``; ``hts4``/``stage`` are ``""`` where unknown.

    Raises
    ------
    DataError
        Naming file, line and column of the first problem.
    """
    from critmin.reference.sources.baci import _commodity_ids
    from critmin.reference.sources.usitc import hts4_mapping

    header, rows = _read(path, US_TRADE_COLUMNS)
    if "hts4" not in header and "commodity" not in header:
        raise DataError("give a 'hts4' or a 'commodity' column (or both)", file=path.name, row=1, column="hts4")
    mapping, ids = hts4_mapping(), _commodity_ids()
    out: list[dict] = []
    lines: list[int] = []
    skipped: dict[str, int] = {}
    for line, r in rows:
        def bad(column: str, message: str, _line: int = line) -> DataError:
            return DataError(message, file=path.name, row=_line, column=column)

        flow = r["flow"].lower()
        if flow not in ("import", "export"):
            raise bad("flow", f"unknown flow {r['flow']!r} (expected import or export)")
        hts4 = r.get("hts4", "")
        commodity, stage = r.get("commodity", ""), r.get("stage", "")
        if hts4:
            if not re.fullmatch(r"\d{4}", hts4):
                raise bad("hts4", f"{hts4!r} is not an HTS 4-digit heading (e.g. 2846)")
            if hts4 not in mapping.index:
                raise bad("hts4", f"heading {hts4} is not in critmin/reference/mappings/hts4.csv; give 'commodity' "
                                  "and leave 'hts4' empty, or add the heading to the mapping")
            m_commodity, m_stage = str(mapping.at[hts4, "commodity"]), str(mapping.at[hts4, "stage"])
            if m_commodity == "skip" and not commodity:
                skipped[hts4] = skipped.get(hts4, 0) + 1
                continue
            if m_commodity != "skip":
                if commodity and commodity != m_commodity:
                    raise bad("commodity", f"{commodity!r} disagrees with heading {hts4} → {m_commodity} "
                                           "(mappings/hts4.csv)")
                commodity, stage = m_commodity, stage or m_stage
        if not commodity:
            raise bad("commodity", "empty value (give 'commodity' or a mapped 'hts4')")
        if commodity not in ids:
            raise bad("commodity", f"unknown commodity id {commodity!r} (see mappings/commodities.csv)")
        if stage and stage not in STAGES:
            raise bad("stage", f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")
        partner = r["partner"]
        if not is_valid_code(partner):
            try:
                partner = to_iso3(partner)
            except MappingError:
                raise bad("partner", f"unknown country {partner!r} (expected ISO 3166 alpha-3 such as CHN, "
                                     "JPN, or a country name)") from None
        try:
            year, months = trade_period(r["period"])
        except ValueError:
            raise bad("period", f"{r['period']!r} is not a period (expected YYYY for a year or YYYY-YTDmm for "
                                "January to month mm, e.g. 2026-YTD05)") from None
        if r.get("months") and r["months"] != str(months) and r["months"].lstrip("0") != str(months):
            raise bad("months", f"{r['months']!r} disagrees with period {r['period']} ({months} months)")
        value = _nonneg(r["value_usd"], bad, "value_usd")
        qty = _nonneg(r["quantity"], bad, "quantity") if r.get("quantity", "") else float("nan")
        unit = r.get("quantity_unit", "")
        if unit:
            try:
                qty, unit = qty * mass_factor(unit), "t"
            except UnitError:
                pass  # not a mass (number, component kilograms ...): kept as published
        out.append({"flow": flow, "hts4": hts4, "commodity": commodity, "stage": stage, "partner": partner,
                    "period": f"{year}" if months == 12 else f"{year}-YTD{months:02d}", "months": months,
                    "value_usd": value, "quantity": qty, "quantity_unit": unit,
                    "source": f"user:{path.name}"})
        lines.append(line)
    for hts4, n in sorted(skipped.items()):
        if notes is not None:
            notes.append(f"us_trade.csv: {n} row(s) of heading {hts4} dropped: "
                         f"{mapping.at[hts4, 'note']} (give 'commodity' to attribute them)")
    frame = pd.DataFrame(out, columns=["flow", "hts4", "commodity", "stage", "partner", "period", "months",
                                       "value_usd", "quantity", "quantity_unit", "source"])
    keys = ["flow", "hts4", "commodity", "stage", "partner", "period", "quantity_unit"]
    dup = frame.duplicated(keys, keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"duplicate row for { {k: frame.at[i, k] for k in keys} }", file=path.name, row=lines[i])
    if frame.empty:
        raise DataError("no usable rows (every heading is skipped in mappings/hts4.csv)", file=path.name, row=2)
    pseudo = frame["partner"].isin(PSEUDO_COUNTRIES)
    if pseudo.any() and notes is not None:
        notes.append(f"us_trade.csv: {int(pseudo.sum())} row(s) with partner ROW/WLD/XNA are not used for shares")
    return frame


def _nonneg(text: str, bad, column: str) -> float:
    try:
        value = _number(text)
    except ValueError:
        raise bad(column, f"{text!r} is not a number") from None
    if value < 0:
        raise bad(column, f"negative value {text!r} (must be >= 0)")
    return value


def read_prices(path: Path) -> pd.DataFrame:
    """Read NEW price observations: the user ``prices`` format, plus frequency and period checks.

    Raises
    ------
    DataError
        Naming file, line and column (``frequency`` must be monthly|annual; ``period`` YYYY-MM for
        monthly, YYYY for annual).
    """
    frame = read_table(path, "prices")
    _, rows = _rows(path, _decode(path))
    lines = [line for line, _ in rows]
    for i, (freq, period) in enumerate(zip(frame["frequency"], frame["period"], strict=True)):
        if freq not in PRICE_FREQUENCIES:
            raise DataError(f"unknown frequency {freq!r} (expected monthly or annual)", file=path.name,
                            row=lines[i], column="frequency")
        try:
            price_step(period, freq)
        except ValueError:
            want = "YYYY-MM" if freq == "monthly" else "YYYY"
            raise DataError(f"{period!r} is not a {freq} period (expected {want})", file=path.name,
                            row=lines[i], column="period") from None
    return frame


def read_export_controls(path: Path) -> pd.DataFrame:
    """Read NEW export-control events in the curated catalogue's columns and validate them.

    Parameters
    ----------
    path : Path
        ``export_controls.csv`` with ``event_id`` (unique), ``country_iso3`` (ISO3, ``EUU``, or a
        ``;``-list), ``commodities`` (``;``-separated names or ids, mapped as in the curated table),
        ``measure`` (quota|licensing|ban|tax|suspension|disruption) and at least one of
        ``announced``/``effective`` (YYYY, YYYY-MM or YYYY-MM-DD); optional ``stage``, ``targets``,
        ``ended``, ``scope_note``, ``source`` (the citation), ``source_url``, ``verified``.

    Returns
    -------
    pandas.DataFrame
        The given columns (``source`` renamed ``citation``) plus ``commodity`` (critmin ids),
        ``stage_id``, ``country`` and ``source`` (``user:export_controls.csv``).

    Raises
    ------
    DataError
        Naming file, line and column of the first problem.
    """
    from critmin.reference.sources.curated import map_commodity, map_country, map_stages

    _, rows = _read(path, EXPORT_CONTROL_COLUMNS)
    seen: dict[str, int] = {}
    out = []
    for line, r in rows:
        def bad(column: str, message: str, _line: int = line) -> DataError:
            return DataError(message, file=path.name, row=_line, column=column)

        eid = r["event_id"]
        if not eid:
            raise bad("event_id", "empty value (the column 'event_id' is required)")
        if eid in seen:
            raise bad("event_id", f"event_id {eid!r} repeats line {seen[eid]}")
        seen[eid] = line
        rec = dict(r)
        for col, fn in (("country_iso3", map_country), ("commodities", map_commodity), ("stage", map_stages)):
            if col == "stage" and not r.get("stage"):
                rec["stage_id"] = None
                continue
            if not r[col]:
                raise bad(col, f"empty value (the column '{col}' is required)")
            try:
                mapped = fn(r[col])
            except MappingError as exc:
                raise bad(col, exc.reason) from None
            rec[{"country_iso3": "country", "commodities": "commodity", "stage": "stage_id"}[col]] = mapped
        if r["measure"] not in MEASURES:
            raise bad("measure", f"unknown measure {r['measure']!r} (expected one of {', '.join(MEASURES)})")
        for col in ("announced", "effective", "ended"):
            if r.get(col) and not _is_date(r[col]):
                raise bad(col, f"{r[col]!r} is not a date (expected YYYY, YYYY-MM or YYYY-MM-DD)")
        if not (r.get("announced") or r.get("effective")):
            raise bad("effective", "give at least one of 'announced' and 'effective'")
        if "source" in rec:
            rec["citation"] = rec.pop("source")
        rec["source"] = f"user:{path.name}"
        out.append(rec)
    return pd.DataFrame(out)


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    parts = text.split("-")
    fmt = {1: "%Y", 2: "%Y-%m", 3: "%Y-%m-%d"}[len(parts)]
    return not pd.isna(pd.to_datetime(text, format=fmt, errors="coerce"))

"""Which export-control measures bind on a given date: announced, in force, suspended or ended.

:func:`measures_as_of` is pure: it reads only the frames it is given. The one file it may need, the
packaged mapping of suspensions to the measures they suspend (``mappings/export_control_links.csv``),
is read by the small loader :func:`load_links` (and checked against a table by :func:`validate_links`,
which the dataset build runs).

Rules (``as_of`` is a :class:`datetime.date`)
---------------------------------------------
* **Dates.** ``announced``, ``effective`` and ``ended`` are ISO dates of any precision. A start date
  takes the first day of its period (``'2010'`` → 2010-01-01, ``'2010-07'`` → 2010-07-01), an end date
  the last (``'2010'`` → 2010-12-31, ``'2010-07'`` → 2010-07-31). ``ended`` is the last day the measure
  applies (inclusive). A blank ``effective`` falls back to ``announced`` for the start; a blank
  ``announced`` to the start for the publication date. A date that does not parse, or a row with
  neither date, raises :class:`~critmin.errors.DataError` naming the event and the column.
* **Not yet public.** A row published after ``as_of`` (``announced`` > ``as_of``) is not returned.
* **Links.** A *link suspension* is an event that the links mapping lists with at least one suspended
  measure: it eases those measures while its window ``[effective, ended]`` contains ``as_of``. A
  ``suspension`` row without a link (DR Congo's 2025 cobalt export suspension) suspends exports and is
  an ordinary restriction. Link ids that are not in ``events`` are ignored, so a filtered table can be
  passed; :func:`validate_links` is the strict check.
* **Status of a restriction**, first match wins:

  1. ``ended`` — ``ended`` < ``as_of``; ``since`` is the recorded end date;
  2. ``suspended`` — a link suspension's window contains ``as_of`` (also before the measure took
     effect: No. 70 suspended the October 2025 measures a day before their start); ``since`` is the
     suspension's start, ``until`` its end (windows that follow one another without a gap are
     chained, so an extension counts; the measure's own end caps it);
  3. ``announced`` — effective date > ``as_of``; ``since`` is the announcement, ``until`` the day
     before the measure takes effect;
  4. ``in_force`` — otherwise; ``since`` is the effective date (also when a suspension ended before
     ``as_of``: the measure is in force again and the label names the suspension's end), ``until`` the
     recorded end if any.

* **A link suspension itself** is returned with its own measure (``suspension``), ``restricts`` False
  and the status of its window (``announced`` / ``in_force`` / ``ended`` by the same date rules).
  Every other row has ``restricts`` True.

Output: one row per (event_id, commodity) — the ``;``-joined ``commodity`` cell exploded, labels that
name no single commodity (``all dual-use items (incl. listed rare earths)``) kept as they are.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field

import pandas as pd

from critmin.constants import STAGES
from critmin.errors import DataError
from critmin.reference.control_links import LINK_COLUMNS, LINKS_FILE, _blank, _split, load_links, validate_links
from critmin.reference.countries import GROUP_CODES, country_name, is_valid_code

__all__ = ["LINKS_FILE", "LINK_COLUMNS", "load_links", "measures_as_of", "validate_links"]

STATUSES = ("announced", "in_force", "suspended", "ended")

#: Register stage → critmin stages. ``processed`` covers oxides, compounds *and* metals/alloys
#: (the announcements list them together), hence refine and metal. Technology and scrap are no
#: material stage of the chain; they are reported in ``other_scope``.
STAGE_MAP: dict[str, tuple[str, ...]] = {
    "ore": ("mine",), "processed": ("refine", "metal"), "product": ("component",), "technology": (), "scrap": (),
}
OTHER_SCOPES = ("technology", "scrap")

COLUMNS = ("event_id", "country", "commodity", "stages", "other_scope", "measure", "targets", "target_iso3",
           "status", "since", "until", "restricts", "label")
_TEXT = ("event_id", "country", "commodity", "stages", "other_scope", "measure", "targets", "target_iso3",
         "status", "label")

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_PHRASES = {"ban": "export ban", "licensing": "export licensing", "quota": "export quota", "tax": "export tax",
            "suspension": "export suspension", "disruption": "supply disruption"}
_TARGET_NAMES = {"USA": "the US", "GBR": "the UK", "EUU": "the EU"}
_DAY = dt.timedelta(days=1)


# ---------------------------------------------------------------------------------------------- parsing

def parse_date(text, *, end: bool = False, event_id: str = "", column: str = "") -> dt.date | None:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` → a date: the period's first day, or its last with ``end``.

    Blank → ``None``. Anything else raises :class:`~critmin.errors.DataError` naming event and column.
    """
    if text is None or _blank(text):
        return None
    raw = str(text).strip()
    m = _DATE.fullmatch(raw)
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), m[2] and int(m[2]), m[3] and int(m[3])
        if day:
            return dt.date(year, month, day)
        if month:
            return dt.date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    except ValueError:
        raise DataError(f"event {event_id!r}: {raw!r} is not a date (expected YYYY, YYYY-MM or YYYY-MM-DD)",
                        column=column) from None


def parse_targets(text, *, event_id: str = "") -> str | None:
    """Targeted ISO3 codes of a ``targets`` cell, ``;``-joined, or ``'all'``.

    Parenthesised qualifiers are dropped (``'JPN (military end users/uses)'`` → ``JPN``,
    ``'all (extraterritorial)'`` → ``all``); ``;`` or ``,`` separate several targets. Blank → ``None``.

    Raises
    ------
    DataError
        If a part is neither ``all`` nor a valid ISO3 (or group) code.
    """
    if text is None or _blank(text):
        return None
    codes: list[str] = []
    for part in re.split(r"[;,]", re.sub(r"\([^)]*\)", "", str(text))):
        token = part.strip()
        if not token:
            continue
        if token.casefold() == "all":
            return "all"
        if not (token in GROUP_CODES or (re.fullmatch(r"[A-Z]{3}", token) and is_valid_code(token))):
            raise DataError(f"event {event_id!r}: target {token!r} in {str(text)!r} is neither 'all' nor an ISO3 code",
                            column="targets")
        if token not in codes:
            codes.append(token)
    if not codes:
        raise DataError(f"event {event_id!r}: no target in {str(text)!r}", column="targets")
    return ";".join(codes)


def map_stages(text, *, event_id: str = "") -> tuple[str | None, str | None]:
    """Register ``stage`` text → (critmin stages ``;``-joined, other scope ``;``-joined); ``None`` when empty."""
    if text is None or _blank(text):
        return None, None
    stages: set[str] = set()
    other: set[str] = set()
    for part in str(text).split(";"):
        key = part.strip().casefold()
        if not key:
            continue
        if key not in STAGE_MAP:
            raise DataError(f"event {event_id!r}: unknown stage {part.strip()!r} (expected one of "
                            f"{', '.join(STAGE_MAP)})", column="stage")
        stages.update(STAGE_MAP[key])
        if key in OTHER_SCOPES:
            other.add(key)
    return (";".join(s for s in STAGES if s in stages) or None, ";".join(s for s in OTHER_SCOPES if s in other) or None)


# ------------------------------------------------------------------------------------------------ status

@dataclass
class _Event:
    event_id: str
    country: str | None
    commodities: list[str]
    stage: str | None
    measure: str
    targets: str | None
    announced: dt.date | None
    start: dt.date
    end: dt.date | None
    raw: dict[str, str] = field(default_factory=dict)


def measures_as_of(events: pd.DataFrame, as_of: dt.date, links: pd.DataFrame | None = None) -> pd.DataFrame:
    """Status of every public export-control measure on ``as_of``, one row per (event_id, commodity).

    Parameters
    ----------
    events : pandas.DataFrame
        The ``export_controls`` table (or rows in its columns): ``event_id``, ``measure``, ``country``
        (or ``country_iso3``), ``commodity`` (or ``commodities``), ``announced`` and/or ``effective``;
        ``stage``, ``targets`` and ``ended`` optional.
    as_of : datetime.date
    links : pandas.DataFrame, optional
        ``event_id, suspends`` (suspends ``;``-joined). Default: the packaged mapping
        (:func:`load_links`); pass an empty frame for none.

    Returns
    -------
    pandas.DataFrame
        ``event_id, country, commodity, stages`` (critmin stages covered: ore → mine, processed →
        refine;metal, product → component), ``other_scope`` (technology/scrap), ``measure, targets``
        (as given), ``target_iso3`` (ISO3 codes or ``all``), ``status`` (announced | in_force |
        suspended | ended), ``since`` and ``until`` (:class:`datetime.date` or None), ``restricts`` and
        ``label`` (e.g. "China ban on exports to the US suspended until 2026-11-27"). Rules in the
        module docstring.

    Raises
    ------
    DataError
        A missing column, a repeated event_id, a date that does not parse, an unknown stage or target.
    """
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    if not isinstance(as_of, dt.date):
        raise TypeError(f"as_of must be a datetime.date, not {type(as_of).__name__}")
    recs = _records(events)
    by_id = {e.event_id: e for e in recs}
    declared = _link_map(load_links() if links is None else links)
    # Suspension windows per suspended measure (only links between events of this frame).
    windows: dict[str, list[_Event]] = {}
    for sid, targets in declared.items():
        if sid in by_id:
            for t in targets:
                if t in by_id:
                    windows.setdefault(t, []).append(by_id[sid])
    out: list[dict] = []
    for e in sorted(recs, key=lambda r: r.event_id):
        if (e.announced or e.start) > as_of:
            continue                                    # not yet public
        if declared.get(e.event_id):
            row = _link_row(e, declared[e.event_id], as_of)
        else:
            row = _restriction_row(e, windows.get(e.event_id, []), as_of)
        stages, other = map_stages(e.stage, event_id=e.event_id)
        base = {"event_id": e.event_id, "country": e.country, "stages": stages, "other_scope": other,
                "measure": e.measure, "targets": e.targets,
                "target_iso3": parse_targets(e.targets, event_id=e.event_id), **row}
        out.extend({**base, "commodity": c} for c in e.commodities)
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    for col in _TEXT:
        frame[col] = frame[col].astype("string")
    frame["restricts"] = frame["restricts"].astype(bool)
    return frame


def _restriction_row(e: _Event, windows: list[_Event], as_of: dt.date) -> dict:
    phrase = _phrase(e)
    subject = _subject(e.country)
    started = [w for w in windows if w.start <= as_of]
    past = [w for w in started if w.end is not None and w.end < as_of]
    suffix = f"suspension ended {_show(max(past, key=lambda w: w.end), 'end')}" if past else ""
    if e.end is not None and e.end < as_of:
        return _row("ended", e.end, None, True, f"{subject} {phrase} ended {_show(e, 'end')}", "")
    active = [w for w in started if w.end is None or as_of <= w.end]
    if active:
        since = min(w.start for w in active)
        until, shown = _chain(active, windows)
        if e.end is not None and (until is None or e.end < until):
            until, shown = e.end, _show(e, "end")
        label = f"{subject} {phrase} suspended " + (f"until {shown}" if until else f"since {since.isoformat()}, no end date")
        return _row("suspended", since, until, True, label, "")
    if e.start > as_of:
        return _row("announced", e.announced, e.start - _DAY, True,
                    f"{subject} {phrase} announced {_show(e, 'announced')}, in force from {_show(e, 'start')}", suffix)
    parts = ([f"until {_show(e, 'end')}"] if e.end is not None else []) + ([suffix] if suffix else [])
    label = f"{subject} {phrase} {'in force ' if past else ''}since {_show(e, 'start')}"
    return _row("in_force", e.start, e.end, True, label, "; ".join(parts))


def _link_row(e: _Event, suspended: list[str], as_of: dt.date) -> dict:
    head = f"{_subject(e.country)} suspension of {', '.join(suspended)}"
    if e.end is not None and e.end < as_of:
        return _row("ended", e.end, None, False, f"{head} ended {_show(e, 'end')}", "")
    if e.start > as_of:
        return _row("announced", e.announced, e.start - _DAY, False,
                    f"{head} announced {_show(e, 'announced')}, in force from {_show(e, 'start')}", "")
    tail = f"until {_show(e, 'end')}" if e.end is not None else f"since {_show(e, 'start')}, no end date"
    return _row("in_force", e.start, e.end, False, f"{head} in force {tail}", "")


def _row(status: str, since, until, restricts: bool, label: str, note: str) -> dict:
    return {"status": status, "since": since, "until": until, "restricts": restricts,
            "label": f"{label} ({note})" if note else label}


def _chain(active: list[_Event], windows: list[_Event]) -> tuple[dt.date | None, str]:
    """End of the suspension covering as_of, following windows that start by the day after it ends."""
    if any(w.end is None for w in active):
        return None, ""
    best = max(active, key=lambda w: w.end)
    until = best.end
    changed = True
    while changed:
        changed = False
        for w in windows:
            if w.start <= until + _DAY and (w.end is None or w.end > until):
                if w.end is None:
                    return None, ""
                best, until, changed = w, w.end, True
    return until, _show(best, "end")


def _records(events: pd.DataFrame) -> list[_Event]:
    cols = set(events.columns)
    country_col = "country" if "country" in cols else "country_iso3"
    commodity_col = "commodity" if "commodity" in cols else "commodities"
    for col in ("event_id", "measure", country_col, commodity_col):
        if col not in cols:
            raise DataError("missing column in the export-controls table", column=col)
    if not ({"announced", "effective"} & cols):
        raise DataError("the export-controls table needs 'announced' or 'effective'", column="effective")
    recs: list[_Event] = []
    seen: set[str] = set()
    for r in events.to_dict("records"):
        eid = _text(r.get("event_id"))
        if not eid:
            raise DataError("blank event_id", column="event_id")
        if eid in seen:
            raise DataError(f"event_id {eid!r} repeats", column="event_id")
        seen.add(eid)
        raw = {k: _text(r.get(k)) or "" for k in ("announced", "effective", "ended")}
        announced = parse_date(raw["announced"], event_id=eid, column="announced")
        start = parse_date(raw["effective"], event_id=eid, column="effective") or announced
        if start is None:
            raise DataError(f"event {eid!r}: no start date ('announced' and 'effective' are both blank)",
                            column="effective")
        end = parse_date(raw["ended"], end=True, event_id=eid, column="ended")
        if end is not None and end < start:
            raise DataError(f"event {eid!r}: ended {raw['ended']} before it took effect", column="ended")
        raw["start"] = raw["effective"] or raw["announced"]
        raw["end"] = raw["ended"]
        commodities = _split(r.get(commodity_col))
        if not commodities:
            raise DataError(f"event {eid!r}: no commodity", column=commodity_col)
        recs.append(_Event(eid, _text(r.get(country_col)), commodities, _text(r.get("stage")),
                           _text(r.get("measure")) or "", _text(r.get("targets")), announced, start, end, raw))
    return recs


def _link_map(links: pd.DataFrame) -> dict[str, list[str]]:
    if len(links) == 0:
        return {}
    for col in ("event_id", "suspends"):
        if col not in links.columns:
            raise DataError("missing column in the links frame", column=col)
    return {str(eid): _split(s) for eid, s in zip(links["event_id"], links["suspends"], strict=True)}


# ------------------------------------------------------------------------------------------------ labels

def _phrase(e: _Event) -> str:
    base = _PHRASES.get(e.measure, f"export {e.measure}")
    qualifier = " ".join(re.findall(r"\([^)]*\)", e.targets or ""))
    codes = parse_targets(e.targets, event_id=e.event_id)
    if codes and codes != "all":
        dest = " and ".join(_TARGET_NAMES.get(c, country_name(c)) for c in codes.split(";"))
        base = f"ban on exports to {dest}" if e.measure == "ban" else f"{base} (exports to {dest})"
    return f"{base} {qualifier}" if qualifier else base


def _subject(country: str | None) -> str:
    if not country:
        return "Unknown country"
    return " and ".join("EU" if c == "EUU" else country_name(c) for c in country.split(";"))


def _show(e: _Event, which: str) -> str:
    """A date as recorded (``2026`` stays ``2026``), for labels."""
    return e.raw.get(which, "")


def _text(value) -> str | None:
    if value is None or _blank(value):
        return None
    return str(value).strip()

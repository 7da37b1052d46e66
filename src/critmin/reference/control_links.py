"""The packaged links between suspensions and the measures they suspend (``mappings/export_control_links.csv``).

Read by :func:`load_links`, checked against an export-controls table by :func:`validate_links` (the dataset
build runs it); used by :func:`critmin.methods.controls.measures_as_of`.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

import pandas as pd

from critmin.errors import MappingError

LINKS_FILE = "critmin/reference/mappings/export_control_links.csv"
LINK_COLUMNS = ("event_id", "suspends", "note")


def load_links() -> pd.DataFrame:
    """The packaged links mapping (``event_id, suspends, note``; ``suspends`` ``;``-joined, blank = ``<NA>``).

    A blank ``suspends`` records a decision too: that ``suspension`` row suspends exports, not an earlier
    measure. Checks that need no table are made here; :func:`validate_links` checks ids against a table.

    Raises
    ------
    MappingError
        Wrong header, a blank or repeated ``event_id``, a blank ``note``, or an event linked to itself.
    """
    frame = pd.DataFrame(list(_links_rows()), columns=list(LINK_COLUMNS)).astype("string")
    return frame.mask(frame == "")


@cache
def _links_rows() -> tuple[tuple[str, str, str], ...]:
    text = resources.files("critmin.reference").joinpath("mappings/export_control_links.csv").read_text("utf-8")
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != LINK_COLUMNS:
        raise MappingError(f"expected columns {', '.join(LINK_COLUMNS)}", file=LINKS_FILE, row=1)
    seen: dict[str, int] = {}
    rows = []
    for line, row in enumerate(reader, start=2):
        eid, suspends, note = ((row.get(k) or "").strip() for k in LINK_COLUMNS)
        if not eid:
            raise MappingError("blank event_id", file=LINKS_FILE, row=line, column="event_id")
        if eid in seen:
            raise MappingError(f"event_id {eid!r} repeats line {seen[eid]}", file=LINKS_FILE, row=line, column="event_id")
        seen[eid] = line
        if not note:
            raise MappingError(f"{eid}: give the reason for the link in 'note'", file=LINKS_FILE, row=line, column="note")
        ids = _split(suspends)
        if eid in ids:
            raise MappingError(f"{eid} is linked to itself", file=LINKS_FILE, row=line, column="suspends")
        rows.append((eid, ";".join(ids), note))
    return tuple(rows)


def validate_links(links: pd.DataFrame, events: pd.DataFrame) -> None:
    """Check a links frame against an events table (run at build time).

    Raises
    ------
    MappingError
        Naming the id: an ``event_id`` or suspended id not in ``events``, or a linking event whose
        ``measure`` is not ``suspension``.
    """
    measures = dict(zip(events["event_id"].astype(str), events["measure"].astype(str), strict=True))
    for line, (eid, suspends) in enumerate(zip(links["event_id"], links["suspends"], strict=True), start=2):
        eid = str(eid)
        if eid not in measures:
            raise MappingError(f"event_id {eid!r} is not in the export_controls table", file=LINKS_FILE, row=line,
                               column="event_id")
        if measures[eid] != "suspension":
            raise MappingError(f"{eid} has measure {measures[eid]!r}; only 'suspension' events can be listed",
                               file=LINKS_FILE, row=line, column="event_id")
        for target in _split(suspends):
            if target not in measures:
                raise MappingError(f"{eid} suspends {target!r}, which is not in the export_controls table",
                                   file=LINKS_FILE, row=line, column="suspends")



def _split(value) -> list[str]:
    if value is None or _blank(value):
        return []
    out: list[str] = []
    for part in str(value).split(";"):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def _blank(value) -> bool:
    try:
        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        pass
    return not str(value).strip()

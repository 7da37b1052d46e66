"""Shared lookup of trade-code mapping tables (HS6, HTS4): exhaustive, order-preserving; the commodity ids.

The source parsers import this module; it imports none of them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from functools import cache
from importlib import resources

import pandas as pd

from critmin.errors import MappingError

#: The commodity value of a code that critmin deliberately does not attribute (with a reason).
SKIP = "skip"


@cache
def commodity_ids() -> frozenset[str]:
    """Every commodity id of ``mappings/commodities.csv``."""
    text = resources.files("critmin.reference").joinpath("mappings/commodities.csv").read_text("utf-8")
    return frozenset(row["id"] for row in csv.DictReader(text.splitlines()))


def lookup(mapping: pd.DataFrame, codes: Iterable, *, key: str, what: str, file: str) -> pd.DataFrame:
    """Rows of ``mapping`` (indexed by code) for ``codes``, in order, columns ``key, commodity, stage``.

    Raises
    ------
    MappingError
        Naming ``file`` when a code is not listed: the mapping must be exhaustive, so a new code in a data
        update stops the build instead of being dropped.
    """
    codes = [str(c) for c in codes]
    unknown = sorted(set(codes) - set(mapping.index))
    if unknown:
        raise MappingError(f"{what} {unknown} not listed; add them (or 'skip' with a reason)", file=file)
    return mapping.loc[codes, [key, "commodity", "stage"]].reset_index(drop=True)


def read_code_mapping(name: str, *, key: str, digits: int, what: str, columns: list[str],
                      note_always: bool) -> pd.DataFrame:
    """Read and validate ``mappings/<name>`` (trade code → commodity id and stage, or ``skip``).

    Every row needs a known commodity id and stage unless it is skipped; a skipped row needs its reason in
    ``note`` (``note_always``: every row does, for headings that mix products); a code appears once.

    Returns
    -------
    DataFrame of ``columns`` (strings) indexed by ``key``.
    """
    from critmin.constants import STAGES

    file = f"critmin/reference/mappings/{name}"
    text = resources.files("critmin.reference").joinpath(f"mappings/{name}").read_text("utf-8")
    ids = commodity_ids()
    rows = []
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        row = {k: (v or "").strip() for k, v in row.items()}
        code, commodity, stage = row[key], row["commodity"], row["stage"]
        if len(code) != digits or not code.isdigit():
            raise MappingError(f"bad {what} {code!r}", file=file, row=line, column=key)
        if not row["note"] and (note_always or commodity == SKIP):
            # a skip must say why, and mixed headings what they hold, so reviewers can check the mapping
            raise MappingError(f"{what} {code} needs a 'note' (what it holds, or why it is skipped)",
                               file=file, row=line, column="note")
        if commodity != SKIP:
            if commodity not in ids:
                raise MappingError(f"unknown commodity id {commodity!r} for {code}", file=file, row=line,
                                   column="commodity")
            if stage not in STAGES:
                raise MappingError(f"unknown stage {stage!r} for {code}", file=file, row=line, column="stage")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns).astype("string")
    if frame[key].duplicated().any():
        raise MappingError(f"{what}s listed twice: {sorted(frame.loc[frame[key].duplicated(), key])}", file=file)
    return frame.set_index(key, drop=False)

"""Shared lookup of trade-code mapping tables (HS6, HTS4): exhaustive, order-preserving."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from critmin.errors import MappingError


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

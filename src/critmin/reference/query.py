"""Row filters for ``critmin data show``."""

from __future__ import annotations

import pandas as pd

from critmin.errors import ConfigError


def filter_rows(frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
    """Keep rows where each ``COLUMN=VALUE[,VALUE...]`` holds (compared as text)."""
    out = frame
    for clause in where:
        if "=" not in clause:
            raise ConfigError(f"filter {clause!r}: expected COLUMN=VALUE")
        col, val = clause.split("=", 1)
        col = col.strip()
        if col not in out.columns:
            raise ConfigError(f"filter {clause!r}: unknown column {col!r}; columns: {', '.join(out.columns)}")
        values = [v.strip() for v in val.split(",")]
        out = out[out[col].astype(str).isin(values)]
    return out.reset_index(drop=True)

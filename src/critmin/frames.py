"""The one seam between long tables and labelled arrays (units and provenance carried across)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def to_array(frame: pd.DataFrame, dims: Sequence[str], value: str = "value", *, fill: float = 0.0,
             coords: dict[str, Sequence] | None = None, units: str | None = None) -> xr.DataArray:
    """Pivot a long table to a dense DataArray over ``dims`` (duplicates summed).

    Parameters
    ----------
    frame : DataFrame
        Long table holding ``dims`` and ``value`` columns.
    dims : sequence of str
        Columns that become dimensions, in order.
    fill : float
        Value for combinations absent from the table (0 for flows; NaN for indicators).
    coords : dict, optional
        Force the labels of some dimensions (absent labels are filled with ``fill``).
    units : str, optional
        Stored in ``attrs["units"]``.
    """
    dims = list(dims)
    grouped = frame.groupby(dims, observed=True, sort=True)[value].sum(min_count=1)
    labels = {d: (list(coords[d]) if coords and d in coords else
                  sorted(pd.unique(frame[d].astype(object)).tolist())) for d in dims}
    shape = tuple(len(labels[d]) for d in dims)
    data = np.full(shape, fill, dtype=float)
    if len(grouped):
        codes = []
        keep = np.ones(len(grouped), dtype=bool)
        for i, d in enumerate(dims):
            level = grouped.index.get_level_values(i) if len(dims) > 1 else grouped.index
            pos = pd.Index(labels[d]).get_indexer(level)
            keep &= pos >= 0
            codes.append(pos)
        idx = tuple(c[keep] for c in codes)
        vals = grouped.to_numpy(dtype=float)[keep]
        data[idx] = np.where(np.isnan(vals), fill, vals)
    da = xr.DataArray(data, dims=dims, coords={d: labels[d] for d in dims})
    if units:
        da.attrs["units"] = units
    if "source" in frame:
        da.attrs["sources"] = sorted(pd.unique(frame["source"].astype(str)).tolist())
    return da


def read_csv(path: str | Path, required: Sequence[str], what: str) -> pd.DataFrame:
    """A user's CSV with its required columns present; errors name the file (and the missing column).

    Raises
    ------
    DataError
        Unreadable file, or a column of ``required`` missing from the header (line 1).
    """
    from critmin.errors import DataError

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {what}: {exc}", file=str(path)) from None
    for col in required:
        if col not in df.columns:
            raise DataError("missing column", file=str(path), row=1, column=col)
    return df

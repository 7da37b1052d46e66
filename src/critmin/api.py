"""Python API mirroring the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from critmin import workflows
from critmin.reference.catalog import Catalog


def load(table: str, data: str | Path | None = None) -> pd.DataFrame:
    """A table of the bundled dataset (or of the user's ``data`` folder where it holds one)."""
    return Catalog(data).table(table)


def assess(method: str = "geopolrisk", importer: str | list[str] = workflows.DEFAULT_IMPORTERS,
           year: int | None = None, stage: str = "mine", data: str | Path | None = None,
           params: str | Path | None = None, tidy: bool = False, **kw) -> xr.Dataset | pd.DataFrame:
    """Run a criticality method.

    Parameters
    ----------
    method : {"geopolrisk", "eu-sr", "usgs", "hhi"}
    importer : str or list of str
        ``"USA"``, ``"JPN"``, a bloc ``"USA+JPN"``, a group (``"g7"``, ``"msp"``), or a comma list.
    year : int, optional
        Data year (default: latest year with production and trade).
    stage : {"mine", "refine", "metal", "component"}
    data : path, optional
        Folder with the user's own tables (README, "Bring your own data").
    tidy : bool
        Return the long table (``method, commodity, stage, importer, year, indicator, value, unit``).

    Returns
    -------
    xarray.Dataset (commodity × importer × year; ``attrs`` hold citation, sources, notes) or DataFrame.
    """
    ds = workflows.assess(method, importer, year, stage, data, params, **kw)
    return workflows.tidy(ds) if tidy else ds


def priorities(importer: str | list[str] = workflows.DEFAULT_IMPORTERS, year: int | None = None,
               data: str | Path | None = None, **kw) -> pd.DataFrame:
    """Ranked priority list (one row per importer × commodity) with reasons; metadata in ``.attrs``."""
    table, meta = workflows.priorities(importer, year, data, **kw)
    table.attrs.update(meta)
    return table

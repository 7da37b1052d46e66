"""The result type every public API function returns: tables and/or a labelled Dataset plus metadata.

One small dataclass for every stage of the chain (priorities, scenario, risk, stockpile, invest, policy,
monitor, map, brief) so that callers use one shape: ``.to_frame()`` for the main table (or a named one),
``.to_xarray()`` for labelled arrays, ``.meta`` for sources, assumptions, notes, seed and units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import xarray as xr


@dataclass
class Result:
    """What one stage of the chain produced.

    Attributes
    ----------
    kind : the stage (``"priorities"``, ``"scenario"``, ``"risk"``, ``"stockpile"`` …)
    tables : named tables; ``main`` names the one :meth:`to_frame` returns by default
    data : labelled arrays where the stage has them (scenario paths, risk draws summary …)
    meta : sources (ids), assumptions, notes, seed, units, years — whatever the stage records
    """

    kind: str
    tables: dict[str, pd.DataFrame]
    main: str
    data: xr.Dataset | None = None
    meta: dict = field(default_factory=dict)

    def to_frame(self, name: str | None = None) -> pd.DataFrame:
        """The main table (or the table ``name``); ``.attrs`` carry :attr:`meta`."""
        key = name or self.main
        if key not in self.tables:
            raise KeyError(f"{self.kind} result has no table {key!r}; tables: {', '.join(self.tables)}")
        frame = self.tables[key].copy()
        frame.attrs.update(self.meta)
        return frame

    def to_xarray(self) -> xr.Dataset:
        """The labelled arrays of the stage, or the main table as a Dataset indexed by its key columns."""
        if self.data is not None:
            return self.data
        frame = self.tables[self.main]
        keys = [c for c in ("importer", "consumer", "commodity", "stage", "holder", "project_id", "month", "year")
                if c in frame.columns]
        ds = (frame.set_index(keys) if keys else frame).to_xarray()
        ds.attrs.update({k: v for k, v in self.meta.items() if isinstance(v, str | int | float)})
        return ds

    @property
    def notes(self) -> list[str]:
        return list(self.meta.get("notes", []))

    def __repr__(self) -> str:
        main = self.tables.get(self.main)
        shape = f"{len(main)} rows" if main is not None else "no table"
        return f"<critmin {self.kind} result: {self.main} ({shape}); tables {list(self.tables)}>"

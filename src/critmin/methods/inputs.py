"""Assemble the labelled arrays every assessment method needs from the long tables.

This is the one place where tables become arrays for the assessment layer; the
methods themselves (geopolrisk, eu_sr, usgs) are pure functions of these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import (
    COMMODITY,
    COUNTRY,
    EXPORTER,
    IMPORTER,
    INDICATOR,
    PSEUDO_COUNTRIES,
    ROW_TOTAL,
    WGI_INDICATORS,
    YEAR,
)
from critmin.errors import DataError
from critmin.frames import to_array
from critmin.importers import Importer

DEST = "dest"  # the destination country of a bilateral flow (before aggregation to importers)


@dataclass
class Inputs:
    """Arrays for one stage and a set of years and importers.

    Attributes
    ----------
    production : (commodity, country, year) t — country rows plus the ``ROW`` residual
    trade_q : (commodity, exporter, dest, year) t
    trade_v : (commodity, exporter, dest, year) USD
    governance : (country, indicator, year) WGI estimate; NaN where missing
    membership : (importer, country) 1/0
    named : (country,) bool — a supplier (not a residual / unallocated row)
    """

    stage: str
    years: list[int]
    production: xr.DataArray
    trade_q: xr.DataArray
    trade_v: xr.DataArray
    governance: xr.DataArray
    membership: xr.DataArray
    named: xr.DataArray
    importers: list[Importer]
    basis: dict[str, str] = field(default_factory=dict)
    governance_year: dict[int, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def has_trade(self) -> xr.DataArray:
        """(commodity, year) True where any bilateral flow exists at this stage (else trade terms are NaN)."""
        return (self.trade_q.sum([EXPORTER, DEST]) > 0) | (self.trade_v.sum([EXPORTER, DEST]) > 0)

    def membership_as(self, dim: str) -> xr.DataArray:
        return self.membership.rename({COUNTRY: dim})

    # Bloc aggregates shared by the methods: a bloc is the union of its members.
    def imports(self, *, values: bool = False) -> xr.DataArray:
        """(commodity, exporter, year, importer) flows into each importer's members, t (or USD)."""
        return xr.dot(self.trade_v if values else self.trade_q, self.membership_as(DEST), dim=DEST)

    def extra_bloc_imports(self) -> xr.DataArray:
        """Imports by exporter from outside the importer (intra-bloc flows removed), t."""
        return self.imports() * (1.0 - self.membership_as(EXPORTER))

    def extra_bloc_exports(self) -> xr.DataArray:
        """(commodity, year, importer) exports from the members to countries outside the importer, t."""
        return (xr.dot(self.trade_q, self.membership_as(EXPORTER), dim=EXPORTER)
                * (1.0 - self.membership_as(DEST))).sum(DEST)

    def domestic(self) -> xr.DataArray:
        """(commodity, year, importer) production of the members, t."""
        return xr.dot(self.production, self.membership, dim=COUNTRY)

    def wgi_mean(self) -> xr.DataArray:
        """(country, year) mean of the six WGI estimates (NaN where a country has none)."""
        return self.governance.sel(indicator=list(WGI_INDICATORS)).mean("indicator", skipna=True)


def build_inputs(production: pd.DataFrame, trade: pd.DataFrame, governance: pd.DataFrame, *,
                 importers: list[Importer], years: list[int], stage: str,
                 commodities: list[str] | None = None) -> Inputs:
    """Select ``stage`` and ``years`` and pivot to arrays over a shared country axis.

    Governance for a year falls back to the latest earlier WGI year (the WGI are
    published with a lag); the year used is recorded in ``governance_year``.
    """
    notes: list[str] = []
    prod = production[(production["stage"] == stage) & production["year"].isin(years)
                      & (production["row_type"] != ROW_TOTAL)]
    if commodities:
        prod = prod[prod["commodity"].isin(commodities)]
    # One basis per commodity and stage: tonnes of different things never add up.
    basis: dict[str, str] = {}
    if "basis" in prod and len(prod):
        counts = prod.groupby(["commodity", "basis"], observed=True).size().reset_index(name="n")
        counts = counts.sort_values(["commodity", "n", "basis"], ascending=[True, False, True])
        chosen = counts.drop_duplicates("commodity")
        basis = dict(zip(chosen["commodity"], chosen["basis"], strict=True))
        for c, grp in counts.groupby("commodity"):
            if len(grp) > 1:
                notes.append(f"{c}/{stage}: several bases {sorted(grp['basis'])}; used {basis[c]!r}")
        prod = prod[prod["basis"].astype(str) == prod["commodity"].map(basis).astype(str)]
    tr = trade[(trade["stage"] == stage) & trade["year"].isin(years)]
    if commodities:
        tr = tr[tr["commodity"].isin(commodities)]
    comm = sorted(set(prod["commodity"]) | set(tr["commodity"]))
    if not comm:
        raise DataError(f"no production or trade data for stage {stage!r} in year(s) {years}")
    members = sorted({m for imp in importers for m in imp.members})
    countries = sorted(set(prod["country"]) | set(tr["exporter"]) | set(tr["importer"]) | set(members)
                       | set(governance["country"]))
    coords = {COMMODITY: comm, COUNTRY: countries, YEAR: years}
    P = to_array(prod, [COMMODITY, COUNTRY, YEAR], coords=coords, units="t")
    tcoords = {COMMODITY: comm, EXPORTER: countries, DEST: countries, YEAR: years}
    trq = tr.rename(columns={"importer": DEST})
    Q = to_array(trq, [COMMODITY, EXPORTER, DEST, YEAR], "quantity", coords=tcoords, units="t")
    V = to_array(trq, [COMMODITY, EXPORTER, DEST, YEAR], "value_usd", coords=tcoords, units="USD")
    # Governance: per requested year, the latest WGI year <= it.
    gov_years = sorted(set(governance["year"]))
    gyear: dict[int, int] = {}
    frames = []
    for y in years:
        earlier = [g for g in gov_years if g <= y]
        if not earlier:
            raise DataError(f"no governance (WGI) data for {y} or any earlier year")
        gyear[y] = earlier[-1]
        sel = governance[governance["year"] == earlier[-1]].assign(year=y)
        frames.append(sel)
        if earlier[-1] != y:
            notes.append(f"governance for {y}: WGI {earlier[-1]} (latest available)")
    gov = pd.concat(frames, ignore_index=True)
    G = to_array(gov, [COUNTRY, INDICATOR, YEAR], fill=np.nan,
                 coords={COUNTRY: countries, INDICATOR: list(WGI_INDICATORS), YEAR: years})
    M = xr.DataArray(np.array([[1.0 if c in imp.members else 0.0 for c in countries] for imp in importers]),
                     dims=[IMPORTER, COUNTRY], coords={IMPORTER: [i.label for i in importers], COUNTRY: countries})
    named = xr.DataArray(np.array([c not in PSEUDO_COUNTRIES for c in countries]), dims=[COUNTRY],
                         coords={COUNTRY: countries})
    no_trade = sorted(set(prod["commodity"]) - set(tr["commodity"]))
    if no_trade:
        notes.append(f"no {stage}-stage trade data for {', '.join(no_trade)}: trade-based terms are NaN")
    sources = sorted(set(prod.get("source", pd.Series(dtype=str)).astype(str))
                     | set(tr.get("source", pd.Series(dtype=str)).astype(str))
                     | set(gov.get("source", pd.Series(dtype=str)).astype(str)))
    return Inputs(stage=stage, years=list(years), production=P, trade_q=Q, trade_v=V, governance=G,
                  membership=M, named=named, importers=importers, basis=basis, governance_year=gyear,
                  sources=sources, notes=notes)

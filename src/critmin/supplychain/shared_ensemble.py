"""The one ensemble of an analysis: network, hazards, responses, seed and chunking, built once.

Every consumer of disruption draws takes the same :class:`Ensemble`: the Monte Carlo risk table
(:func:`critmin.supplychain.risk.assess_risk` with ``ensemble=``), the stockpile LP and the finance portfolio
(:mod:`critmin.optimize.workflow`). Its per-draw unmet demand over a horizon is :meth:`Ensemble.unmet`: the first
``draws`` draws of ``critmin risk --seed SEED --months MONTHS`` (chunk k of ``chunk`` draws drawn with
``default_rng(SeedSequence(seed).spawn(n)[k])``, exactly as :func:`critmin.supplychain.ensemble.run_ensemble`),
computed once per horizon and kept. A horizon is part of what a draw is (a hazard's probability of occurring is
over the horizon), so the 12-month and 36-month draws of one ensemble are different futures of the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import DRAW
from critmin.errors import ConfigError

#: Draws per chunk (as ``critmin risk``): part of the reproducibility key.
ENSEMBLE_CHUNK = 25_000


@dataclass(eq=False)
class Ensemble:
    """The ensemble every section of one analysis shares (see the module docstring).

    Attributes
    ----------
    network : Network (:func:`critmin.supplychain.network.build_network`)
    hazards : DataFrame (:func:`critmin.supplychain.hazards.estimate_hazards`)
    responses : Responses or None (the network's cited ramp-up and substitution, or none)
    seed, chunk : the reproducibility key of the draws
    """

    network: Any
    hazards: pd.DataFrame
    responses: Any
    seed: int
    chunk: int = ENSEMBLE_CHUNK
    _unmet: dict[int, xr.DataArray] = field(default_factory=dict, repr=False)

    @property
    def responses_label(self) -> str:
        return "cited defaults (ramp, substitution)" if self.responses is not None else "none"

    @property
    def consumers(self) -> list[str]:
        return [str(c) for c in self.network.baseline.demand["consumer"].values]

    def unmet(self, months: int, draws: int) -> xr.DataArray:
        """Per-draw unmet demand (draw, commodity, stage, consumer), t over ``months``: the first ``draws`` draws
        of ``critmin risk`` with this ensemble's seed, chunking and responses. Whole chunks are drawn and kept, so
        a later call with as many draws or fewer costs nothing."""
        from critmin.supplychain.ensemble import simulate_unmet

        if draws < 1 or months < 1:
            raise ConfigError(f"--draws and --months must be ≥ 1 (got {draws}, {months})")
        have = self._unmet.get(months)
        n_chunks = -(-draws // self.chunk)
        if have is None or have.sizes[DRAW] < n_chunks * self.chunk:
            seqs = np.random.SeedSequence(self.seed).spawn(n_chunks)
            parts = [simulate_unmet(self.network, self.hazards, self.responses, n_draws=self.chunk, months=months,
                                    rng=np.random.default_rng(sq)) for sq in seqs]
            have = xr.concat(parts, dim=DRAW) if len(parts) > 1 else parts[0]
            have = have.assign_coords({DRAW: np.arange(have.sizes[DRAW])})
            self._unmet[months] = have
        out = have.isel({DRAW: slice(0, draws)})
        out.attrs.update({"seed": self.seed, "chunk": self.chunk, "months": months,
                          "responses": self.responses_label})
        return out

    def describe(self, months: int, draws: int) -> str:
        """One sentence a reader can reproduce the draws from."""
        return (f"{draws:,} draws over {months} months, seed {self.seed}, chunks of {self.chunk:,} draws, "
                f"responses: {self.responses_label} (the first {draws:,} draws of "
                f"critmin risk --seed {self.seed} --months {months})")


def build_ensemble(catalog: Any, *, seed: int, commodities: list[str] | None = None, responses: bool = True,
                   chunk: int = ENSEMBLE_CHUNK, hazards_file: Any = None) -> Ensemble:
    """The ensemble of ``critmin risk`` (its commodities first, then any others asked for; consumers USA, JPN and
    the rest of the world), with the network's cited responses unless ``responses`` is False."""
    from critmin.supplychain.hazards import estimate_hazards
    from critmin.supplychain.kernel import Responses
    from critmin.supplychain.network import build_network
    from critmin.supplychain.risk import PRIORITY_COMMODITIES
    from critmin.supplychain.scenario_cuts import default_responses

    wanted = list(dict.fromkeys([*PRIORITY_COMMODITIES, *(commodities or [])]))
    net = build_network(catalog, commodities=wanted)
    hz = estimate_hazards(catalog.table("export_controls"), overrides=hazards_file)
    resp = None
    if responses:
        d = default_responses(net)
        resp = Responses(ramp=d["ramp"], substitution=d["substitution"])
    return Ensemble(network=net, hazards=hz, responses=resp, seed=seed, chunk=chunk)

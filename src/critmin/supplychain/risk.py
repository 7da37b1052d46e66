"""Monte Carlo supply risk: the public face of the hazards → draws → ensemble → statistics chain.

Three phases, each pure except the explicit file reader :func:`load_overrides`:

1. :func:`estimate_hazards` (:mod:`~critmin.supplychain.hazards`) turns the cited event catalogue
   (``export_controls``) into one row per (country, commodity, stage, target): an annual event probability,
   the measure mix (ban, quota, …, :mod:`~critmin.supplychain.measures`) that sets the magnitude, and the
   duration distribution; user overrides are read by :mod:`~critmin.supplychain.overrides`.
2. :func:`build_plan` (:mod:`~critmin.supplychain.plan`) matches the hazards to the network's flows;
   :func:`sample_cuts` (:mod:`~critmin.supplychain.sampling`) draws disruptions for ``n_draws`` futures: the
   ``cut`` array of :func:`critmin.supplychain.kernel.simulate` with a leading ``draw`` dimension.
3. :func:`run_ensemble` (:mod:`~critmin.supplychain.ensemble`) propagates the draws through the chain with the
   same cascade kernel as :func:`~critmin.supplychain.kernel.simulate` and reduces them
   (:mod:`~critmin.supplychain.reporting`) to expected shortfall, VaR / CVaR (95 %, 99 %) and the probability of
   any shortfall per commodity × stage × consumer, the blocs (e.g. ``USA+JPN``, summed per draw before any
   quantile) and each supplier country's contribution.

:func:`assess_risk` is the workflow of ``critmin risk``. Each module's docstring states its part of the
estimator, which is also summarised in ``hazards.attrs["estimator"]`` and every result's ``attrs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, RESIDUAL
from critmin.errors import ConfigError
from critmin.supplychain.ensemble import local_cluster, run_ensemble, simulate_unmet
from critmin.supplychain.hazards import ESTIMATOR, estimate_hazards
from critmin.supplychain.kernel import Responses
from critmin.supplychain.measures import (
    ALL,
    CATALOGUE_STAGES,
    EVENT_JUDGEMENTS,
    MAGNITUDES,
    MEASURES,
    PROCESSED_STAGES,
    WILD,
)
from critmin.supplychain.overrides import load_overrides
from critmin.supplychain.plan import build_plan
from critmin.supplychain.reporting import ALPHAS, tidy, var_cvar
from critmin.supplychain.sampling import sample_cuts

#: The priority commodities of the issue (network ids): the default of ``critmin risk``.
PRIORITY_COMMODITIES = ("rare-earths", "gallium", "germanium", "graphite", "antimony", "tungsten", "cobalt", "nickel",
                        "lithium")


def assess_risk(importer: str = "USA,JPN,USA+JPN", commodities: Sequence[str] | None = None, *, draws: int = 100_000,
                seed: int = 0, months: int = 12, workers: int | None = None, scheduler: str | None = None,
                hazards_file: str | Path | None = None, catalog: Any = None, chunk: int = 25_000,
                progress: Callable[[int, int], None] | None = None,
                ensemble: Any = None) -> tuple[xr.Dataset, pd.DataFrame, dict]:
    """Workflow of ``critmin risk``: network → hazards → ensemble → tidy table.

    Parameters
    ----------
    importer : comma list of ISO3 codes and blocs (``USA,JPN,USA+JPN``); each member is a network consumer
        and the rest of the world is ``ROW``; a bloc is the per-draw sum of its members.
    commodities : network commodity ids (default :data:`PRIORITY_COMMODITIES`).
    draws, seed, months, chunk : see :func:`run_ensemble`.
    workers : run on a local Dask cluster of this many single-threaded processes.
    scheduler : address of a running Dask scheduler (exclusive with ``workers``).
    hazards_file : YAML/CSV overrides (:func:`load_overrides`).
    catalog : Catalog (default: the bundled dataset).
    ensemble : :class:`~critmin.supplychain.shared_ensemble.Ensemble`, optional
        The analysis's one ensemble: its network, hazards and responses are used (and its seed and chunking
        must be ``seed`` and ``chunk``), so this table and its other consumers describe the same draws.

    Returns
    -------
    (Dataset, tidy DataFrame, meta) — meta holds ``sources`` (ids), ``assumptions`` and ``notes``.
    """
    from critmin.importers import parse_importers
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network
    from critmin.supplychain.scenario_cuts import default_responses

    if workers is not None and scheduler is not None:
        raise ConfigError("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if draws < 1:
        raise ConfigError(f"--draws must be ≥ 1, got {draws}")
    if not 1 <= months <= 600:
        raise ConfigError(f"--months must be in 1..600, got {months}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    cat = catalog or Catalog()
    imps = parse_importers(importer)
    named: list[str] = []
    for imp in imps:
        for m in imp.members:
            if m == RESIDUAL:
                raise ConfigError("ROW is the rest of the world, always modelled; name countries or blocs")
            if m not in named:
                named.append(m)
    blocs = {imp.label: list(imp.members) for imp in imps if imp.is_bloc}
    if ensemble is not None:
        _check_ensemble(ensemble, named, commodities, seed, chunk, hazards_file)
        hz, net, responses = ensemble.hazards, ensemble.network, ensemble.responses
    else:
        hz = estimate_hazards(cat.table("export_controls"), overrides=hazards_file)
        net = build_network(cat, list(commodities or PRIORITY_COMMODITIES), consumers=(*named, RESIDUAL))
        d = default_responses(net)
        responses = Responses(ramp=d["ramp"], substitution=d["substitution"])
    if workers is not None:
        from distributed import Client

        with local_cluster(workers) as cluster, Client(cluster) as client:
            ds = run_ensemble(net, hz, responses, n_draws=draws, months=months, seed=seed, chunk=chunk,
                              scheduler=client, progress=progress, blocs=blocs)
        ds.attrs["scheduler"] = f"local Dask cluster, {workers} worker process(es)"
    else:
        ds = run_ensemble(net, hz, responses, n_draws=draws, months=months, seed=seed, chunk=chunk,
                          scheduler=scheduler, progress=progress, blocs=blocs)
    frame = tidy(ds, consumers=[imp.label for imp in imps])
    frame, unknown_notes = _mask_blocs_with_unknown_members(frame, net, blocs)
    sources = sorted({*cat.table("export_controls")["source"].dropna().unique(),
                      *(src for tab in ("production", "trade") for src in cat.table(tab)["source"].dropna().unique())})
    notes = [f"hazards: {len(hz.attrs['counted_events'])} events of the export-control catalogue, "
             f"{hz.attrs['window'][0]}–{hz.attrs['window'][1]} (as of {hz.attrs['as_of']}); {hz.attrs['estimator']}",
             *hz.attrs["notes"],
             "responses: cited defaults of the network (spare-capacity ramp, substitution); no stockpile or leakage; "
             "the kernel has one response clock starting at month 0, so a disruption starting later in the horizon is "
             "credited with ramp-up time before it began (optimistic)", *unknown_notes]
    return ds, frame, {"sources": sources, "assumptions": net.assumptions, "notes": notes}


def _check_ensemble(ens: Any, named: list[str], commodities: Sequence[str] | None, seed: int, chunk: int,
                    hazards_file: Any) -> None:
    """An ensemble handed to :func:`assess_risk` must be the one its other arguments describe."""
    if hazards_file is not None:
        raise ConfigError("give hazard overrides to the ensemble (build_ensemble(hazards_file=...)), not beside it")
    if (ens.seed, ens.chunk) != (seed, chunk):
        raise ConfigError(f"the ensemble's seed/chunk ({ens.seed}, {ens.chunk}) differ from seed={seed}, chunk={chunk}")
    missing = [m for m in named if m not in ens.consumers]
    if missing:
        raise ConfigError(f"importer member(s) {', '.join(missing)} are not consumers of the ensemble's network "
                          f"({', '.join(ens.consumers)})")
    have = [str(c) for c in ens.network.baseline.demand[COMMODITY].values]
    if [c for c in (commodities or PRIORITY_COMMODITIES) if c not in have]:
        raise ConfigError("the ensemble's network lacks commodities asked for: "
                          + ", ".join(c for c in (commodities or PRIORITY_COMMODITIES) if c not in have))


def _mask_blocs_with_unknown_members(frame: pd.DataFrame, net: Any, blocs: dict[str, list[str]]
                                     ) -> tuple[pd.DataFrame, list[str]]:
    """A bloc whose member's demand at a commodity × stage is unknown (``network.known`` False) is unknown there
    too: its figures would otherwise be the known members' alone. Those rows are kept with NaN numbers."""
    known = net.known
    notes: list[str] = []
    out = frame.copy()
    numeric = [c for c in out.columns if c.endswith("_t") or c == "p_shortfall"]
    consumers = set(map(str, known["consumer"].values))
    for label, members in blocs.items():
        for (c, s), _g in out[out["consumer"] == label].groupby(["commodity", "stage"]):
            missing = [m for m in members if m in consumers
                       and not bool(known.sel(commodity=c, stage=s, consumer=m))]
            if missing:
                rows = (out["consumer"] == label) & (out["commodity"] == c) & (out["stage"] == s)
                out.loc[rows, numeric] = np.nan
                if "top_contributors" in out:
                    out.loc[rows, "top_contributors"] = ""
                notes.append(f"{label} {c} {s}: unknown, because the demand of {', '.join(missing)} is unknown "
                             "(the bloc's figures would otherwise be its other members' alone)")
    return out, notes


__all__ = [
    "ALL",
    "ALPHAS",
    "CATALOGUE_STAGES",
    "ESTIMATOR",
    "EVENT_JUDGEMENTS",
    "MAGNITUDES",
    "MEASURES",
    "PRIORITY_COMMODITIES",
    "PROCESSED_STAGES",
    "WILD",
    "assess_risk",
    "build_plan",
    "estimate_hazards",
    "load_overrides",
    "local_cluster",
    "run_ensemble",
    "sample_cuts",
    "simulate_unmet",
    "tidy",
    "var_cvar",
]

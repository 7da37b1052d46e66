"""Permit-stage timelines: time to first production per project, by country and permitting track.

A project passes through ``exploration → feasibility → environmental_review → permits → construction``;
its curated ``status`` and ``permitting_status`` decide which stages remain. Each stage lasts
``median × F × exp(sigma Z)`` months (``F`` a project factor shared by its stages), the ordinary track adds a
permitting-caused delay with the probability ERM reports, FAST-41 removes that delay, and the EU CRMA caps the
permit stages at the statutory 27 months (extraction) or 15 months (other). The numbers, each with its source
or reason, are in ``policy/permitting.yml``; nothing is read at import time.

All samplers draw the same random numbers in the same order whatever the project and track, so two tracks or
two values of ``months_saved`` run with the same seed are compared path by path (common random numbers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from critmin.contracts import parse_yaml, read_yaml, validate
from critmin.errors import ConfigError, DataError

TRACKS = ("ordinary", "fast41", "eu_crma")


class PermittingParams(BaseModel):
    """``policy/permitting.yml``, or a user YAML of the same shape: these keys must be present.

    Their content is read where it is used (:func:`stage_medians`, :func:`remaining_stages`,
    :func:`sample_timeline`); other keys (reasons, sources) are kept as given.
    """

    model_config = ConfigDict(extra="allow")

    stages: Any
    permit_stages: Any
    anchor: Any
    stage_shares: Any
    dispersion: Any
    permitting_delay: Any
    tracks: Any
    status: Any
    permitting_status_rules: Any


_HINT = " (see policy/permitting.yml)"


@cache
def _bundled_params() -> dict[str, Any]:
    where = "permitting parameters permitting.yml (shipped)"
    doc = parse_yaml(resources.files("critmin.policy").joinpath("permitting.yml").read_text("utf-8"), where=where,
                     error=ConfigError)
    validate(PermittingParams, doc.data, where=where, error=ConfigError, node=doc.node, hint=_HINT)
    return doc.data


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The timeline parameters: ``policy/permitting.yml``, or a user YAML of the same shape.

    Raises
    ------
    ConfigError
        A file that cannot be read or lacks a required key (see :class:`PermittingParams`).
    """
    if path is None:
        return _bundled_params()
    p = Path(path)
    where = f"permitting parameters {p}"
    doc = read_yaml(p, where=where, error=ConfigError)
    validate(PermittingParams, doc.data, where=where, error=ConfigError, node=doc.node, hint=_HINT)
    return doc.data


def stage_medians(params: Mapping[str, Any]) -> dict[str, float]:
    """Median duration of each stage, months, derived so the mean total equals the cited anchor.

    ``E[total] = sum_s median_s exp(sigma_s**2/2) E[F] + E[delay]`` with ``E[F] = exp(sigma_F**2/2)`` and
    ``E[delay] = p median_d exp(sigma_d**2/2)``; the shares split ``anchor - E[delay]`` between the stages.
    """
    shares = params["stage_shares"]["values"]
    stages = params["stages"]
    if set(shares) != set(stages):
        raise ConfigError(f"stage_shares must cover exactly the stages {stages} (got {sorted(shares)})")
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-9):
        raise ConfigError(f"stage_shares must sum to 1 (got {sum(shares.values()):.6f})")
    total = 12.0 * float(params["anchor"]["mean_discovery_to_production_years"])
    d = params["permitting_delay"]
    e_delay = float(d["probability"]["value"]) * float(d["median_months"]["value"]) * math.exp(
        float(d["sigma"]["value"]) ** 2 / 2)
    s_sig = float(params["dispersion"]["stage_sigma"]["value"])
    f_sig = float(params["dispersion"]["project_sigma"]["value"])
    scale = (total - e_delay) / (math.exp(s_sig**2 / 2) * math.exp(f_sig**2 / 2))
    return {s: float(shares[s]) * scale for s in stages}


def _field(project: Mapping[str, Any], name: str) -> str:
    v = project.get(name)
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


@dataclass(frozen=True)
class Remaining:
    """The stages a project still has to pass, and why."""

    stages: tuple[str, ...]
    partial_construction: bool
    extraction: bool
    notes: tuple[str, ...] = ()


def remaining_stages(project: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> Remaining:
    """Stages left before first production, from ``status`` and ``permitting_status``.

    Parameters
    ----------
    project : mapping
        A row of the ``projects`` table (``project_id``, ``status``, ``permitting_status``, ``stage_id``).

    Raises
    ------
    ConfigError
        The row is a programme or framework (no supply-chain stage), so it has no first production.
    DataError
        A ``status`` the mapping in ``permitting.yml`` does not cover (mappings are exhaustive).
    """
    params = params or load_params()
    pid = _field(project, "project_id") or "(unnamed project)"
    stage_id = _field(project, "stage_id")
    if not stage_id:
        raise ConfigError(f"project {pid} has no supply-chain stage (a programme or framework, not a plant or "
                          "mine): it has no time to first production")
    extraction = "mine" in stage_id.split(";")
    status = _field(project, "status").strip().lower()
    table = params["status"]
    if status not in table:
        raise DataError(f"project {pid}: status {status!r} is not mapped in policy/permitting.yml "
                        f"(known: {', '.join(table)})", column="status")
    stages: list[str] = list(params["stages"])
    rule = table[status]
    notes = [rule["note"]] if rule.get("note") else []
    first = rule["first_stage"]
    text = _field(project, "permitting_status").lower()
    effects = {r["effect"]: r for r in params["permitting_status_rules"] if re.search(r["match"], text)}
    if first is None or "done" in effects:
        why = "status operating" if first is None else f"permitting_status {text!r}"
        return Remaining((), False, extraction, (*notes, f"already producing ({why})"))
    idx = stages.index(first)
    if "at_least" in effects:
        idx = max(idx, stages.index(effects["at_least"]["stage"]))
    if "at_most" in effects:
        idx = min(idx, stages.index(effects["at_most"]["stage"]))
        notes.append(f"permitting_status {text!r}: review not started")
    if not extraction and stages[idx] == "exploration":
        idx = stages.index("feasibility")  # a plant has no deposit to explore
    left = stages[idx:]
    if "permits_done" in effects and "at_most" not in effects:
        left = [s for s in left if s not in params["permit_stages"]]
        notes.append(f"permitting_status {text!r}: permits granted")
    partial = bool(rule.get("partial")) and left[:1] == ["construction"]
    return Remaining(tuple(left), partial, extraction, tuple(notes))


def _track_applies(track: str, project: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    countries = spec["countries"]
    if countries == "any":
        return
    if isinstance(countries, str):
        from critmin.importers import groups

        countries = groups()[countries]["members"]
    codes = {c.strip() for c in _field(project, "country").replace(",", ";").split(";") if c.strip()}
    if not codes & set(countries):
        pid = _field(project, "project_id")
        raise ConfigError(f"track {track!r} does not apply to project {pid} in {', '.join(sorted(codes)) or '?'}: "
                          f"it covers {spec['countries'] if isinstance(spec['countries'], str) else ', '.join(countries)} "
                          "only (policy/permitting.yml tracks)")


@dataclass
class Timeline:
    """Sampled timeline of one project on one track, months from now, one value per draw."""

    total: np.ndarray
    permit: np.ndarray
    stages: dict[str, np.ndarray]
    remaining: Remaining
    track: str
    notes: list[str] = field(default_factory=list)


def sample_timeline(project: Mapping[str, Any], track: str = "ordinary", n: int = 10_000,
                    rng: np.random.Generator | None = None, params: Mapping[str, Any] | None = None) -> Timeline:
    """Draw ``n`` timelines of the project's remaining stages on ``track``.

    Returns
    -------
    Timeline
        ``total`` months to first production, ``permit`` months spent in the permit stages (after any cap),
        and each remaining stage's months.
    """
    params = params or load_params()
    if track not in params["tracks"]:
        raise ConfigError(f"unknown permitting track {track!r}; expected one of {', '.join(params['tracks'])}")
    if n < 1:
        raise ConfigError(f"number of draws must be >= 1 (got {n})")
    rng = rng if rng is not None else np.random.default_rng()
    spec = params["tracks"][track]
    _track_applies(track, project, spec)
    rem = remaining_stages(project, params)
    medians = stage_medians(params)
    stages = list(params["stages"])
    s_sig = float(params["dispersion"]["stage_sigma"]["value"])
    f_sig = float(params["dispersion"]["project_sigma"]["value"])
    d = params["permitting_delay"]
    # Fixed draw order and shapes for every project and track: common random numbers.
    factor = np.exp(f_sig * rng.standard_normal(n))
    z = rng.standard_normal((n, len(stages)))
    u_delay = rng.random(n)
    z_delay = rng.standard_normal(n)
    frac = rng.random(n)
    per_stage: dict[str, np.ndarray] = {}
    for j, s in enumerate(stages):
        if s in rem.stages:
            per_stage[s] = medians[s] * factor * np.exp(s_sig * z[:, j])
    if rem.partial_construction:
        per_stage["construction"] = per_stage["construction"] * frac
    permit_names = [s for s in params["permit_stages"] if s in per_stage]
    notes = list(rem.notes)
    permit = np.zeros(n)
    if permit_names:
        permit = float(spec.get("permit_speedup", 1.0)) * sum(per_stage[s] for s in permit_names)
        if not spec.get("removes_permitting_delay"):
            hit = u_delay < float(d["probability"]["value"])
            permit = permit + hit * float(d["median_months"]["value"]) * np.exp(float(d["sigma"]["value"]) * z_delay)
        cap = spec.get("cap_months")
        if cap:
            limit = float(cap["extraction" if rem.extraction else "other"])
            permit = np.minimum(permit, limit)
            notes.append(f"EU CRMA cap {limit:g} months on the permit stages "
                         f"({'extraction' if rem.extraction else 'processing/recycling'})")
    else:
        notes.append("no permit stage remains: the track changes nothing")
    other = sum((per_stage[s] for s in per_stage if s not in permit_names), np.zeros(n))
    return Timeline(total=other + permit, permit=permit, stages=per_stage, remaining=rem, track=track, notes=notes)


def time_to_first_production(project: Mapping[str, Any], track: str = "ordinary", n: int = 10_000,
                             rng: np.random.Generator | None = None,
                             params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Months from now to first production, ``n`` draws (0 for a producing project).

    Parameters
    ----------
    project : mapping
        A row of the ``projects`` table.
    track : str
        ``ordinary`` | ``fast41`` (US projects) | ``eu_crma`` (EU projects).
    n : int
        Number of draws.
    rng : numpy.random.Generator
        Source of randomness; record its seed.
    params : mapping, optional
        Parameters (default ``policy/permitting.yml``).

    Returns
    -------
    numpy.ndarray
        Months, shape ``(n,)``.
    """
    return sample_timeline(project, track, n, rng, params).total


def p_produces_within(project: Mapping[str, Any], horizon_months: float, track: str = "ordinary",
                      n: int = 10_000, rng: np.random.Generator | None = None,
                      params: Mapping[str, Any] | None = None) -> float:
    """Probability that first production comes within ``horizon_months`` (share of draws)."""
    if horizon_months <= 0:
        raise ConfigError(f"horizon must be > 0 months (got {horizon_months})")
    return float(np.mean(time_to_first_production(project, track, n, rng, params) <= horizon_months))


def value_of_faster_permitting(project: Mapping[str, Any], months_saved: float, shortfall_relief_per_month_t: float,
                               horizon_months: float, track: str = "ordinary", n: int = 10_000,
                               rng: np.random.Generator | None = None,
                               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Expected shortfall avoided inside the horizon when the permit stages are ``months_saved`` shorter.

    Each draw's permit time becomes ``max(permit - months_saved, 0)`` (one cannot save more time than permitting
    takes), first production moves earlier by the difference, and the project relieves
    ``shortfall_relief_per_month_t`` tonnes for every producing month inside the horizon. The baseline and the
    faster case use the same draws, so the value is >= 0 and non-decreasing in ``months_saved`` draw by draw.

    Parameters
    ----------
    months_saved : float
        Months cut from the permit stages (>= 0).
    shortfall_relief_per_month_t : float
        Tonnes of shortfall the project relieves per month once producing (>= 0); it comes from the supply-chain
        shortfall ensemble, not from this module.
    horizon_months : float
        Months from now within which relief counts (> 0).

    Returns
    -------
    dict
        ``expected_avoided_t`` (t), ``per_month_saved_t`` (t per month saved), ``p_within_base`` and
        ``p_within_faster`` (probabilities), ``mean_months_base`` / ``mean_months_faster``, ``notes``.
    """
    if months_saved < 0:
        raise ConfigError(f"months saved must be >= 0 (got {months_saved})")
    if shortfall_relief_per_month_t < 0:
        raise ConfigError(f"shortfall relief per month must be >= 0 t (got {shortfall_relief_per_month_t})")
    if horizon_months <= 0:
        raise ConfigError(f"horizon must be > 0 months (got {horizon_months})")
    tl = sample_timeline(project, track, n, rng, params)
    faster_permit = np.maximum(tl.permit - months_saved, 0.0)
    t_fast = tl.total - (tl.permit - faster_permit)
    producing = np.maximum(horizon_months - tl.total, 0.0)
    producing_fast = np.maximum(horizon_months - t_fast, 0.0)
    avoided = shortfall_relief_per_month_t * float(np.mean(producing_fast - producing))
    return {"months_saved": float(months_saved), "expected_avoided_t": avoided,
            "per_month_saved_t": avoided / months_saved if months_saved > 0 else float("nan"),
            "p_within_base": float(np.mean(tl.total <= horizon_months)),
            "p_within_faster": float(np.mean(t_fast <= horizon_months)),
            "mean_months_base": float(tl.total.mean()), "mean_months_faster": float(t_fast.mean()),
            "notes": tl.notes}


def project_row(catalog, project_id: str) -> dict[str, Any]:
    """The ``projects`` row of ``project_id`` as a dict.

    Raises
    ------
    ConfigError
        Unknown id (the message lists the known ones).
    """
    table: pd.DataFrame = catalog.table("projects")
    rows = table[table["project_id"] == project_id]
    if rows.empty:
        raise ConfigError(f"unknown project {project_id!r}; known: {', '.join(table['project_id'])}")
    return rows.iloc[0].to_dict()

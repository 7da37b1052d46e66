"""Disruption hazards from the export-control catalogue: event rates, durations and magnitudes (pure).

:func:`estimate_hazards` turns the cited event catalogue (``export_controls``) into one row per
(country, commodity, stage, target): an annual event probability, the measure mix (ban, quota, …) that sets
the magnitude, and the duration distribution. User overrides come from
:func:`critmin.supplychain.overrides.load_overrides`; the measures and the judgements on catalogue rows are
declared in :mod:`critmin.supplychain.measures`.

The estimator (also in ``hazards.attrs["estimator"]`` and every ensemble's ``attrs``)
---------------------------------------------------------------------------------------
*Events.* An event is a catalogue row that restricts a material flow: stage ``ore`` → ``mine``,
``processed`` → ``refine``, ``product`` → ``component`` (the catalogue's ``stage_id``); ``technology`` and
``scrap`` rows move no tonnes in the chain and are left out. Declared judgements (:data:`EVENT_JUDGEMENTS`,
each with its reason) drop rows that are not new restrictions (a WTO ruling, the 2015 end of quotas, the
November 2025 suspensions, which instead *end* the measures they suspend). An event counts in year y if its
``effective`` date (else ``announced``) falls in the window ``[start_year, end_year]`` and not after the
catalogue date ``as_of`` (default: the latest ``announced`` date in the catalogue).

*Probability.* Per row (country c, commodity m, stage s, target k) with n events in T years of
observation (T = window length, cut at ``as_of``), onsets are a Poisson process with rate λ. With the
Jeffreys prior π(λ) ∝ λ^(-1/2) the posterior is Gamma(n + ½, T) and the predictive probability of at least
one onset in the next h years is

    p(h) = 1 − (T / (T + h)) ** (n + ½)         (negative-binomial predictive; p_annual = p(1))

Why Jeffreys: it is the reference prior for a Poisson rate (invariant to reparametrisation), it gives a
non-zero probability to a cell with no event so far while weighing only half an event against 16 years of
record, and it is exact under the Poisson model, so no ad-hoc Laplace "+1" inflates the rare cells.
Which cells get a prior-only row: every commodity × stage of a country that has used export controls in the
window (``country, *, *, all`` with n = 0: p_annual = 1 − (16/17)^½ = 3.0 % for 2010–2025), because a
government that restricts one mineral is evidence of the instrument being available for others. Countries with no
event in the catalogue get ``background_rate`` (default 0: the catalogue is a record of the restrictions
that happened, not a survey of every producer, and the prior alone would give every supplier in the world
3 %/year; set it in an overrides file if you want one).

*Duration.* One pooled Kaplan–Meier estimate of months from effective to end over every counted event
(per-row samples have 0–3 events): ended events are observed, open events are censored at ``as_of``,
an event suspended before it took effect has duration 0 (it was imposed and did not bite). The survival
mass left after the last observed end (the largest times are censored) is put at +∞: the event outlasts
any horizon. A row may override it with a fixed ``duration_months``.

*Magnitude.* The fraction of the targeted flow withheld (leakage through third countries is a response,
``Responses.leakage``, not part of the magnitude) is uniform on [lo, hi] per measure (:data:`MAGNITUDES`:
ban and export suspension 1; quota, licensing, tax and disruption are judgements with reasons, because the
catalogue records no volumes). A row's measure is drawn from its events' measure mix (the country's mix for
prior-only rows).

References
----------
Jeffreys, H. (1946). An invariant form for the prior probability in estimation problems. Proc. R. Soc. A 186.
Kaplan, E. L. & Meier, P. (1958). Nonparametric estimation from incomplete observations. JASA 53(282).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from critmin.constants import STAGES
from critmin.errors import ConfigError, DataError
from critmin.supplychain.measures import ALL, CATALOGUE_STAGES, EVENT_JUDGEMENTS, MAGNITUDES, MEASURES, WILD
from critmin.supplychain.overrides import apply_overrides, load_overrides


def _date(value: Any) -> pd.Timestamp | None:
    """Parse a partial date (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``) to its first day; None if blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() in ("", "nan", "NaT"):
        return None
    s = str(value).strip()
    if re.fullmatch(r"\d{4}", s):
        s += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", s):
        s += "-01"
    try:
        return pd.Timestamp(s)
    except ValueError:
        return None


def _months(a: pd.Timestamp, b: pd.Timestamp) -> float:
    """Months from a to b (average month 365.25/12 days)."""
    return (b - a).days / (365.25 / 12.0)


def _target(value: Any) -> str:
    """Catalogue ``targets`` → ``all`` or an ISO3 code (``USA``, ``JPN (military …)`` → ``JPN``)."""
    s = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    if not s or s.lower().startswith("all"):
        return ALL
    m = re.match(r"([A-Z]{3})\b", s)
    return m.group(1) if m else ALL


def _events_table(events: pd.DataFrame, start_year: int, end_year: int,
                  as_of: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """One row per counted event with onset, end, duration (months), censoring flag; plus notes."""
    notes: list[str] = []
    ev = events.copy()
    country_col = "country" if "country" in ev.columns else "country_iso3"
    commodity_col = "commodity" if "commodity" in ev.columns else "commodities"
    ends: dict[str, pd.Timestamp] = {}
    excluded: set[str] = set()
    for eid, j in EVENT_JUDGEMENTS.items():
        if eid not in set(ev["event_id"]):
            continue
        if j["action"] in ("exclude", "relaxation"):
            excluded.add(eid)
            notes.append(f"{eid}: {j['action']} — {j['reason']}")
        if j["action"] == "relaxation":
            row = ev.loc[ev["event_id"] == eid].iloc[0]
            when = _date(row.get("effective")) or _date(row.get("announced"))
            for target in j.get("ends", []):
                ends[target] = min(ends.get(target, when), when)
    lo = pd.Timestamp(f"{start_year}-01-01")
    hi = min(pd.Timestamp(f"{end_year + 1}-01-01"), as_of + pd.Timedelta(days=1))
    rows = []
    for r in ev.itertuples(index=False):
        d = r._asdict()
        eid = d["event_id"]
        if eid in excluded:
            continue
        measure = str(d.get("measure", "")).strip().lower()
        if measure not in MEASURES:
            raise DataError(f"event {eid}: unknown measure {measure!r}; expected one of {', '.join(MEASURES)}",
                            column="measure")
        stages_raw = d.get("stage_id")
        if stages_raw is None or (isinstance(stages_raw, float) and math.isnan(stages_raw)) or stages_raw == "":
            stages_raw = ";".join(CATALOGUE_STAGES.get(s.strip(), "") for s in str(d.get("stage", "")).split(";"))
        stages = [s for s in str(stages_raw).split(";") if s in STAGES]
        if "refine" in stages and "metal" not in stages:
            stages.insert(stages.index("refine") + 1, "metal")   # see PROCESSED_STAGES
        if not stages:
            continue  # technology or scrap: no tonnes move in the chain
        onset = _date(d.get("effective")) or _date(d.get("announced"))
        if onset is None or not (lo <= onset < hi):
            continue
        end = _date(d.get("ended"))
        if eid in ends:
            end = ends[eid] if end is None else min(end, ends[eid])
        if end is not None and end > as_of:
            end = None  # a scheduled end after the catalogue date is not yet observed
        known = EVENT_JUDGEMENTS.get(eid, {}).get("action") != "duration_unknown"
        duration = max(_months(onset, end if end is not None else as_of), 0.0) if known else np.nan
        commodities = [c.strip() for c in str(d[commodity_col]).split(";") if c.strip()]
        rows.append({"event_id": eid, "country": str(d[country_col]).strip(), "commodities": commodities,
                     "stages": stages, "measure": measure,
                     # a physical disruption hits whoever buys (Myanmar's only buyer is China): every consumer
                     "target": ALL if measure == "disruption" else _target(d.get("targets")),
                     "onset": onset, "duration": duration, "observed": end is not None})
    return pd.DataFrame(rows), notes


def _kaplan_meier(durations: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier CDF at the distinct observed end times.

    Returns ``(times, cdf)``: months and P(duration ≤ time); 1 − cdf[-1] is the mass beyond (put at +∞).
    """
    times = np.unique(durations[observed])
    surv, cdf = 1.0, []
    for t in times:
        at_risk = np.sum(durations >= t)
        ended = np.sum((durations == t) & observed)
        surv *= 1.0 - ended / at_risk
        cdf.append(1.0 - surv)
    return times.astype(float), np.asarray(cdf, dtype=float)


def estimate_hazards(events: pd.DataFrame, *, start_year: int = 2010, end_year: int = 2025,
                     overrides: str | Path | Mapping[str, Any] | None = None,
                     as_of: str | pd.Timestamp | None = None, background_rate: float = 0.0) -> pd.DataFrame:
    """Disruption hazards per (country, commodity, stage, target) from the export-control catalogue.

    Parameters
    ----------
    events : DataFrame
        The ``export_controls`` table (event_id, country, commodity ``;``-ids, stage_id or stage, measure,
        targets, announced, effective, ended).
    start_year, end_year : int
        Observation window (inclusive); exposure T is its length in years, cut at ``as_of``.
    overrides : path to a YAML/CSV file, or the mapping :func:`critmin.supplychain.overrides.load_overrides` returns
        User hazards (p_annual, duration_months, measure or magnitude range per row), magnitude ranges per
        measure and the background rate.
    as_of : date, optional
        Catalogue date: open events are censored here. Default: the latest ``announced`` date.
    background_rate : float
        Events per year for countries with no counted event (default 0, see module docstring).

    Returns
    -------
    DataFrame
        One row per (country, commodity, stage, target); ``*`` is a wildcard (any commodity / stage of the
        country). Columns: ``n_events``, ``exposure_years`` (T, years), ``shape`` (n + ½),
        ``rate_per_year`` ((n + ½)/T, 1/yr), ``p_annual`` (probability of ≥ 1 onset in a year),
        ``w_<measure>`` (measure mix, sums to 1), ``magnitude_lo``/``magnitude_hi`` (NaN: from the measure),
        ``duration_months`` (NaN: pooled Kaplan–Meier), ``source``, ``events``. ``attrs``: ``estimator``,
        ``duration_km`` ({months, cdf}), ``magnitudes``, ``window``, ``as_of``, ``notes``.
    """
    if end_year < start_year:
        raise ConfigError(f"end_year {end_year} is before start_year {start_year}")
    ov = load_overrides(overrides) if isinstance(overrides, (str, Path)) else (overrides or {})
    as_of_ts = _date(as_of) if as_of is not None else max(
        (d for d in (_date(x) for x in events["announced"]) if d is not None), default=pd.Timestamp(f"{end_year}-12-31"))
    ev, notes = _events_table(events, start_year, end_year, as_of_ts)
    t0 = pd.Timestamp(f"{start_year}-01-01")
    t1 = min(pd.Timestamp(f"{end_year + 1}-01-01"), as_of_ts + pd.Timedelta(days=1))
    exposure = (t1 - t0).days / 365.25
    magnitudes = {m: dict(v) for m, v in MAGNITUDES.items()}
    for m, rng_ in (ov.get("magnitudes") or {}).items():
        magnitudes[m] = {"lo": float(rng_[0]), "hi": float(rng_[1]), "reason": "user override"}
    bg = float(ov.get("background_rate", background_rate))

    # counts per (country, commodity, stage, target), measure mix, event ids
    cells: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    country_mix: dict[str, dict[str, float]] = {}
    for e in ev.itertuples(index=False) if len(ev) else []:
        country_mix.setdefault(e.country, dict.fromkeys(MEASURES, 0.0))[e.measure] += 1.0
        for c in e.commodities:
            for s in e.stages:
                cell = cells.setdefault((e.country, c, s, e.target), {"n": 0, "mix": dict.fromkeys(MEASURES, 0.0),
                                                                       "ids": []})
                cell["n"] += 1
                cell["mix"][e.measure] += 1.0
                cell["ids"].append(e.event_id)
    rows = []

    def add(key, n, mix, ids, source):
        total = sum(mix.values()) or 1.0
        shape = n + 0.5
        rows.append({"country": key[0], "commodity": key[1], "stage": key[2], "target": key[3], "n_events": n,
                     "exposure_years": exposure, "shape": shape, "rate_per_year": shape / exposure,
                     "p_annual": 1.0 - (exposure / (exposure + 1.0)) ** shape,
                     **{f"w_{m}": mix[m] / total for m in MEASURES},
                     "magnitude_lo": np.nan, "magnitude_hi": np.nan, "duration_months": np.nan,
                     "source": source, "events": ";".join(ids)})

    for key in sorted(cells):
        add(key, cells[key]["n"], cells[key]["mix"], cells[key]["ids"], "catalogue")
    for country in sorted(country_mix):
        add((country, WILD, WILD, ALL), 0, country_mix[country], [], "catalogue: country prior (n = 0)")
    if bg > 0:
        rows.append({"country": WILD, "commodity": WILD, "stage": WILD, "target": ALL, "n_events": 0,
                     "exposure_years": np.nan, "shape": np.nan, "rate_per_year": bg,
                     "p_annual": 1.0 - math.exp(-bg), **{f"w_{m}": float(m == "disruption") for m in MEASURES},
                     "magnitude_lo": np.nan, "magnitude_hi": np.nan, "duration_months": np.nan,
                     "source": "background", "events": ""})
    table = pd.DataFrame(rows)
    table = apply_overrides(table, ov.get("hazards"), ov.get("_file"))
    dur = ev["duration"].to_numpy(float) if len(ev) else np.zeros(0)
    obs = ev["observed"].to_numpy(bool) if len(ev) else np.zeros(0, bool)
    keep = ~np.isnan(dur)
    km_t, km_cdf = _kaplan_meier(dur[keep], obs[keep])
    table.attrs.update({
        "estimator": ESTIMATOR,
        "window": [start_year, end_year], "as_of": str(as_of_ts.date()), "exposure_years": exposure,
        "duration_km": {"months": km_t.tolist(), "cdf": km_cdf.tolist(), "n": int(keep.sum()),
                        "observed": int(obs[keep].sum())},
        "magnitudes": magnitudes, "background_rate": bg, "notes": notes,
        "counted_events": sorted(set(ev["event_id"])) if len(ev) else [],
    })
    return table


ESTIMATOR = ("Jeffreys–Poisson per (country, commodity, stage, target): p(h) = 1 − (T/(T+h))^(n+½), T years of "
             "record; prior-only rows (n = 0) for every other commodity × stage of a country with an event; "
             "pooled Kaplan–Meier durations (open events censored at the catalogue date, mass beyond the last end at "
             "+∞); magnitude uniform per measure (ban, suspension 1); comonotone across stages of one country × "
             "commodity × target; VaR = ⌈αn⌉-th order statistic, CVaR by Rockafellar–Uryasev; contribution = "
             "E[L·a_i], a_i the supplier's pro-rata share of the draw's withheld demand fraction")


__all__ = ["ESTIMATOR", "estimate_hazards"]

"""Monte Carlo supply risk: hazards from the export-control catalogue, sampled disruptions, ensemble statistics.

Three phases, each pure except the explicit file reader :func:`load_overrides`:

1. :func:`estimate_hazards` turns the cited event catalogue (``export_controls``) into one row per
   (country, commodity, stage, target): an annual event probability, the measure mix (ban, quota, …) that
   sets the magnitude, and the duration distribution.
2. :func:`sample_cuts` draws disruptions for ``n_draws`` futures: the ``cut`` array of
   :func:`critmin.supplychain.kernel.simulate` with a leading ``draw`` dimension.
3. :func:`run_ensemble` propagates the draws through the chain and reduces them to expected shortfall,
   VaR / CVaR (95 %, 99 %) and the probability of any shortfall per commodity × stage × consumer, the blocs
   (e.g. ``USA+JPN``, summed per draw before any quantile) and each supplier country's contribution.

The estimator (also in ``hazards.attrs["estimator"]`` and every result's ``attrs``)
-------------------------------------------------------------------------------------
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

*Sampling.* Within a horizon of M months each row has at most one onset, with probability p(M/12), at a
time uniform over the horizon; the cut in month t is magnitude × the overlap of [onset, onset + duration)
with [t, t + 1). Rows of one country × commodity × target share their random numbers across stages
(comonotone: one announcement usually covers several stages, e.g. ore and processed), rows of different
commodities or targets are independent. Several rows on the same flow combine as independent measures,
1 − Π(1 − cut), the rule of :func:`critmin.supplychain.scenario.to_cut`. On the ``ROW`` consumer an export
restriction withholds only the exported share ε of the supplier's flow (ROW includes the exporter's own use,
``Network.row_export_share``); a physical disruption hits every buyer and all of it; a measure targeted at a
country outside the named consumers hits ROW in proportion to the supplier's third-country exports going
there (BACI, ``Network.third_exports``; 1 where there are none).

*Indirect cuts.* Where the network has feed mixes (``Network.feed_mix``), a processor country's output is cut
by the share of its feed its feeders withhold, carried down the chain (:mod:`critmin.supplychain.indirect`):
the hazard rows acting on a feeder's flow to the processor (target ``all`` or the processor; a country's own
restriction does not restrict itself, a physical disruption does) give, per draw and month,
ind = min(1, Σ_j f_j · (d_j + ind_j − d_j · ind_j)), and every flow of the processor to a consumer k ≠ p gets
1 − (1 − direct) · (1 − w · ind) (w = 1, or ε for ROW). :func:`sample_cuts` and the fast path compute the
flows' cuts with the same functions (``_entry_losses``, ``_unit_flow_cut``), so the kernel sees the fast path's cuts.

*Statistics.* L = cumulative unmet demand over the horizon (t, the stage's basis) per draw. VaR_α is the
⌈α·n⌉-th smallest L; CVaR_α = VaR_α + E[(L − VaR_α)⁺] / (1 − α) (Rockafellar & Uryasev 2002), exact for
the empirical distribution; expected shortfall = E[L]; p_shortfall = P(L > 0). Blocs are sums of their
members' L per draw. Contribution of supplier i: E[L · a_i] with a_i the supplier's share of the draw's
disruption at that cell, a_i = x_i / Σ_j x_j, where x_i is the fraction of the cell's demand withheld
by i summed over months, plus the same at upstream stages that feed the cell (the consumer's own processors,
u > 0, carried through stages where the consumer has no demand); an indirect cut is credited to the countries
where it originates (the feeders that withhold, by their month-summed share f · d of the processor's loss), not
to the processor. The contributions add up to the expected shortfall (a per-draw pro-rata allocation, Euler-like
for this piecewise-linear model); a bloc's contribution is the sum of its members'.

References
----------
Jeffreys, H. (1946). An invariant form for the prior probability in estimation problems. Proc. R. Soc. A 186.
Kaplan, E. L. & Meier, P. (1958). Nonparametric estimation from incomplete observations. JASA 53(282).
Rockafellar, R. T. & Uryasev, S. (2002). Conditional value-at-risk for general loss distributions.
J. Banking & Finance 26(7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, DRAW, RESIDUAL, STAGES
from critmin.errors import ConfigError, DataError
from critmin.supplychain.kernel import CONSUMER, MONTH, STAGE, SUPPLIER, Baseline, Responses

MEASURES = ("ban", "suspension", "quota", "licensing", "tax", "disruption")
ALL = "all"
WILD = "*"
ALPHAS = (0.95, 0.99)

#: Fraction of the targeted flow withheld while a measure is in force: uniform on [lo, hi].
MAGNITUDES: dict[str, dict[str, Any]] = {
    "ban": {"lo": 1.0, "hi": 1.0, "reason": "a ban prohibits the flow; what still arrives through third "
                                             "countries is Responses.leakage, not part of the magnitude"},
    "suspension": {"lo": 1.0, "hi": 1.0, "reason": "an export suspension (e.g. DR Congo's cobalt, Feb–Oct 2025) "
                                                   "stops the flow like a ban"},
    "quota": {"lo": 0.4, "hi": 0.6, "reason": "the catalogue's two volume quotas: China's 2010 REE quota ~40 % "
                                              "below 2009 (50,145 t to ~30,000 t, scope note of CHN-2010-REE-QUOTA); "
                                              "DR Congo's 96,600 t/yr cobalt quota is 57 % below its 2024 mine output "
                                              "(226,000 t, USGS MCS 2026 in the bundled production table)"},
    "licensing": {"lo": 0.05, "hi": 0.5, "reason": "a licence regime has no volume cap: most civilian trade continues "
                                                   "after delays and some end uses are denied; 5–50 % of the flow "
                                                   "withheld over the episode is a judgement (no volumes in the catalogue)"},
    "tax": {"lo": 0.05, "hi": 0.2, "reason": "an export tax diverts part of the flow to domestic use; no tax event in "
                                             "the catalogue, judgement"},
    "disruption": {"lo": 0.5, "hi": 1.0, "reason": "physical disruption (conflict, border closure): China's imports of "
                                                   "rare earths from Myanmar fell 89 % y/y after the Kachin seizures "
                                                   "(scope note of MMR-2024-KACHIN) — the upper end; judgement for the range"},
}

#: Declared judgements on catalogue rows, each with its reason (style §5). ``exclude``: not a new
#: restriction of a material flow; ``relaxation``: eases earlier measures and ends them (``ends``) at its
#: effective date; ``duration_unknown``: counted as an event, left out of the duration sample.
EVENT_JUDGEMENTS: dict[str, dict[str, Any]] = {
    "CHN-WTO-DS431": {"action": "exclude", "reason": "the WTO dispute about the quota regime already counted as "
                                                     "CHN-2010-REE-QUOTA; its dates are the panel and Appellate Body "
                                                     "rulings, not a new measure"},
    "CHN-2015-QUOTA-END": {"action": "exclude", "reason": "abolished the volume quotas after the WTO ruling (licences "
                                                          "without a volume cap remain): an easing, not a new restriction"},
    "CHN-2025-NOV-70-SUSP": {"action": "relaxation", "ends": ["CHN-2025-OCT-57", "CHN-2025-OCT-58", "CHN-2025-OCT-61",
                                                               "CHN-2025-OCT-62"],
                             "reason": "Announcement No. 70 suspends Announcements 55–58, 61 and 62 of 9 Oct 2025 "
                                       "(scope note): those measures end on 7 Nov 2025"},
    "CHN-2025-US-BAN-SUSP": {"action": "relaxation", "ends": ["CHN-2024-US-BAN"],
                             "reason": "suspends the Dec 2024 in-principle ban on Ga/Ge/Sb/superhard exports to the US "
                                       "(scope note): that ban ends on 9 Nov 2025"},
    "CHN-2026-JPN-DUALUSE": {"action": "exclude", "reason": "applies to Japanese military end users/uses only; MOFCOM "
                                                            "said civilian users are unaffected and critmin models "
                                                            "civilian flows"},
    "CHN-2010-JPN-EMBARGO": {"action": "duration_unknown", "reason": "informal halt, denied by MOFCOM; its end is "
                                                                     "not documented (scope note), so it counts as an "
                                                                     "event but not as a duration"},
}

#: Catalogue stage → chain stage (the catalogue's own ``stage_id`` is used when present).
CATALOGUE_STAGES = {"ore": "mine", "processed": "refine", "product": "component"}
#: Judgement: the catalogue's ``processed`` (``stage_id`` refine) also covers critmin's ``metal`` stage. The
#: announcements list metals and alloys with the oxides (Ga and Ge metal in No. 23/2023, APT and tungsten
#: carbide in the Feb 2025 list, REE metals and alloys in No. 18/2025), and the network models rare-earth
#: metal and tungsten powders as a separate ``metal`` stage.
PROCESSED_STAGES = ("refine", "metal")


# ---------------------------------------------------------------------------------------------------------
# Phase 1: hazards
# ---------------------------------------------------------------------------------------------------------

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
    overrides : path to a YAML/CSV file, or the mapping :func:`load_overrides` returns
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
    table = _apply_overrides(table, ov.get("hazards"), ov.get("_file"))
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

_OVERRIDE_COLUMNS = {"country", "commodity", "stage", "target", "p_annual", "duration_months", "measure",
                     "magnitude_lo", "magnitude_hi", "reason"}


def _apply_overrides(table: pd.DataFrame, rows: list[dict] | None, file: str | None) -> pd.DataFrame:
    if not rows:
        return table
    table = table.copy()
    for r in rows:
        line = r.get("_line")
        key = (r["country"], r.get("commodity", WILD), r.get("stage", WILD), r.get("target", ALL))
        mask = ((table["country"] == key[0]) & (table["commodity"] == key[1]) & (table["stage"] == key[2])
                & (table["target"] == key[3]))
        if not mask.any():
            new = dict.fromkeys(table.columns, np.nan)
            new.update({"country": key[0], "commodity": key[1], "stage": key[2], "target": key[3], "n_events": 0,
                        "events": "", **{f"w_{m}": float(m == "disruption") for m in MEASURES}})
            table = pd.concat([table, pd.DataFrame([new])], ignore_index=True)
            mask = table.index == table.index[-1]
        if "p_annual" in r:
            p = r["p_annual"]
            table.loc[mask, ["p_annual", "shape", "exposure_years"]] = [p, np.nan, np.nan]
            table.loc[mask, "rate_per_year"] = -math.log1p(-p) if p < 1 else np.inf
        if "measure" in r:
            for m in MEASURES:
                table.loc[mask, f"w_{m}"] = float(m == r["measure"])
        for col in ("duration_months", "magnitude_lo", "magnitude_hi"):
            if col in r:
                table.loc[mask, col] = r[col]
        table.loc[mask, "source"] = f"override ({file or 'mapping'}{f', line {line}' if line else ''})"
    return table


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read user hazard overrides from YAML or CSV, validated once at the boundary.

    YAML::

        background_rate: 0.0              # events/yr for countries without a catalogue event
        magnitudes: {licensing: [0.1, 0.4]}
        hazards:
          - {country: CHN, commodity: cobalt, stage: refine, p_annual: 0.1, duration_months: 12, measure: ban}

    CSV: one hazard per line with the columns of ``hazards`` above (``country`` required; ``commodity``,
    ``stage`` default ``*``, ``target`` default ``all``; ``p_annual`` in [0, 1), ``duration_months`` ≥ 0,
    ``measure`` one of :data:`MEASURES`, ``magnitude_lo`` ≤ ``magnitude_hi`` in [0, 1]; ``reason`` free text).

    Raises
    ------
    DataError
        With the file, line and column of the first bad value.
    """
    import yaml

    p = Path(path)
    name = p.name
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise DataError(f"cannot read hazards file: {exc.strerror}", file=name) from None
    out: dict[str, Any] = {"_file": name}
    if p.suffix.lower() == ".csv":
        import csv
        import io

        reader = csv.reader(io.StringIO(text))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError("empty file", file=name, row=1) from None
        for h in header:
            if h not in _OVERRIDE_COLUMNS:
                raise DataError(f"unknown column; expected some of {', '.join(sorted(_OVERRIDE_COLUMNS))}",
                                file=name, row=1, column=h)
        rows = []
        for i, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{len(values)} fields, header has {len(header)}", file=name, row=i)
            rows.append(_check_override({h: v.strip() for h, v in zip(header, values, strict=True) if v.strip()},
                                        name, i))
        out["hazards"] = rows
        return out
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=name,
                        row=mark.line + 1 if mark else None) from None
    if doc is None:
        return out
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with hazards / magnitudes / background_rate", file=name, row=1)
    lines = {k.value: (k.start_mark.line + 1, v) for k, v in node.value} if node is not None else {}
    for key in doc:
        if key not in ("hazards", "magnitudes", "background_rate"):
            raise DataError("unknown key; expected hazards, magnitudes or background_rate", file=name,
                            row=lines.get(key, (None,))[0], column=str(key))
    if "background_rate" in doc:
        v = doc["background_rate"]
        if not isinstance(v, (int, float)) or v < 0:
            raise DataError(f"must be a number ≥ 0 (events per year), got {v!r}", file=name,
                            row=lines["background_rate"][0], column="background_rate")
        out["background_rate"] = float(v)
    if "magnitudes" in doc:
        mline, mnode = lines["magnitudes"]
        mlines = {k.value: k.start_mark.line + 1 for k, _ in getattr(mnode, "value", [])}
        if not isinstance(doc["magnitudes"], dict):
            raise DataError("expected measure: [lo, hi]", file=name, row=mline, column="magnitudes")
        out["magnitudes"] = {}
        for m, v in doc["magnitudes"].items():
            if m not in MEASURES:
                raise DataError(f"unknown measure; expected one of {', '.join(MEASURES)}", file=name,
                                row=mlines.get(m, mline), column=str(m))
            ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                  and 0 <= v[0] <= v[1] <= 1)
            if not ok:
                raise DataError(f"expected [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got {v!r}", file=name,
                                row=mlines.get(m, mline), column=str(m))
            out["magnitudes"][m] = (float(v[0]), float(v[1]))
    if "hazards" in doc:
        hline, hnode = lines["hazards"]
        if not isinstance(doc["hazards"], list):
            raise DataError("expected a list of hazard rows", file=name, row=hline, column="hazards")
        rows = []
        for item, inode in zip(doc["hazards"], hnode.value, strict=True):
            line = inode.start_mark.line + 1
            if not isinstance(item, dict):
                raise DataError("expected a mapping (country, commodity, stage, …)", file=name, row=line)
            for k in item:
                if k not in _OVERRIDE_COLUMNS:
                    raise DataError(f"unknown field; expected some of {', '.join(sorted(_OVERRIDE_COLUMNS))}",
                                    file=name, row=line, column=str(k))
            rows.append(_check_override({k: v for k, v in item.items() if v is not None}, name, line))
        out["hazards"] = rows
    return out


def _check_override(r: dict[str, Any], file: str, line: int) -> dict[str, Any]:
    out: dict[str, Any] = {"_line": line}
    if "country" not in r:
        raise DataError("missing country (ISO3 or *)", file=file, row=line, column="country")
    for col in ("country", "commodity", "stage", "target"):
        if col in r:
            out[col] = str(r[col]).strip()
    if not (out["country"] == WILD or re.fullmatch(r"[A-Z]{3}", out["country"])):
        raise DataError(f"expected an ISO3 code or *, got {out['country']!r}", file=file, row=line, column="country")
    if "stage" in out and out["stage"] not in (*STAGES, WILD):
        raise DataError(f"expected one of {', '.join(STAGES)} or *, got {out['stage']!r}", file=file, row=line,
                        column="stage")
    if "target" in out and not (out["target"] == ALL or re.fullmatch(r"[A-Z]{3}", out["target"])):
        raise DataError(f"expected all or an ISO3 code, got {out['target']!r}", file=file, row=line, column="target")
    for col, lo, hi in (("p_annual", 0.0, 1.0 - 1e-12), ("duration_months", 0.0, math.inf),
                        ("magnitude_lo", 0.0, 1.0), ("magnitude_hi", 0.0, 1.0)):
        if col in r:
            try:
                v = float(r[col])
            except (TypeError, ValueError):
                raise DataError(f"not a number: {r[col]!r}", file=file, row=line, column=col) from None
            if not (lo <= v <= hi):
                raise DataError(f"{v} outside [{lo}, {hi}]", file=file, row=line, column=col)
            out[col] = v
    if "measure" in r:
        if str(r["measure"]) not in MEASURES:
            raise DataError(f"unknown measure {r['measure']!r}; expected one of {', '.join(MEASURES)}", file=file,
                            row=line, column="measure")
        out["measure"] = str(r["measure"])
    if ("magnitude_lo" in out) != ("magnitude_hi" in out) or out.get("magnitude_lo", 0) > out.get("magnitude_hi", 1):
        raise DataError("give both magnitude_lo ≤ magnitude_hi", file=file, row=line, column="magnitude_lo")
    return out


# ---------------------------------------------------------------------------------------------------------
# Phase 2: the plan (hazards × network) and sampling
# ---------------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    """Everything a chunk needs, as plain numpy arrays (cheap to pickle to Dask workers)."""

    commodities: list[str]
    stages: list[str]
    consumers: list[str]
    suppliers: list[str]                 # hazard suppliers (contribution dimension)
    blocs: dict[str, list[int]]          # bloc label → consumer indices
    months: int
    D: np.ndarray                        # (C, S, K) t/month
    u: np.ndarray                        # (C, S, K) domestic fraction
    leak: np.ndarray                     # (C, K)
    ramp: np.ndarray
    subst: np.ndarray
    recyc: np.ndarray
    stock0: np.ndarray                   # (C, K) t
    relmax: np.ndarray                   # (C, K) t/month
    stock_stage: int                     # index in stages, −1: none
    m_t: np.ndarray                      # (T,) months since the response clock started
    # hazard rows
    r_group: np.ndarray                  # (R,) coupling group
    r_commodity: np.ndarray              # (R,) commodity index
    p_h: np.ndarray                      # (R,) probability of an onset within the horizon
    dur_fixed: np.ndarray                # (R,) months, NaN: Kaplan–Meier
    mix_cum: np.ndarray                  # (R, n_measures) cumulative measure mix
    mag_lo: np.ndarray                   # (R, n_measures)
    mag_hi: np.ndarray
    n_groups: int
    km_t: np.ndarray
    km_cdf: np.ndarray
    # flow units: one (commodity, stage, supplier, consumer) flow with a hazard
    unit_c: np.ndarray
    unit_s: np.ndarray
    unit_k: np.ndarray
    unit_i: np.ndarray                   # index in ``suppliers``
    unit_supplier: list[str]
    unit_w: np.ndarray                   # share · D · (1 − leak), t/month withheld at cut 1
    unit_frac: np.ndarray                # share · (1 − leak), fraction of demand withheld at cut 1
    unit_rows: list[list[tuple[int, float]]] = field(default_factory=list)   # (plan row, multiplier ε·τ)
    chain: np.ndarray | None = None      # (C, S, K) bool: stage s feeds from the last stage before it with demand
    # indirect cuts: processor entries (commodity, stage, processor) in upstream → downstream order, each a list of
    # feed terms (feed share f, hazard rows on the feeder's flow to the processor, upstream entry or −1, feeder
    # index in ``suppliers``); per unit (entry, weight w) or (−1, 0)
    unit_ind: list[tuple[int, float]] = field(default_factory=list)
    ent_c: np.ndarray | None = None
    ent_s: np.ndarray | None = None      # entry → stage index
    ent_alias: np.ndarray | None = None  # entry → first entry with the same feed terms (computed once)
    ent_terms: list[list[tuple[float, list[tuple[int, float]], int, int]]] = field(default_factory=list)


def _baseline(network: Any) -> Baseline:
    return network.baseline if hasattr(network, "baseline") else network


def _np(x: Any, like: xr.DataArray) -> np.ndarray:
    """Broadcast a response (float or DataArray over commodity[, consumer]) to (C, K) float64."""
    da = x if isinstance(x, xr.DataArray) else xr.DataArray(float(x))
    return np.ascontiguousarray((xr.zeros_like(like, dtype=float) + da).transpose(COMMODITY, CONSUMER).values,
                                dtype=np.float64)


def _horizon_p(hazards: pd.DataFrame, months: int) -> np.ndarray:
    h = months / 12.0
    shape = hazards["shape"].to_numpy(float)
    T = hazards["exposure_years"].to_numpy(float)
    p_const = 1.0 - (1.0 - hazards["p_annual"].to_numpy(float)) ** h
    with np.errstate(invalid="ignore", divide="ignore"):
        p_pred = 1.0 - (T / (T + h)) ** shape
    return np.where(np.isfinite(p_pred), p_pred, p_const)


def build_plan(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, months: int = 12,
               blocs: Mapping[str, Sequence[str]] | None = None) -> _Plan:
    """Match hazard rows to the network's flows (most specific row wins) and pack the numbers.

    Parameters
    ----------
    network : Network or Baseline
    hazards : DataFrame from :func:`estimate_hazards`
    responses : Responses, default no response
    months : int, horizon
    blocs : bloc label → member consumers; default ``{"USA+JPN": ("USA", "JPN")}`` when both are consumers.
    """
    base = _baseline(network)
    responses = responses or Responses()
    if months < 1:
        raise ConfigError(f"months must be ≥ 1, got {months}")
    D_da = base.demand.transpose(COMMODITY, STAGE, CONSUMER)
    stages = [s for s in STAGES if s in list(D_da[STAGE].values)]
    D_da = D_da.sel({STAGE: stages})
    commodities = [str(c) for c in D_da[COMMODITY].values]
    consumers = [str(k) for k in D_da[CONSUMER].values]
    share = base.share.transpose(COMMODITY, STAGE, SUPPLIER, CONSUMER).sel({STAGE: stages, COMMODITY: commodities,
                                                                            CONSUMER: consumers})
    suppliers_all = [str(i) for i in share[SUPPLIER].values]
    D = np.ascontiguousarray(D_da.values, dtype=np.float64)
    u = np.ascontiguousarray(base.domestic.transpose(COMMODITY, STAGE, CONSUMER)
                             .sel({STAGE: stages, COMMODITY: commodities, CONSUMER: consumers}).values, dtype=np.float64)
    ck = D_da.isel({STAGE: 0}, drop=True)
    leak = _np(responses.leakage, ck)
    if blocs is None:
        blocs = {"USA+JPN": ("USA", "JPN")} if {"USA", "JPN"} <= set(consumers) else {}
    bloc_idx: dict[str, list[int]] = {}
    for label, members in blocs.items():
        missing = [m for m in members if m not in consumers]
        if missing:
            raise ConfigError(f"bloc {label}: {', '.join(missing)} not a consumer of the network "
                              f"({', '.join(consumers)})")
        bloc_idx[label] = [consumers.index(m) for m in members]

    # hazard rows: which apply to each (country, commodity, stage); most specific wins (exact > wildcard)
    hz = hazards.reset_index(drop=True)
    p_h = _horizon_p(hz, months)
    sh = share.values
    km = hazards.attrs.get("duration_km", {"months": [], "cdf": []})
    mags = hazards.attrs.get("magnitudes", MAGNITUDES)
    eps_da = getattr(network, "row_export_share", None)
    third = getattr(network, "third_exports", None)

    def eps(c: str, s: str, i: str) -> float:
        if eps_da is None or i not in eps_da[SUPPLIER].values:
            return 1.0
        return float(eps_da.sel({COMMODITY: c, STAGE: s, SUPPLIER: i}))

    def tau(c: str, s: str, i: str, tgt: str) -> float:
        """Share of i's third-country exports going to ``tgt`` (BACI); 1 where no data (upper bound)."""
        if third is None or third.empty:
            return 1.0
        te = third[(third.exporter == i) & (third.commodity == c) & (third.stage == s)]
        tot = float(te.quantity.sum())
        return float(te[te.importer == tgt].quantity.sum()) / tot if tot > 0 else 1.0

    plan_rows: dict[tuple[int, str, int, str], int] = {}   # (hazard row, country, commodity, target) → plan row
    r_group, r_comm, r_src = [], [], []
    groups: dict[tuple[str, int, str], int] = {}
    units: dict[tuple[int, int, int, int], list[int]] = {}
    hz_country = hz["country"].to_numpy(str)
    hz_comm = hz["commodity"].to_numpy(str)
    hz_stage = hz["stage"].to_numpy(str)
    hz_target = hz["target"].to_numpy(str)
    spec = (hz_country != WILD).astype(int) * 4 + (hz_comm != WILD).astype(int) * 2 + (hz_stage != WILD).astype(int)
    def match_rows(ci: int, si: int, i: str) -> list[tuple[str, int, bool]]:
        """(target, plan row, physical) of the hazard rows acting on supplier i at (commodity, stage)."""
        c, s = commodities[ci], stages[si]
        # the background row (country *) applies to countries, not to the ROW aggregate
        match = (((hz_country == i) | ((hz_country == WILD) & (len(i) == 3) & (i != "ROW")))
                 & ((hz_comm == c) | (hz_comm == WILD)) & ((hz_stage == s) | (hz_stage == WILD))
                 & (p_h > 0))
        out = []
        for tgt in sorted(set(hz_target[match])):
            cand = np.flatnonzero(match & (hz_target == tgt))
            best = int(cand[np.argmax(spec[cand])])    # most specific row; ties: the first
            # one coupling group per (country, commodity, target): stages share random numbers
            key = (best, i, ci, tgt)
            if key not in plan_rows:
                plan_rows[key] = len(r_group)
                r_group.append(groups.setdefault((i, ci, tgt), len(groups)))
                r_comm.append(ci)
                r_src.append(best)
            out.append((tgt, plan_rows[key], bool(hz.at[best, "w_disruption"] >= 0.5)))
        return out

    for ci, c in enumerate(commodities):
        for si, s in enumerate(stages):
            for ii, i in enumerate(suppliers_all):
                if not np.any(sh[ci, si, ii] > 0):
                    continue
                for tgt, row, physical in match_rows(ci, si, i):
                    for ki, k in enumerate(consumers):
                        if k == i or sh[ci, si, ii, ki] <= 0 or D[ci, si, ki] <= 0:
                            continue   # a country does not embargo itself; no flow, no loss
                        if tgt != ALL and tgt != k and not (k == RESIDUAL and tgt not in consumers):
                            continue   # targeted at another consumer (a target outside the network is in ROW)
                        mult = 1.0
                        if k == RESIDUAL:
                            # as scenario.to_cut: ROW includes the exporter's home use, which an export
                            # restriction does not touch (ε); a physical disruption hits it too
                            mult = (1.0 if physical else eps(c, s, i)) * (1.0 if tgt == ALL else tau(c, s, i, tgt))
                        if mult > 0:
                            units.setdefault((ci, si, ii, ki), []).append((row, mult))
    # indirect cuts (critmin.supplychain.indirect): processors whose feeders may withhold, upstream → downstream
    entries, ent_terms, unit_ind, origins = _feed_entries(network, commodities, stages, suppliers_all, sh, D,
                                                          match_rows, units)
    r_src_a = np.asarray(r_src, dtype=int)
    # contributions go to suppliers with a direct hazard and to the origins of indirect losses (a processor
    # reached only indirectly is not credited: −1)
    sup_used = sorted({suppliers_all[key[2]] for key, rows in units.items() if rows} | origins)
    keys = sorted(units)
    unit_c = np.array([k[0] for k in keys], dtype=int)
    unit_s = np.array([k[1] for k in keys], dtype=int)
    unit_k = np.array([k[3] for k in keys], dtype=int)
    unit_i = np.array([sup_used.index(suppliers_all[k[2]]) if units[k] else -1 for k in keys], dtype=int)
    frac = np.array([sh[k[0], k[1], k[2], k[3]] * (1.0 - leak[k[0], k[3]]) for k in keys], dtype=float)
    # the kernel's order: (Σ_i share · cut) · D · (1 − leak); a unit carries share · D · (1 − leak)
    w = np.array([sh[k[0], k[1], k[2], k[3]] * D[k[0], k[1], k[3]] * (1.0 - leak[k[0], k[3]]) for k in keys],
                 dtype=float)
    mix = hz.loc[r_src_a, [f"w_{m}" for m in MEASURES]].to_numpy(float) if len(r_src_a) else np.zeros((0, 6))
    mix = np.where(mix.sum(1, keepdims=True) > 0, mix, np.eye(len(MEASURES))[MEASURES.index("disruption")])
    mix_cum = np.cumsum(mix / mix.sum(1, keepdims=True), axis=1)
    lo = np.tile([float(mags[m]["lo"]) for m in MEASURES], (len(r_src_a), 1))
    hi = np.tile([float(mags[m]["hi"]) for m in MEASURES], (len(r_src_a), 1))
    if len(r_src_a):
        rlo = hz.loc[r_src_a, "magnitude_lo"].to_numpy(float)
        rhi = hz.loc[r_src_a, "magnitude_hi"].to_numpy(float)
        lo = np.where(np.isnan(rlo)[:, None], lo, rlo[:, None])
        hi = np.where(np.isnan(rhi)[:, None], hi, rhi[:, None])
    # stage s feeds from the last stage before it with demand (the kernel carries f_up through empty stages)
    chain = np.zeros_like(D, dtype=bool)
    upstream = np.cumsum(D > 0, axis=1) - (D > 0)                # stages before s with demand
    chain[:, 1:, :] = (u[:, 1:, :] > 0) & (D[:, 1:, :] > 0) & (upstream[:, 1:, :] > 0)
    month_idx = np.arange(months)
    return _Plan(
        commodities=commodities, stages=stages, consumers=consumers, suppliers=sup_used, blocs=bloc_idx,
        months=months, D=D, u=u, leak=leak, ramp=_np(responses.ramp, ck), subst=_np(responses.substitution, ck),
        recyc=_np(responses.recycling, ck), stock0=_np(responses.stock0, ck), relmax=_np(responses.release_max, ck),
        stock_stage=stages.index(responses.stock_stage) if responses.stock_stage in stages else -1,
        m_t=np.clip(month_idx - responses.response_start + 1, 0, None).astype(np.float64),
        r_group=np.asarray(r_group, dtype=int), r_commodity=np.asarray(r_comm, dtype=int),
        p_h=p_h[r_src_a] if len(r_src_a) else np.zeros(0),
        dur_fixed=hz.loc[r_src_a, "duration_months"].to_numpy(float) if len(r_src_a) else np.zeros(0),
        mix_cum=mix_cum, mag_lo=lo, mag_hi=hi, n_groups=len(groups),
        km_t=np.asarray(km["months"], dtype=float), km_cdf=np.asarray(km["cdf"], dtype=float),
        unit_c=unit_c, unit_s=unit_s, unit_k=unit_k, unit_i=unit_i, unit_supplier=[suppliers_all[k[2]] for k in keys],
        unit_w=w, unit_frac=frac, unit_rows=[units[k] for k in keys], chain=chain,
        unit_ind=[unit_ind.get(k, (-1, 0.0)) for k in keys],
        ent_c=np.array([e[0] for e in entries], dtype=int), ent_s=np.array([e[1] for e in entries], dtype=int),
        ent_alias=_aliases(entries, ent_terms),
        ent_terms=[[(f, rows, up, sup_used.index(j) if j in sup_used else -1) for f, rows, up, j in t]
                   for t in ent_terms],
    )


def _aliases(entries: list[tuple[int, int, str]], terms: list[list[tuple]]) -> np.ndarray:
    """Entry → the first entry of the same commodity and stage with identical feed terms (upstream aliased)."""
    alias = np.arange(len(entries))
    seen: dict[tuple, int] = {}
    for e, ((ci, si, _), t) in enumerate(zip(entries, terms, strict=True)):
        sig = (ci, si, tuple((f, tuple(rows), int(alias[up]) if up >= 0 else -1, j) for f, rows, up, j in t))
        alias[e] = seen.setdefault(sig, e)
    return alias


def _feed_entries(network: Any, commodities: list[str], stages: list[str], suppliers: list[str], sh: np.ndarray,
                  D: np.ndarray, match_rows: Callable[[int, int, str], list[tuple[str, int, bool]]],
                  units: dict[tuple[int, int, int, int], list[tuple[int, float]]]):
    """Processor entries of the indirect cuts and the flows they reach (adds units without a direct hazard).

    An entry (commodity, stage s', processor p) exists where some feeder of p at the feed stage has a hazard
    row on its flow to p (target ``all`` or p; p's own restriction on itself does not count, a physical
    disruption does) or is itself an entry one stage up. Its flows p → k get weight 1 (named k ≠ p), ε_p (ROW)
    or none (k = p), as :func:`critmin.supplychain.indirect.flow_weights`.
    """
    fm = getattr(network, "feed_mix", None)
    fs = getattr(network, "feed_stage", None)
    entries: list[tuple[int, int, str]] = []
    terms: list[list[tuple[float, list[tuple[int, float]], int, str]]] = []
    unit_ind: dict[tuple[int, int, int, int], tuple[int, float]] = {}
    origins: set[str] = set()
    if fm is None or fs is None:
        return entries, terms, unit_ind, origins
    from critmin.supplychain.indirect import PROCESSOR, flow_weights

    fm = fm.reindex({COMMODITY: commodities, STAGE: stages}).fillna(0.0)
    fm_v = fm.transpose(COMMODITY, STAGE, PROCESSOR, SUPPLIER).values
    procs = [str(p) for p in fm[PROCESSOR].values]
    feeders = [str(j) for j in fm[SUPPLIER].values]
    prev = fs.reindex({COMMODITY: commodities, STAGE: stages}).fillna(-1).astype(int).values
    base = _baseline(network)
    wts = flow_weights(base.share, getattr(network, "row_export_share", None)).transpose(
        COMMODITY, STAGE, SUPPLIER, CONSUMER).sel({COMMODITY: commodities, STAGE: stages,
                                                   SUPPLIER: suppliers}).values
    where: dict[tuple[int, int, str], int] = {}
    for si in range(len(stages)):                    # upstream → downstream: feeders' entries exist first
        for ci in range(len(commodities)):
            sp = prev[ci, si]
            if sp < 0:
                continue
            for pi, p in enumerate(procs):
                row = fm_v[ci, si, pi]
                t = []
                for ji in np.flatnonzero(row > 0):
                    j = feeders[ji]
                    rows = [(r, 1.0) for tgt, r, physical in match_rows(ci, sp, j)
                            if (tgt == ALL or tgt == p) and (j != p or physical)]
                    up = where.get((ci, sp, j), -1)
                    if rows or up >= 0:
                        t.append((float(row[ji]), rows, up, j))
                        origins.update([j] if rows else [])
                if t:
                    where[(ci, si, p)] = len(entries)
                    entries.append((ci, si, p))
                    terms.append(t)
    for (ci, si, p), e in where.items():
        if p not in suppliers:
            continue
        ii = suppliers.index(p)
        for ki in range(D.shape[2]):
            if wts[ci, si, ii, ki] > 0 and D[ci, si, ki] > 0:
                units.setdefault((ci, si, ii, ki), [])
                unit_ind[(ci, si, ii, ki)] = (e, float(wts[ci, si, ii, ki]))
    # origins of a downstream entry are those of its upstream entries: already collected at their own stage
    return entries, terms, unit_ind, origins


def _entry_losses(plan: _Plan, c: int, cut_of: Callable[[int], np.ndarray], want_origins: bool = False
                  ) -> tuple[dict[int, np.ndarray], dict[int, dict[int, np.ndarray]]]:
    """Indirect loss of every processor entry of commodity c: ind = min(1, Σ f · (d + ind_up − d · ind_up)).

    ``cut_of(row)`` gives a plan row's cut (T, n); d is the feeder's direct cut on its flow to the processor.
    Entries with the same feed terms (e.g. every processor fed "as other countries") are computed once
    (``plan.ent_alias``); so is each feeder's d and total loss.

    Returns
    -------
    ind : canonical entry → (T, n) share of the processor's output lost
    orig : canonical entry → {supplier index: (n,)} month-summed loss by origin country (linear weights for the
        contribution split; with ``want_origins``)
    """
    ind: dict[int, np.ndarray] = {}
    orig: dict[int, dict[int, np.ndarray]] = {}
    if plan.ent_c is None or plan.ent_c.size == 0:
        return ind, orig
    d_cache: dict[tuple, np.ndarray] = {}
    t_cache: dict[tuple, np.ndarray] = {}
    canon = np.flatnonzero((plan.ent_c == c) & (plan.ent_alias == np.arange(plan.ent_c.size)))
    ent_s = plan.ent_s[canon]
    for si in np.unique(ent_s):           # stages upstream → downstream; entries of one stage are independent
        group = canon[ent_s == si]
        keys: dict[tuple, int] = {}       # distinct feeder losses (rows, upstream entry) of this stage
        F_rows: list[dict[int, float]] = []
        for e in group:
            coef: dict[int, float] = {}
            o_e: dict[int, np.ndarray] = {}
            for f, rows, up, jx in plan.ent_terms[e]:
                up = int(plan.ent_alias[up]) if up >= 0 else -1
                key = (tuple(rows), up)
                if key not in t_cache:
                    d = None
                    if rows:
                        d = d_cache.get(key[0])
                        if d is None:
                            d = d_cache[key[0]] = _unit_cut(rows, cut_of)
                    iu = ind.get(up) if up >= 0 else None
                    if d is None and iu is None:
                        continue
                    t_cache[key] = d if iu is None else (iu if d is None else d + iu - d * iu)
                q = keys.setdefault(key, len(keys))
                coef[q] = coef.get(q, 0.0) + f
                if want_origins:
                    if rows:
                        o_e[jx] = o_e.get(jx, 0.0) + f * d_cache[key[0]].sum(axis=0)
                    for o, v in orig.get(up, {}).items():
                        o_e[o] = o_e.get(o, 0.0) + f * v
            F_rows.append(coef)
            orig[int(e)] = o_e
        if not keys:
            continue
        # Σ f · tot for every entry of the stage at once: one matrix product over the distinct feeder losses
        tots = list(keys)
        shape = t_cache[tots[0]].shape
        stack = np.stack([t_cache[k] for k in tots]).reshape(len(tots), -1)
        F = np.zeros((len(group), len(tots)))
        for r, coef in enumerate(F_rows):
            for q, f in coef.items():
                F[r, q] = f
        res = np.minimum(F @ stack, 1.0).reshape(len(group), *shape)
        for r, e in enumerate(group):
            if F_rows[r]:
                ind[int(e)] = res[r]
    return ind, orig


def _unit_flow_cut(plan: _Plan, j: int, cut_of: Callable[[int], np.ndarray], ind: dict[int, np.ndarray]
                   ) -> np.ndarray | None:
    """Cut (T, n) of flow unit j: 1 − (1 − direct) · (1 − w · ind), the direct cut alone, or None (no cut)."""
    rows = plan.unit_rows[j]
    d = _unit_cut(rows, cut_of) if rows else None
    e, w = plan.unit_ind[j] if plan.unit_ind else (-1, 0.0)
    e = int(plan.ent_alias[e]) if e >= 0 else -1
    if e >= 0 and e in ind:
        xi = w * ind[e]
        return xi if d is None else 1.0 - (1.0 - d) * (1.0 - xi)
    return d


@dataclass
class _Events:
    """Sampled disruptions of one chunk, per plan row: (R, n) arrays."""

    occurs: np.ndarray      # bool
    onset: np.ndarray       # months from the start of the horizon
    duration: np.ndarray    # months (inf: beyond any horizon)
    magnitude: np.ndarray   # fraction withheld


def _sample_events(plan: _Plan, n: int, rng: np.random.Generator) -> _Events:
    """Draw onsets, durations and magnitudes for ``n`` draws (vectorised, no per-draw loop).

    The generator is used in a fixed order that depends only on ``n`` and the plan: one uniform per
    (draw, coupling group) for occurrence, then four uniforms (onset, duration, measure, magnitude) for each
    (draw, group) pair that can occur in row-major order. Draws without an event cost one number per group.
    """
    R, G = plan.r_group.size, max(plan.n_groups, 1)
    u_occ = rng.random((n, G))
    g_p = np.zeros(G)
    np.maximum.at(g_p, plan.r_group, plan.p_h) if R else None
    cand = u_occ < g_p[None, :]                                   # the group's most likely row can occur
    draw_i, group_i = np.nonzero(cand)                            # row-major: reproducible order
    V = rng.random((draw_i.size, 4))
    slot = np.full((n, G), -1, dtype=np.int64)
    slot[draw_i, group_i] = np.arange(draw_i.size)
    occurs = np.zeros((R, n), dtype=bool)
    onset = np.zeros((R, n))
    duration = np.zeros((R, n))
    magnitude = np.zeros((R, n))
    km_t = np.append(plan.km_t, np.inf)                           # beyond the last observed end: +∞
    for r in range(R):   # rows (tens), each vectorised over draws
        g = plan.r_group[r]
        occ = u_occ[:, g] < plan.p_h[r]                           # comonotone within the group
        d_idx = np.flatnonzero(occ)
        v = V[slot[d_idx, g]]
        occurs[r, d_idx] = True
        onset[r, d_idx] = v[:, 0] * plan.months
        if np.isnan(plan.dur_fixed[r]):
            # inverse of the Kaplan–Meier CDF: the first end time whose CDF reaches u
            duration[r, d_idx] = km_t[np.searchsorted(plan.km_cdf, v[:, 1], side="left")]
        else:
            duration[r, d_idx] = plan.dur_fixed[r]
        meas = (v[:, 2:3] > plan.mix_cum[r, None, :-1]).sum(axis=1)
        lo, hi = plan.mag_lo[r, meas], plan.mag_hi[r, meas]
        magnitude[r, d_idx] = lo + (hi - lo) * v[:, 3]
    return _Events(occurs=occurs, onset=onset, duration=duration, magnitude=magnitude)


def _row_cuts(plan: _Plan, ev: _Events, rows: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Cut fraction per month of the given plan rows for the given draws: (len(rows), T, len(draws))."""
    t = np.arange(plan.months, dtype=np.float64)[None, :, None]
    on = ev.onset[np.ix_(rows, draws)][:, None, :]
    end = on + ev.duration[np.ix_(rows, draws)][:, None, :]
    overlap = np.minimum(t + 1.0, end) - np.maximum(t, on)
    np.clip(overlap, 0.0, 1.0, out=overlap)
    mag = np.where(ev.occurs[np.ix_(rows, draws)], ev.magnitude[np.ix_(rows, draws)], 0.0)
    overlap *= mag[:, None, :]
    return overlap


def _unit_cut(rows: list[tuple[int, float]], cut_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """Cut of one flow from the rows acting on it: independent measures, 1 − Π(1 − mult · cut).

    The same rule as :func:`critmin.supplychain.scenario.to_cut`; a single row is just ``mult · cut``.
    """
    r0, m0 = rows[0]
    if len(rows) == 1:
        return cut_of(r0) * m0 if m0 != 1.0 else cut_of(r0)
    keep = 1.0 - m0 * cut_of(r0)
    for r, m in rows[1:]:
        keep *= 1.0 - m * cut_of(r)
    return 1.0 - keep


def sample_cuts(hazards: pd.DataFrame, network: Any, n_draws: int, months: int, rng: np.random.Generator, *,
                responses: Responses | None = None, chunk: int = 2_000, max_bytes: float = 2e9) -> xr.DataArray:
    """Sample disruptions as the kernel's dense ``cut`` array.

    Parameters
    ----------
    hazards : DataFrame from :func:`estimate_hazards`
    network : Network or Baseline
    n_draws : int
    months : int, horizon
    rng : numpy Generator (the seed is the caller's to record)
    responses : only ``leakage`` is not needed here; accepted so that a plan can be shared
    chunk : draws filled at a time (bounds the temporaries)
    max_bytes : refuse to build a dense array larger than this (use :func:`run_ensemble`)

    Returns
    -------
    DataArray (draw, commodity, stage, supplier, consumer, month)
        Fraction (0..1) of each supplier's flow to each consumer withheld each month.
    """
    plan = build_plan(network, hazards, responses, months=months)
    base = _baseline(network)
    suppliers = [str(i) for i in base.share[SUPPLIER].values]
    shape = (n_draws, len(plan.commodities), len(plan.stages), len(suppliers), len(plan.consumers), months)
    if np.prod(shape, dtype=float) * 8 > max_bytes:
        raise ConfigError(f"a dense cut array of {n_draws} draws needs {np.prod(shape, dtype=float) * 8 / 1e9:.1f} GB; "
                          "use run_ensemble, which never builds it")
    ev = _sample_events(plan, n_draws, rng)
    out = np.zeros(shape, dtype=np.float64)
    sup_idx = np.array([suppliers.index(s) for s in plan.unit_supplier], dtype=int)
    for a in range(0, n_draws, chunk):
        draws = np.arange(a, min(a + chunk, n_draws))
        for c in range(len(plan.commodities)):   # per commodity: its rows' cuts, then every flow (direct + indirect)
            rows_c = np.flatnonzero(plan.r_commodity == c)
            if rows_c.size == 0:
                continue
            rc = _row_cuts(plan, ev, rows_c, draws)                               # (rows, T, n)
            pos = {int(r): q for q, r in enumerate(rows_c)}
            cut_of = lambda r, rc=rc, pos=pos: rc[pos[r]]  # noqa: E731
            ind, _ = _entry_losses(plan, c, cut_of)
            for j in np.flatnonzero(plan.unit_c == c):
                cut = _unit_flow_cut(plan, j, cut_of, ind)
                if cut is not None:
                    out[draws, plan.unit_c[j], plan.unit_s[j], sup_idx[j], plan.unit_k[j], :] = cut.T
    return xr.DataArray(out, dims=[DRAW, COMMODITY, STAGE, SUPPLIER, CONSUMER, MONTH],
                        coords={DRAW: np.arange(n_draws), COMMODITY: plan.commodities, STAGE: plan.stages,
                                SUPPLIER: suppliers, CONSUMER: plan.consumers, MONTH: np.arange(months)},
                        attrs={"units": "1", "long_name": "fraction of flow withheld"})


# ---------------------------------------------------------------------------------------------------------
# Phase 3: propagation (fast path) and statistics
# ---------------------------------------------------------------------------------------------------------

def _propagate(plan: _Plan, ev: _Events, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative unmet demand per draw: the kernel's arithmetic, specialised to what the ensemble needs.

    The same operations in the same order as :func:`critmin.supplychain.kernel.simulate` (float64), computed
    only for the draws where a commodity is disrupted at all (elsewhere the kernel's answer is exactly 0)
    and only for the (stage, consumer) cells a disruption can reach (directly, indirectly through processors
    abroad, or through the consumer's own processors, u > 0, also across a stage where the consumer has no
    demand: f_up is carried as in the kernel). Surge is 0 in the ensemble.

    Returns
    -------
    L : (C, S, K, n) t, cumulative unmet demand over the horizon
    contrib : (I, C, S, K) t, Σ over draws of L · a_i (a_i: supplier i's share of the draw's withheld
        demand fraction at the cell and the upstream stages that feed it)
    """
    C, S, K = plan.D.shape
    T = plan.months
    I_ = len(plan.suppliers)
    L = np.zeros((C, S, K, n))
    contrib = np.zeros((I_, C, S, K))
    m_row = plan.m_t[None, :]                                   # (1, T)
    for c in range(C):   # a loop over commodities (a handful); everything inside is vectorised over draws
        rows_c = np.flatnonzero(plan.r_commodity == c)
        if rows_c.size == 0:
            continue
        hit = ev.occurs[rows_c] & (ev.magnitude[rows_c] > 0) & (ev.duration[rows_c] > 0)
        draws = np.flatnonzero(hit.any(axis=0))
        na = draws.size
        if na == 0:
            continue
        cuts = _row_cuts(plan, ev, rows_c, draws)              # (R_c, T, na)
        pos = {int(r): j for j, r in enumerate(rows_c)}
        withheld = np.zeros((S, K, T, na))
        x = np.zeros((I_, S, K, na))                            # withheld demand fraction, summed over months
        touched = np.zeros((S, K), dtype=bool)
        cut_of = lambda r, cuts=cuts, pos=pos: cuts[pos[r]]  # noqa: E731
        ind, orig = _entry_losses(plan, c, cut_of, want_origins=True)
        # flows reached only indirectly: summed per (stage, consumer, processor entry) before touching the arrays
        w_ind: dict[tuple[int, int, int], list[float]] = {}
        for j in np.flatnonzero(plan.unit_c == c):              # flows with a hazard, direct or indirect (tens)
            s, k = plan.unit_s[j], plan.unit_k[j]
            e, w = plan.unit_ind[j] if plan.unit_ind else (-1, 0.0)
            e = int(plan.ent_alias[e]) if e >= 0 else -1
            if not plan.unit_rows[j]:
                if e in ind:
                    acc = w_ind.setdefault((s, k, e), [0.0, 0.0])
                    acc[0] += plan.unit_w[j] * w
                    acc[1] += plan.unit_frac[j] * w
                continue
            cut = _unit_flow_cut(plan, j, cut_of, ind)
            withheld[s, k] += plan.unit_w[j] * cut
            touched[s, k] = True
            if e in ind:
                # split between the direct hazard (the supplier) and the origins of the indirect loss
                d = _unit_cut(plan.unit_rows[j], cut_of)
                x[plan.unit_i[j], s, k] += plan.unit_frac[j] * d.sum(axis=0)
                for o, v in orig[e].items():
                    x[o, s, k] += plan.unit_frac[j] * w * v
            else:
                x[plan.unit_i[j], s, k] += plan.unit_frac[j] * cut.sum(axis=0)
        for (s, k, e), (cw, cf) in w_ind.items():
            withheld[s, k] += cw * ind[e]
            touched[s, k] = True
            for o, v in orig[e].items():               # credited to the origins of the processor's loss
                x[o, s, k] += cf * v
        f_up = np.zeros((K, T, na))                              # unmet fraction upstream (kernel's f_up)
        reach_prev = np.zeros(K, dtype=bool)
        for s in range(S):
            live = plan.D[c, s] > 0
            fed = plan.chain[c, s] & reach_prev
            if s > 0:
                # a consumer with no demand at this stage passes its upstream starvation on (kernel: f_up carried)
                dead = ~live & reach_prev
                if dead.any():
                    x[:, s, dead] += x[:, s - 1, dead]
                if fed.any():
                    x[:, s, fed] += x[:, s - 1, fed]
            reach = touched[s] | fed
            reach_prev = np.where(live, reach, reach_prev)
            if not reach.any():
                f_up[live] = 0.0
                continue
            ks = np.flatnonzero(reach)
            d = plan.D[c, s, ks][:, None, None]                  # (k, 1, 1) t/month
            lost = withheld[s, ks]                               # (k, T, na), a copy
            if s > 0:
                lost = lost + plan.u[c, s, ks][:, None, None] * d * f_up[ks]
                lost = np.where(lost > d, d, lost)               # cannot lose more than the whole supply
            rest = lost
            substituted = None
            for resp, is_subst in ((plan.ramp, False), (plan.subst, True), (plan.recyc, False)):
                r_k = resp[c, ks]
                if not np.any(r_k):
                    continue                                     # a zero cap takes nothing: min(rest, 0) = 0
                cap = (r_k[:, None] * plan.D[c, s, ks][:, None] * m_row / 12.0)[:, :, None]
                took = np.where(rest < cap, rest, cap)
                rest = rest - took
                if is_subst:
                    substituted = took
            gap = rest
            if s == plan.stock_stage and np.any(plan.stock0[c, ks] > 0) and np.any(plan.relmax[c, ks] > 0):
                st = np.broadcast_to(plan.stock0[c, ks][:, None], (ks.size, na)).copy()
                rel_max = plan.relmax[c, ks][:, None]
                shortfall = np.empty_like(gap)
                for t in range(T):   # the stockpile recursion in time, vectorised over draws
                    r_t = np.minimum(np.minimum(gap[:, t], st), rel_max)
                    np.clip(r_t, 0.0, None, out=r_t)
                    st = st - r_t
                    shortfall[:, t] = gap[:, t] - r_t
                np.clip(shortfall, 0.0, None, out=shortfall)
            else:
                shortfall = np.clip(gap, 0.0, None)
            demand = d * 1.0 if substituted is None else d - substituted
            f_up[live] = 0.0                                     # unreached cells with demand: nothing unmet
            with np.errstate(invalid="ignore", divide="ignore"):
                f_up[ks] = np.where(demand > 0, shortfall / demand, 0.0)
            acc = np.zeros((ks.size, na))
            for t in range(T):       # cumulative sum in month order, as the kernel's cumsum
                acc += shortfall[:, t]
            L[c, s][np.ix_(ks, draws)] = acc
            # contributions: L split pro rata of the suppliers' withheld fractions (exact order: fixed)
            xs = x[:, s, ks].sum(axis=0)                          # (k, na)
            with np.errstate(invalid="ignore", divide="ignore"):
                share_i = np.where(xs > 0, x[:, s, ks] / xs, 0.0)   # (I, k, na)
            contrib[:, c, s, ks] = (share_i * acc[None]).sum(axis=-1)
    return L, contrib


def simulate_unmet(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, n_draws: int,
                   months: int = 12, rng: np.random.Generator) -> xr.DataArray:
    """Per-draw cumulative unmet demand with the fast path (for checks and custom statistics).

    Uses the generator exactly as :func:`sample_cuts` does, so ``simulate(base, sample_cuts(..., rng=A))``
    and ``simulate_unmet(..., rng=A')`` with ``A`` and ``A'`` seeded alike describe the same draws.

    Returns
    -------
    DataArray (draw, commodity, stage, consumer), t over the horizon.
    """
    plan = build_plan(network, hazards, responses, months=months)
    ev = _sample_events(plan, n_draws, rng)
    L, _ = _propagate(plan, ev, n_draws)
    return xr.DataArray(np.moveaxis(L, -1, 0), dims=[DRAW, COMMODITY, STAGE, CONSUMER],
                        coords={DRAW: np.arange(n_draws), COMMODITY: plan.commodities, STAGE: plan.stages,
                                CONSUMER: plan.consumers}, attrs={"units": "t"})


def _tail_size(n_total: int) -> int:
    """Largest draws kept per cell: enough for VaR/CVaR at the smallest α (exact order statistics)."""
    return n_total - math.ceil(min(ALPHAS) * n_total) + 1


def _chunk_stats(plan: _Plan, seed_seq: np.random.SeedSequence, n: int, tail: int) -> dict[str, Any]:
    """One chunk: sample, propagate, reduce to sums, counts, the top ``tail`` values and contributions."""
    rng = np.random.default_rng(seed_seq)
    ev = _sample_events(plan, n, rng)
    L, contrib = _propagate(plan, ev, n)
    B = len(plan.blocs)
    if B:   # a bloc is the sum of its members per draw (before any quantile); contributions add up too
        Lb = np.concatenate([L, *[L[:, :, idx, :].sum(axis=2, keepdims=True) for idx in plan.blocs.values()]], axis=2)
        contrib = np.concatenate([contrib, *[contrib[:, :, :, idx].sum(axis=3, keepdims=True)
                                             for idx in plan.blocs.values()]], axis=3)
    else:
        Lb = L
    flat = Lb.reshape(-1, n)
    tails = []
    for row in flat:   # per (commodity, stage, consumer) cell: at most a few hundred
        v = row[row > 0]
        if v.size > tail:
            v = np.partition(v, v.size - tail)[v.size - tail:]
        tails.append(np.sort(v))
    return {"n": n, "sum": Lb.sum(axis=-1), "npos": (Lb > 0).sum(axis=-1), "tails": tails, "contrib": contrib}


def _chunks(n_draws: int, chunk: int) -> list[int]:
    sizes = [chunk] * (n_draws // chunk)
    if n_draws % chunk:
        sizes.append(n_draws % chunk)
    return sizes


def run_ensemble(network: Any, hazards: pd.DataFrame, responses: Responses | None = None, *, n_draws: int,
                 months: int = 12, seed: int, chunk: int = 25_000, scheduler: Any = None,
                 progress: Callable[[int, int], None] | None = None,
                 blocs: Mapping[str, Sequence[str]] | None = None) -> xr.Dataset:
    """Monte Carlo ensemble of disruptions: risk of unmet demand per commodity × stage × consumer.

    Parameters
    ----------
    network : Network or Baseline
    hazards : DataFrame from :func:`estimate_hazards`
    responses : Responses (leakage, ramp, substitution, recycling, stockpile); default none
    n_draws : int, number of futures
    months : int, horizon (monthly steps)
    seed : int, recorded in ``attrs["seed"]``; chunk k uses ``SeedSequence(seed).spawn(n_chunks)[k]``
    chunk : int, draws per task (part of the reproducibility key, recorded in ``attrs["chunk"]``)
    scheduler : None (this process), a Dask scheduler address, or a ``distributed.Client``
    progress : callable(done_chunks, n_chunks), called in chunk order
    blocs : bloc label → member consumers (default USA+JPN when both are consumers)

    Returns
    -------
    Dataset (commodity, stage, consumer) with ``expected_shortfall``, ``var_95``, ``var_99``, ``cvar_95``,
    ``cvar_99`` (t, cumulative unmet demand over the horizon, the stage's basis), ``p_shortfall`` (1),
    ``demand`` (t over the horizon) and ``contribution`` (supplier, commodity, stage, consumer; t, sums to the
    expected shortfall over ``supplier``). Bloc consumers are summed per draw before any quantile.
    ``attrs``: seed, n_draws, months, chunk, estimator, hazard window, notes.

    Notes
    -----
    Results are bit-identical wherever the chunks run: each chunk's generator depends only on (seed, k), and
    every reduction runs in chunk order (sums) or on sorted values (quantiles, tail sums).
    """
    if n_draws < 1:
        raise ConfigError(f"--draws must be ≥ 1, got {n_draws}")
    if chunk < 1:
        raise ConfigError(f"chunk must be ≥ 1, got {chunk}")
    plan = build_plan(network, hazards, responses, months=months, blocs=blocs)
    sizes = _chunks(n_draws, chunk)
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    tail = _tail_size(n_draws)
    C, S, K = plan.D.shape
    Kb = K + len(plan.blocs)
    total = np.zeros((C, S, Kb))
    npos = np.zeros((C, S, Kb), dtype=np.int64)
    contrib = np.zeros((len(plan.suppliers), C, S, Kb))
    tails: list[np.ndarray] = [np.zeros(0)] * (C * S * Kb)

    def reduce(res: dict[str, Any]) -> None:
        nonlocal total, npos, contrib
        total = total + res["sum"]
        npos = npos + res["npos"]
        contrib = contrib + res["contrib"]
        for j, v in enumerate(res["tails"]):
            merged = np.concatenate([tails[j], v])
            if merged.size > tail:
                merged = np.partition(merged, merged.size - tail)[merged.size - tail:]
            tails[j] = merged

    if scheduler is None:
        for k, (n_k, sq) in enumerate(zip(sizes, seqs, strict=True)):
            reduce(_chunk_stats(plan, sq, n_k, tail))
            if progress:
                progress(k + 1, len(sizes))
    else:
        client, own = _client(scheduler)
        try:
            plan_f = client.scatter(plan, broadcast=True)
            futures = [client.submit(_chunk_stats, plan_f, sq, n_k, tail, pure=False)
                       for n_k, sq in zip(sizes, seqs, strict=True)]
            for k, fut in enumerate(futures):   # gather in order: reductions are order-deterministic
                reduce(fut.result())
                fut.release()
                if progress:
                    progress(k + 1, len(sizes))
        finally:
            if own:
                client.close()

    # statistics from the merged tails (sorted: sums independent of arrival order)
    var = {a: np.zeros(C * S * Kb) for a in ALPHAS}
    cvar = {a: np.zeros(C * S * Kb) for a in ALPHAS}
    for j, v in enumerate(tails):
        v = np.sort(v)
        m = v.size
        for a in ALPHAS:
            rank = math.ceil(a * n_draws)                # 1-based rank of VaR in the full ascending sample
            pos = rank - (n_draws - m)                   # its position in the tail (1-based), ≤ 0: a zero draw
            q = v[pos - 1] if pos >= 1 else 0.0
            excess = v[v > q] - q
            var[a][j] = q
            cvar[a][j] = q + float(np.sum(excess)) / ((1.0 - a) * n_draws)
    dims = (COMMODITY, STAGE, CONSUMER)
    consumers = plan.consumers + list(plan.blocs)
    coords = {COMMODITY: plan.commodities, STAGE: plan.stages, CONSUMER: consumers}
    demand = np.concatenate([plan.D, *[plan.D[:, :, idx].sum(axis=2, keepdims=True) for idx in plan.blocs.values()]],
                            axis=2) * months if plan.blocs else plan.D * months

    def da(arr: np.ndarray, units: str, name: str) -> xr.DataArray:
        return xr.DataArray(arr.reshape(C, S, Kb), dims=dims, coords=coords, attrs={"units": units, "long_name": name})

    ds = xr.Dataset({
        "expected_shortfall": da(total / n_draws, "t", "expected cumulative unmet demand over the horizon"),
        "var_95": da(var[0.95], "t", "value at risk 95 % of cumulative unmet demand"),
        "var_99": da(var[0.99], "t", "value at risk 99 % of cumulative unmet demand"),
        "cvar_95": da(cvar[0.95], "t", "conditional value at risk 95 % (expected shortfall beyond VaR)"),
        "cvar_99": da(cvar[0.99], "t", "conditional value at risk 99 %"),
        "p_shortfall": da(npos / n_draws, "1", "probability of any unmet demand over the horizon"),
        "demand": da(demand, "t", "baseline demand over the horizon"),
        "contribution": xr.DataArray(contrib / n_draws, dims=(SUPPLIER, *dims),
                                     coords={SUPPLIER: plan.suppliers, **coords},
                                     attrs={"units": "t", "long_name": "supplier's share of the expected shortfall"}),
    })
    ds.attrs.update({"seed": int(seed), "n_draws": int(n_draws), "months": int(months), "chunk": int(chunk),
                     "n_chunks": len(sizes), "estimator": hazards.attrs.get("estimator", ESTIMATOR),
                     "hazard_window": list(hazards.attrs.get("window", [])),
                     "catalogue_as_of": hazards.attrs.get("as_of", ""),
                     "blocs": {k: [plan.consumers[i] for i in v] for k, v in plan.blocs.items()},
                     "scheduler": "local" if scheduler is None else "dask"})
    return ds


def _client(scheduler: Any) -> tuple[Any, bool]:
    """A ``distributed.Client`` from an address (owned: closed after use) or the client given."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("Dask is not installed: pip install 'critmin[scale]'") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(str(scheduler), timeout="20s"), True
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None


def local_cluster(workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded processes (closed by the caller)."""
    try:
        from distributed import LocalCluster
    except ImportError:
        raise ConfigError("Dask is not installed: pip install 'critmin[scale]'") from None
    import dask

    if workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in worker processes, which freezes glibc's dynamic mmap threshold:
    # every large temporary array is then mmap'ed and page-faulted afresh, 3–4× slower for this workload.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def tidy(ds: xr.Dataset, consumers: Sequence[str] | None = None, *, top_suppliers: int = 3) -> pd.DataFrame:
    """Long table of an ensemble: one row per commodity × stage × consumer with demand > 0.

    Columns: commodity, stage, consumer, demand_t, expected_shortfall_t, var_95_t, var_99_t, cvar_95_t,
    cvar_99_t, p_shortfall, top_contributors (``CHN 71%; COD 20%`` of the expected shortfall), seed, n_draws.
    """
    keep = ["expected_shortfall", "var_95", "var_99", "cvar_95", "cvar_99", "p_shortfall", "demand"]
    frame = ds[keep].to_dataframe().reset_index()
    if consumers is not None:
        frame = frame[frame[CONSUMER].isin(list(consumers))]
    frame = frame[frame["demand"] > 0]
    contrib = ds["contribution"]
    es = ds["expected_shortfall"]
    shares = (contrib / es.where(es > 0))
    tops = []
    for r in frame.itertuples(index=False):
        s = shares.sel({COMMODITY: r.commodity, STAGE: r.stage, CONSUMER: r.consumer}).to_series().dropna()
        s = s[s > 0.005].sort_values(ascending=False).head(top_suppliers)
        tops.append("; ".join(f"{k} {v:.0%}" for k, v in s.items()))
    frame = frame.assign(top_contributors=tops, seed=ds.attrs["seed"], n_draws=ds.attrs["n_draws"])
    frame = frame.rename(columns={"demand": "demand_t", **{k: f"{k}_t" for k in keep[:5]}})
    order = {k: i for i, k in enumerate(ds[CONSUMER].values)}
    frame = frame.sort_values([CONSUMER, "expected_shortfall_t"], key=lambda c: c.map(order) if c.name == CONSUMER
                              else -c, kind="stable")
    cols = [COMMODITY, STAGE, CONSUMER, "demand_t", "expected_shortfall_t", "var_95_t", "var_99_t", "cvar_95_t",
            "cvar_99_t", "p_shortfall", "top_contributors", "seed", "n_draws"]
    return frame[cols].reset_index(drop=True)


#: The priority commodities of the issue (network ids): the default of ``critmin risk``.
PRIORITY_COMMODITIES = ("rare-earths", "gallium", "germanium", "graphite", "antimony", "tungsten", "cobalt", "nickel",
                        "lithium")


def assess_risk(importer: str = "USA,JPN,USA+JPN", commodities: Sequence[str] | None = None, *, draws: int = 100_000,
                seed: int = 0, months: int = 12, workers: int | None = None, scheduler: str | None = None,
                hazards_file: str | Path | None = None, catalog: Any = None, chunk: int = 25_000,
                progress: Callable[[int, int], None] | None = None) -> tuple[xr.Dataset, pd.DataFrame, dict]:
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

    Returns
    -------
    (Dataset, tidy DataFrame, meta) — meta holds ``sources`` (ids), ``assumptions`` and ``notes``.
    """
    from critmin.importers import parse_importers
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network
    from critmin.supplychain.scenario import default_responses

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
    sources = sorted({*cat.table("export_controls")["source"].dropna().unique(),
                      *(src for tab in ("production", "trade") for src in cat.table(tab)["source"].dropna().unique())})
    notes = [f"hazards: {len(hz.attrs['counted_events'])} events of the export-control catalogue, "
             f"{hz.attrs['window'][0]}–{hz.attrs['window'][1]} (as of {hz.attrs['as_of']}); {hz.attrs['estimator']}",
             *hz.attrs["notes"],
             "responses: cited defaults of the network (spare-capacity ramp, substitution); no stockpile or leakage; "
             "the kernel has one response clock starting at month 0, so a disruption starting later in the horizon is "
             "credited with ramp-up time before it began (optimistic)"]
    return ds, frame, {"sources": sources, "assumptions": net.assumptions, "notes": notes}


__all__ = [
    "ALPHAS",
    "EVENT_JUDGEMENTS",
    "MAGNITUDES",
    "MEASURES",
    "PRIORITY_COMMODITIES",
    "assess_risk",
    "build_plan",
    "estimate_hazards",
    "load_overrides",
    "local_cluster",
    "run_ensemble",
    "sample_cuts",
    "simulate_unmet",
    "tidy",
]

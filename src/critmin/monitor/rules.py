"""Alert rules of ``critmin monitor``: pure functions over DataFrames (no IO, no globals).

Each rule compares NEW observations with the BASELINE (the bundled dataset) and returns an alerts
frame with :data:`ALERT_COLUMNS`; ``baseline``, ``new`` and ``threshold`` are numbers in the unit
named by ``metric`` (NaN where a rule has no number), ``message`` says it all in plain English.
Rows a rule cannot judge (no comparable baseline, too short a series, ...) are explained in the
optional ``notes`` list the caller passes, never silently alerted on.

Severity (documented in ``thresholds.yml``):

* import-share jump — ``high`` if the change is ≥ ``high_pp`` percentage points, else ``medium``;
* price spike — ``high`` for a rise ≥ ``high_k_sigma`` σ, ``medium`` for a rise ≥ ``k_sigma`` σ,
  ``low`` for a fall beyond ``k_sigma`` σ;
* new export control — ``high`` if the measure is in ``high_measures`` (ban) or a target is in
  ``high_targets`` (USA, JPN), else ``medium``; an event that names only an aggregate
  (``critical minerals``, ``all``) is one level lower, as it may or may not cover a priority mineral.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from critmin.constants import PSEUDO_COUNTRIES
from critmin.reference.countries import country_name
from critmin.reference.sources.curated import AGGREGATE_LABELS

ALERT_COLUMNS = ["rule", "severity", "commodity", "partner_or_country", "period", "metric", "baseline", "new",
                 "threshold", "message"]
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}

_ANNUAL = re.compile(r"(\d{4})")
_YTD = re.compile(r"(\d{4})-YTD(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def empty_alerts() -> pd.DataFrame:
    """An alerts frame with no rows (columns and dtypes as every rule returns)."""
    return _frame([])


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    return frame.astype({"baseline": "float64", "new": "float64", "threshold": "float64"})


def trade_period(text: str) -> tuple[int, int]:
    """``"YYYY"`` → (year, 12); ``"YYYY-YTDmm"`` → (year, mm), January to month mm.

    Raises
    ------
    ValueError
        For any other text or a month outside 1–12.
    """
    text = str(text).strip()
    if m := _ANNUAL.fullmatch(text):
        return int(m[1]), 12
    if (m := _YTD.fullmatch(text)) and 1 <= int(m[2]) <= 12:
        return int(m[1]), int(m[2])
    raise ValueError(text)


def price_step(period: str, frequency: str) -> int:
    """Period as an integer step count: months since year 0 (monthly) or the year (annual).

    Raises
    ------
    ValueError
        If ``period`` does not match ``frequency`` (monthly ``YYYY-MM``, annual ``YYYY``).
    """
    text = str(period).strip()
    if frequency == "monthly" and (m := _MONTH.fullmatch(text)) and 1 <= int(m[2]) <= 12:
        return int(m[1]) * 12 + int(m[2]) - 1
    if frequency == "annual" and (m := _ANNUAL.fullmatch(text)):
        return int(m[1])
    raise ValueError(text)


def _step_or_none(period: str, frequency: str) -> float:
    """Like :func:`price_step`, NaN for a baseline period that does not match its frequency."""
    try:
        return float(price_step(period, frequency))
    except ValueError:
        return float("nan")


def _months_label(months: int) -> str:
    return "full year" if months == 12 else f"Jan–{_MONTH_NAMES[months - 1]}"


def _usd(x: float) -> str:
    return f"USD {x / 1e6:,.1f} M" if abs(x) >= 1e5 else f"USD {x:,.0f}"


def _num(x: float) -> str:
    """A price for a message: thousands separators, 4 significant digits below 1000."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _who(code: str) -> str:
    return f"{country_name(code)} ({code})"


# --------------------------------------------------------------------------- rule 1: import shares
def comparable_period(new_period: str, baseline_periods: Iterable[str]) -> tuple[str | None, bool]:
    """The baseline period a new trade period is compared with.

    A year-to-date period (``YYYY-YTDmm``) is compared with the latest earlier year's same months;
    a full year, or a YTD period without a same-months baseline, with the latest earlier full year.

    Returns
    -------
    (str or None, bool)
        The baseline period (None if there is none) and whether it is a like-for-like (same months) match.
    """
    year, months = trade_period(new_period)
    parsed = []
    for p in set(baseline_periods):
        try:
            parsed.append((*trade_period(p), p))
        except ValueError:
            continue
    same = [(y, p) for y, m, p in parsed if m == months and y < year]
    if same:
        return max(same)[1], True
    full = [(y, p) for y, m, p in parsed if m == 12 and y < year]
    return (max(full)[1], False) if full else (None, False)


def share_jumps(baseline: pd.DataFrame, new: pd.DataFrame, *, share_jump_pp: float = 10.0,
                high_pp: float = 20.0, min_total_value_usd: float = 1e6,
                notes: list[str] | None = None) -> pd.DataFrame:
    """Alert where a partner's share of U.S. import value moves by ≥ ``share_jump_pp`` points.

    Parameters
    ----------
    baseline, new : pandas.DataFrame
        ``us_trade`` long tables (columns ``flow, commodity, stage, partner, period, value_usd``;
        ``hts4`` optional). Only ``flow == "import"`` rows are used. ``stage`` may be ``""`` in
        ``new`` (commodity given without stage): the baseline is then summed over every stage.
    share_jump_pp : float
        Alert threshold, percentage points (pp) of import value.
    high_pp : float
        Changes of at least this many pp are ``high`` severity, smaller ones ``medium``.
    min_total_value_usd : float
        Minimum import value (USD) in both periods for a commodity-stage to be judged.
    notes : list of str, optional
        Receives one line per commodity-stage-period that could not be judged.

    Returns
    -------
    pandas.DataFrame
        Alerts (:data:`ALERT_COLUMNS`); ``baseline``/``new`` are shares in percent, ``threshold`` in pp.

    Notes
    -----
    Shares are of imports from the baseline's partner set only (the bundled USITC query covers 18
    partners, no world total): new rows from other partners and pseudo partners (ROW, WLD) are left
    out so that both periods share one denominator. A partner absent from one period has share 0.
    """
    notes = notes if notes is not None else []
    base = baseline[baseline["flow"] == "import"]
    universe = set(base["partner"].astype(str)) - set(PSEUDO_COUNTRIES)
    new = new[(new["flow"] == "import") & new["partner"].astype(str).isin(universe)]
    has_hts = "hts4" in new.columns
    rows: list[dict] = []
    keys = ["commodity", "stage", "period"]
    for (commodity, stage, period), grp in new.groupby(keys, sort=True):
        bsel = base[base["commodity"] == commodity]
        if stage:
            bsel = bsel[bsel["stage"] == stage]
        bperiod, like = comparable_period(period, bsel["period"].astype(str))
        what = f"{commodity}" + (f" ({stage}" if stage else " (all stages")
        heads = sorted({h for h in grp["hts4"].astype(str) if h}) if has_hts else []
        what += (f"; HTS {', '.join(heads)})" if heads else ")")
        if bperiod is None:
            notes.append(f"import shares: no baseline period before {period} for {what}; not judged")
            continue
        bgrp = bsel[bsel["period"] == bperiod]
        if has_hts and heads:
            # Compare like with like: only the headings the new file reports.
            bgrp = bgrp[bgrp["hts4"].astype(str).isin(heads)] if "hts4" in bgrp else bgrp
        bval = bgrp.groupby("partner")["value_usd"].sum()
        nval = grp.groupby("partner")["value_usd"].sum()
        btot, ntot = float(bval.sum()), float(nval.sum())
        if min(btot, ntot) < min_total_value_usd:
            notes.append(f"import shares: {what} {period} vs {bperiod}: total {_usd(ntot)} / {_usd(btot)} below "
                         f"the minimum {_usd(min_total_value_usd)}; not judged")
            continue
        partners = sorted(set(bval.index) | set(nval.index))
        bshare = bval.reindex(partners, fill_value=0.0) / btot * 100
        nshare = nval.reindex(partners, fill_value=0.0) / ntot * 100
        _, months = trade_period(period)
        basis = ("full years" if like and months == 12 else f"same months, {_months_label(months)}" if like
                 else f"no {_months_label(months)} baseline, compared with the full year")
        for p in partners:
            delta = float(nshare[p] - bshare[p])
            if abs(delta) < share_jump_pp:
                continue
            severity = "high" if abs(delta) >= high_pp else "medium"
            verb = "rose" if delta > 0 else "fell"
            rows.append({
                "rule": "import_share_jump", "severity": severity, "commodity": commodity,
                "partner_or_country": p, "period": period,
                "metric": f"share of U.S. import value, % ({stage or 'all stages'}; vs {bperiod})",
                "baseline": float(bshare[p]), "new": float(nshare[p]), "threshold": float(share_jump_pp),
                "message": (f"U.S. imports of {what}: {_who(p)}'s share of import value {verb} from "
                            f"{bshare[p]:.1f}% in {bperiod} ({_usd(bval.get(p, 0.0))} of {_usd(btot)}) to "
                            f"{nshare[p]:.1f}% in {period} ({_usd(nval.get(p, 0.0))} of {_usd(ntot)}), "
                            f"{delta:+.1f} pp (threshold {share_jump_pp:g} pp; {basis}; shares of imports "
                            f"from the {len(universe)} partners in the baseline)."),
            })
    return _frame(rows)


# --------------------------------------------------------------------------- rule 2: price spikes
def price_spikes(baseline: pd.DataFrame, new: pd.DataFrame, *, k_sigma: float = 3.0, high_k_sigma: float = 5.0,
                 monthly_window: int = 60, min_returns: int = 10,
                 notes: list[str] | None = None) -> pd.DataFrame:
    """Alert where a new price lies beyond ``k_sigma`` σ of the baseline series' log-changes.

    Parameters
    ----------
    baseline, new : pandas.DataFrame
        ``prices`` tables (``commodity, series, period, frequency, value, unit``); ``period`` is
        ``YYYY-MM`` (monthly) or ``YYYY`` (annual). A new row is compared only with the baseline
        series of the same commodity, frequency and unit (never mixing units) and the same
        ``series``; a new row whose series is ``user`` (not given) uses the one baseline series of
        that commodity, frequency and unit if there is exactly one.
    k_sigma, high_k_sigma : float
        Alert threshold and high-severity threshold, in standard deviations (σ).
    monthly_window : int
        Monthly series: number of most recent baseline log-changes used (annual: all).
    min_returns : int
        Minimum number of baseline log-changes for a usable σ.
    notes : list of str, optional
        Receives one line per new observation that could not be judged.

    Returns
    -------
    pandas.DataFrame
        Alerts; ``baseline`` = last baseline price, ``new`` = new price (both in the series unit),
        ``threshold`` = ``k_sigma``; the z-score, window and unit are in ``metric``/``message``.

    Notes
    -----
    r = ln(new / last baseline value); with h steps (months or years) between the two periods,
    z = (r − h·μ) / (σ·√h), μ and σ the mean and standard deviation (ddof 1) of the baseline
    one-step log-changes in the window (a random walk with drift).
    """
    notes = notes if notes is not None else []
    rows: list[dict] = []
    base = baseline[pd.to_numeric(baseline["value"], errors="coerce") > 0]
    for obs in new.itertuples(index=False):
        freq, unit, commodity = str(obs.frequency), str(obs.unit), str(obs.commodity)
        label = f"{commodity} {obs.series!s} {obs.period} ({unit}, {freq})"
        cand = base[(base["commodity"] == commodity) & (base["frequency"] == freq) & (base["unit"] == unit)]
        series = str(obs.series)
        if series == "user":
            names = sorted(cand["series"].astype(str).unique())
            if len(names) != 1:
                notes.append(f"prices: {label}: {len(names)} baseline series of this commodity, frequency and unit "
                             f"({', '.join(names) or 'none'}); give the 'series' column to compare")
                continue
            series = names[0]
        ser = cand[cand["series"] == series]
        if ser.empty:
            notes.append(f"prices: {label}: no baseline series {series!r} with this commodity, frequency and unit "
                         "(units are never mixed); not judged")
            continue
        try:
            step = price_step(obs.period, freq)
        except ValueError:
            notes.append(f"prices: {label}: period does not match the frequency; not judged")
            continue
        ser = ser.assign(_step=[_step_or_none(p, freq) for p in ser["period"]])
        ser = ser[ser["_step"].notna() & (ser["_step"] < step)].sort_values("_step")
        if ser.empty:
            notes.append(f"prices: {label}: the baseline has no earlier observation; not judged")
            continue
        steps = ser["_step"].to_numpy()
        values = ser["value"].astype(float).to_numpy()
        # One-step log-changes only: a gap in the series would otherwise pose as one large move.
        ok = np.diff(steps) == 1
        returns = np.diff(np.log(values))[ok]
        if freq == "monthly":
            returns = returns[-monthly_window:]
        last_step, last_value, last_period = int(steps[-1]), float(values[-1]), str(ser["period"].iloc[-1])
        later = baseline[(baseline["commodity"] == commodity) & (baseline["series"] == series)
                         & (baseline["frequency"] == freq) & (baseline["period"].astype(str) >= str(obs.period))]
        if len(later):
            notes.append(f"prices: {label}: the baseline already has {obs.period} or later; only earlier "
                         "baseline values are used")
        if len(returns) < min_returns:
            notes.append(f"prices: {label}: only {len(returns)} baseline log-changes (minimum {min_returns}); "
                         "not judged")
            continue
        mu, sigma = float(np.mean(returns)), float(np.std(returns, ddof=1))
        if not sigma > 0:
            notes.append(f"prices: {label}: the baseline series does not vary; not judged")
            continue
        h = step - last_step
        r = math.log(float(obs.value) / last_value) if float(obs.value) > 0 else -math.inf
        z = (r - h * mu) / (sigma * math.sqrt(h))
        if abs(z) < k_sigma:
            continue
        severity = "low" if z < 0 else ("high" if z >= high_k_sigma else "medium")
        window = (f"last {len(returns)} monthly log-changes to {last_period}" if freq == "monthly"
                  else f"{len(returns)} annual log-changes to {last_period}")
        change = (float(obs.value) / last_value - 1) * 100
        rows.append({
            "rule": "price_spike", "severity": severity, "commodity": commodity, "partner_or_country": "",
            "period": str(obs.period),
            "metric": f"price, {unit} (series {series}, {freq}; z = {z:+.1f} σ)",
            "baseline": last_value, "new": float(obs.value), "threshold": float(k_sigma),
            "message": (f"{commodity} price (series {series}, {unit}): {_num(float(obs.value))} in {obs.period} vs "
                        f"{_num(last_value)} in {last_period} ({change:+.1f}%, log-change {r:+.3f} over {h} "
                        f"{'month' if freq == 'monthly' else 'year'}{'s' if h > 1 else ''}) is {z:+.1f} σ "
                        f"from the baseline (mean {mu:+.4f}, σ {sigma:.4f} per step; {window}); "
                        f"threshold ±{k_sigma:g} σ."),
        })
    return _frame(rows)


# --------------------------------------------------------------------------- rule 3: new controls
def new_controls(baseline: pd.DataFrame, new: pd.DataFrame, priority_commodities: Iterable[str], *,
                 high_measures: Iterable[str] = ("ban",), high_targets: Iterable[str] = ("USA", "JPN"),
                 parents: dict[str, str] | None = None, importers: str = "USA,JPN,USA+JPN",
                 notes: list[str] | None = None) -> pd.DataFrame:
    """Alert on export-control events that are new (event_id not in the baseline) and hit a priority mineral.

    Parameters
    ----------
    baseline : pandas.DataFrame
        The baseline catalogue (needs ``event_id``).
    new : pandas.DataFrame
        New events: ``event_id, country_iso3, commodity`` (``;``-separated critmin ids or aggregate
        labels), ``measure``, ``targets``, ``announced``, ``effective``, ``stage`` (text).
    priority_commodities : iterable of str
        Critmin ids judged priority (e.g. by :func:`critmin.workflows.priorities`).
    high_measures, high_targets : iterable of str
        Measures and target country codes that make an alert ``high`` severity.
    parents : dict, optional
        Commodity id → parent id (e.g. ``dysprosium`` → ``rare-earths``): an event on a member of a
        priority family counts for the family. Aggregate labels (``critical minerals``, ``all`` …;
        :data:`critmin.reference.sources.curated.AGGREGATE_LABELS`) are alerted one level lower.
    importers : str
        Named in the message (whose priorities these are).
    notes : list of str, optional
        Receives one line per new event that is not alerted (no priority mineral).

    Returns
    -------
    pandas.DataFrame
        One alert per event; ``commodity`` lists the priority minerals hit (``;``-separated) or the
        aggregate label; ``baseline``/``new``/``threshold`` are NaN (the event is the news).
    """
    notes = notes if notes is not None else []
    parents = parents or {}
    priority = set(priority_commodities)
    known = set(baseline["event_id"].astype(str)) if len(baseline) else set()
    high_m = {m.casefold() for m in high_measures}
    high_t = set(high_targets)
    rows: list[dict] = []
    for ev in new.itertuples(index=False):
        eid = str(ev.event_id)
        if eid in known:
            continue
        ids = [c.strip() for c in str(ev.commodity).split(";") if c.strip()]
        hit = [c if parents.get(c, c) == c else f"{parents[c]} ({c})" for c in ids if parents.get(c, c) in priority]
        aggregates = [c for c in ids if c.casefold() in AGGREGATE_LABELS]
        targets = str(_text(ev, "targets") or "all")
        measure = str(ev.measure)
        high = measure.casefold() in high_m or bool(high_t & set(re.findall(r"[A-Z]{3}", targets)))
        if hit:
            severity, label = ("high" if high else "medium"), ";".join(dict.fromkeys(
                h.split(" (")[0] for h in hit))
            scope = f"priority minerals for {importers}: {', '.join(hit)}"
        elif aggregates:
            severity, label = ("medium" if high else "low"), ";".join(aggregates)
            scope = (f"names only aggregate(s) {', '.join(repr(a) for a in aggregates)}, which may include "
                     f"priority minerals for {importers}")
        else:
            notes.append(f"export controls: new event {eid} ({', '.join(ids)}) names no priority mineral; no alert")
            continue
        when = _text(ev, "effective") or _text(ev, "announced") or ""
        announced = _text(ev, "announced")
        stage = _text(ev, "stage")
        rows.append({
            "rule": "new_export_control", "severity": severity, "commodity": label,
            "partner_or_country": str(ev.country_iso3), "period": str(when),
            "metric": f"new export-control event ({measure})", "baseline": np.nan, "new": np.nan,
            "threshold": np.nan,
            "message": (f"New export control {eid} (not in the baseline catalogue): {_country_list(ev.country_iso3)} "
                        f"{measure} on {', '.join(ids)}" + (f" (stage {stage})" if stage else "")
                        + f", targets {targets}, effective {when or 'not given'}"
                        + (f" (announced {announced})" if announced and announced != when else "")
                        + f"; {scope}."),
        })
    return _frame(rows)


def _text(row, name: str) -> str | None:
    value = getattr(row, name, None)
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    value = str(value).strip()
    return value or None


def _country_list(codes) -> str:
    return ", ".join(_who(c.strip()) if len(c.strip()) == 3 else c.strip() for c in str(codes).split(";"))


def sort_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Order alerts by severity (high first), rule, commodity, partner, period."""
    if alerts.empty:
        return alerts.reset_index(drop=True)
    order = alerts["severity"].map(SEVERITY_ORDER)
    return (alerts.assign(_o=order).sort_values(["_o", "rule", "commodity", "partner_or_country", "period"],
                                                kind="mergesort")
            .drop(columns="_o").reset_index(drop=True))

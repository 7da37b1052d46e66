"""What ``critmin policy floor|cfd|offtake|tariff|permitting`` call: inputs checked, kernels run, one table out.

Every result table is long: ``section`` (``result``, ``project``, ``parameter``, ``run``), ``quantity``,
``mean``, ``p5``, ``p50``, ``p95``, ``unit`` and ``note``. The ``parameter`` rows carry each calibrated price
parameter with how it was obtained; the ``run`` rows carry the seed, paths, horizon, rate and inputs, so a
CSV, JSON or XLSX export is reproducible on its own.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from critmin.errors import ConfigError, UnitError
from critmin.policy import measures as M
from critmin.policy import permitting as PM
from critmin.policy import prices as PR
from critmin.policy.defaults import DEFAULT_PATHS, DEFAULT_RATE, DEFAULT_SEED, STEPS_PER_YEAR

COLUMNS = ["section", "quantity", "mean", "p5", "p50", "p95", "unit", "note"]

# ---------------------------------------------------------------------------------------------------------
# Presets and units


def preset_names() -> list[str]:
    """Names of the bundled presets (``policy/presets/*.yml``)."""
    folder = resources.files("critmin.policy").joinpath("presets")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml"))


class PolicyPreset(BaseModel):
    """Contract of a pricing-measure preset: the measure, the commodity and the price are required; the
    rest (volume, years, citation …) is kept as given."""

    model_config = ConfigDict(extra="allow")
    measure: Any
    commodity: Any
    floor: Any


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A preset by bundled name (``dod_mp_ndpr_floor``) or YAML path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable file, or a preset without ``measure``, ``commodity`` and a price.
    """
    p = Path(name_or_path)
    if p.suffix in (".yml", ".yaml") and p.is_file():
        text = p.read_text("utf-8")
    elif str(name_or_path) in preset_names():
        text = resources.files("critmin.policy").joinpath("presets", f"{name_or_path}.yml").read_text("utf-8")
    else:
        raise ConfigError(f"unknown preset {str(name_or_path)!r}; bundled: {', '.join(preset_names())} "
                          "(or give a path to a .yml file)")
    from critmin.contracts import parse_yaml, validate

    doc = parse_yaml(text, where=f"preset {name_or_path}", error=ConfigError)
    validate(PolicyPreset, doc.data, where=f"preset {name_or_path}", error=ConfigError, node=doc.node)
    return doc.data


def _value(entry: Any) -> Any:
    return entry["value"] if isinstance(entry, dict) and "value" in entry else entry


def price_unit_factors(unit: str) -> tuple[float, float]:
    """For a price unit, USD per price unit and price-mass units per tonne.

    ``USD/kg`` → (1, 1000); ``cents per pound`` → (0.01, 2204.6…). The boundary conversion: a volume of
    ``v`` tonnes at price ``P`` is worth ``P * usd * v * per_t`` USD.

    Raises
    ------
    ConfigError
        A price unit that is not currency per mass (e.g. dollars per gram ampoule of a salt).
    """
    from critmin.units import mass_factor

    u = unit.strip()
    m = re.fullmatch(r"USD/(.+)", u)
    if m:
        usd, mass = 1.0, m.group(1)
    elif re.fullmatch(r"cents per pound", u, flags=re.IGNORECASE):
        usd, mass = 0.01, "lb"
    elif re.fullmatch(r"dollars per (kilogram|pound|metric ton)", u, flags=re.IGNORECASE):
        usd, mass = 1.0, u.split("per ", 1)[1]
    else:
        raise ConfigError(f"price unit {unit!r} is not USD per mass; a volume in tonnes cannot be priced with it")
    mass = {"troy oz": "troy_ounce"}.get(mass, mass)
    try:
        per_t = 1.0 / mass_factor(mass, to="tonne")
    except UnitError as exc:
        raise ConfigError(f"price unit {unit!r}: {exc}") from None
    return usd, per_t


# ---------------------------------------------------------------------------------------------------------
# Pricing measures


def _row(section: str, quantity: str, stats: dict[str, float] | float | None, unit: str, note: str = "") -> dict:
    if isinstance(stats, dict):
        return {"section": section, "quantity": quantity, "mean": stats["mean"], "p5": stats["p5"],
                "p50": stats["p50"], "p95": stats["p95"], "unit": unit, "note": note}
    v = float("nan") if stats is None else float(stats)
    return {"section": section, "quantity": quantity, "mean": v, "p5": math.nan, "p50": math.nan, "p95": math.nan,
            "unit": unit, "note": note}


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> float:
    if value is None:
        raise ConfigError(f"{name} is required")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} (got {value})")
    return v


def evaluate_measure(kind: str, *, preset: str | Path | None = None, commodity: str | None = None,
                     series: str | None = None, price: float | None = None, rate: float | None = None,
                     volume_t: float | None = None, years: int | None = None, discount_rate: float = DEFAULT_RATE,
                     paths: int = DEFAULT_PATHS, seed: int = DEFAULT_SEED, capex_usd_m: float | None = None,
                     unit_cost: float | None = None, upside_share: float | None = None,
                     resale_haircut: float = 0.0, nonmarket_volume_t: float | None = None,
                     catalog=None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate prices, apply a measure, summarise the government's cost and the project's NPV/IRR.

    Parameters
    ----------
    kind : str
        ``floor`` | ``cfd`` | ``offtake`` | ``tariff``.
    preset : str or Path, optional
        A preset name or YAML (its values are defaults; explicit arguments win).
    commodity, series : str
        Price model (see :func:`critmin.policy.prices.calibrate_for`).
    price : float
        Floor, strike, fixed price or tariff reference price, in the price series' unit.
    rate : float
        Ad valorem tariff rate (share), tariffs only.
    volume_t : float
        Volume covered per year, t (the project's output for NPV; floors: sold or stockpiled).
    years : int
        Duration of the measure and of the project cash flows, years.
    discount_rate : float
        Per year, nominal.
    paths, seed : int
        Monte Carlo paths and seed (recorded in the output).
    capex_usd_m, unit_cost : float, optional
        Project capex (USD million) and cash cost (price-series unit); with both, NPV/IRR rows are added.
    upside_share, resale_haircut : float
        Floor upside share, offtake resale haircut (shares).
    nonmarket_volume_t : float
        Tariffs: non-market imports per year, t (duty base).

    Returns
    -------
    (pandas.DataFrame, dict)
        The long result table and ``meta`` (``seed``, ``params``, ``provenance``, ``sources``, ``notes``,
        ``title``).
    """
    from critmin.reference.catalog import Catalog

    catalog = catalog if catalog is not None else Catalog()
    pre = load_preset(preset) if preset is not None else {}
    if pre and pre["measure"] != kind:
        raise ConfigError(f"preset {pre.get('name', preset)} is a {pre['measure']} preset, not {kind}")
    commodity = commodity or pre.get("commodity")
    if not commodity:
        raise ConfigError("--commodity is required (e.g. ndpr, copper, nickel) unless a --preset gives it")
    price = price if price is not None else _value(pre.get("floor"))
    volume_t = volume_t if volume_t is not None else _value(pre.get("volume_t_per_year"))
    years = years if years is not None else _value(pre.get("years")) or 10
    upside = upside_share if upside_share is not None else float(_value(pre.get("upside_share")) or 0.0)
    if kind != "tariff":
        _positive({"floor": "--floor", "cfd": "--strike", "offtake": "--fixed-price"}[kind], price)
    elif price is not None:
        _positive("--reference", price)
    volume_t = _positive("--volume (t/yr)", volume_t, allow_zero=kind == "tariff")
    if int(years) != years or years < 1 or years > 100:
        raise ConfigError(f"--years must be a whole number of years in 1..100 (got {years})")
    years = int(years)
    if not -1 < discount_rate < 1:
        raise ConfigError(f"--rate must be a share per year in (-1, 1), e.g. 0.05 (got {discount_rate})")
    if paths < 100 or paths > 1_000_000:
        raise ConfigError(f"--paths must be in 100..1,000,000 (got {paths})")
    nonmarket = _positive("--nonmarket-volume (t/yr)", nonmarket_volume_t or 0.0, allow_zero=True)
    if kind == "tariff" and nonmarket == 0 and volume_t == 0:
        raise ConfigError("tariff: give --nonmarket-volume (duty base, t/yr) and/or --volume (project, t/yr)")

    cal = PR.calibrate_for(catalog, commodity, series)
    usd, per_t = price_unit_factors(cal["unit"])
    to_usd = usd * per_t                     # USD per (price unit × tonne)
    measure = M.Measure(kind=kind, price=None if price is None else float(price), rate=rate, upside_share=upside,
                        resale_haircut=resale_haircut, nonmarket_volume=nonmarket * to_usd / STEPS_PER_YEAR,
                        years=years)
    rng = np.random.default_rng(seed)
    sim = PR.simulate_paths(cal["params"], cal["p0"], years, STEPS_PER_YEAR, paths, rng)
    vol_step = volume_t * to_usd / STEPS_PER_YEAR   # USD per price unit, per step
    gov_step = measure.government_cost(sim, vol_step, STEPS_PER_YEAR)
    gov_pv = M.present_value_steps(gov_step, discount_rate, STEPS_PER_YEAR) / 1e6
    gov_year = M.annual_sums(gov_step, STEPS_PER_YEAR)
    gov_total = gov_year.sum(axis=1) / 1e6
    unit = cal["unit"]
    if kind == "tariff":   # a tariff has a reference price or an ad valorem rate, never both
        what = f"reference price {price:g} {unit}" if price is not None else f"ad valorem {rate:.1%}"
    else:
        what = {"floor": "floor", "cfd": "CfD strike", "offtake": "offtake at"}[kind] + f" {price:g} {unit}"
    rows = [
        _row("result", "government cost, present value", M.distribution(gov_pv), "USD m",
             f"{what}, {volume_t:g} t/yr, {years} yr, discounted monthly at {discount_rate:.1%}/yr; "
             "positive = government pays"),
        _row("result", "government cost, undiscounted", M.distribution(gov_total), "USD m", ""),
        _row("result", "share of years with a payment", float(np.mean(gov_year > 0)), "share",
             "years in which the government pays (net) anything"),
        _row("result", "probability the measure costs nothing", float(np.mean(gov_pv <= 0)), "share",
             "paths with zero or negative present cost"),
        _row("result", "benchmark price, year-average", M.distribution(M.annual_sums(sim, STEPS_PER_YEAR) / 12),
             unit, "over all paths and years"),
        _row("result", f"benchmark price, year {years}", M.distribution(sim[:, -1]), unit, "end of horizon"),
    ]
    notes = list(cal["notes"])
    if kind == "tariff":
        notes.append("tariff: government cost is minus the duty revenue on non-market imports (held fixed: no "
                     "demand response); the project gains from full pass-through of the duty to the benchmark")
    if kind == "offtake" and resale_haircut == 0:
        notes.append("offtake with resale at market (haircut 0): same net cost as a CfD at the same strike")
    if capex_usd_m is not None or unit_cost is not None:
        capex = _positive("--capex (USD m)", capex_usd_m, allow_zero=True) * 1e6
        cost = _positive(f"--unit-cost ({unit})", unit_cost, allow_zero=True)
        vol_year = volume_t * to_usd
        base = M.project_cashflows(capex, vol_year, cost, sim, years)
        with_m = M.project_cashflows(capex, vol_year, cost, sim, years, measure)
        for label, cf in (("without measure", base), ("with measure", with_m)):
            rows.append(_row("project", f"NPV {label}", M.distribution(M.npv(cf, discount_rate) / 1e6), "USD m",
                             f"capex {capex_usd_m:g} USD m, cash cost {cost:g} {unit}, {volume_t:g} t/yr, "
                             f"{years} yr, pre-tax, no ramp-up or terminal value"))
            res = M.irr(cf)
            n_nan = int(np.sum(np.isnan(res.rate)))
            reason = ""
            if n_nan:
                vals, counts = np.unique(res.reason[np.isnan(res.rate)], return_counts=True)
                reason = f"no IRR on {n_nan} of {paths} paths: " + "; ".join(
                    f"{c}× {v}" for v, c in zip(vals, counts, strict=True))
            rows.append(_row("project", f"IRR {label}", M.distribution(res.rate * 100), "%/yr", reason))
    else:
        notes.append("project NPV/IRR not computed: give --capex (USD m) and --unit-cost to add them")
    rows += _param_rows(cal)
    rows += [
        _row("run", "seed", seed, "", "numpy.random.default_rng(seed)"),
        _row("run", "paths", paths, "", f"{STEPS_PER_YEAR} steps per year"),
        _row("run", "years", years, "yr", ""),
        _row("run", "discount rate", discount_rate, "per yr", "nominal; default is a round input, not cited"
             if discount_rate == DEFAULT_RATE else "user input"),
        _row("run", "volume", volume_t, "t/yr", pre.get("volume_basis", "") and f"basis: {pre['volume_basis']}"),
        _row("run", "measure price", price, unit, what),
        _row("run", "starting price p0", cal["p0"], unit, cal["provenance"]["p0"]),
        _row("run", "series", None, "", f"{cal['commodity']}: {cal['series']} ({cal['frequency']}, "
             f"{cal['period']}, n = {cal['n']}, source {cal['source']})"),
    ]
    if kind == "tariff":
        rows.append(_row("run", "non-market volume", nonmarket, "t/yr", "duty base"))
    if pre:
        cp = pre.get("cited_project", {})
        rows.append(_row("run", "preset", None, "", f"{pre.get('name')}: {pre.get('title')}; payout "
                         f"{pre.get('payout')}; cites {cp.get('project_id')} ({cp.get('citation')}; "
                         f"{cp.get('source_url')})"))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    sources = list(cal["sources"]) + (["curated-projects"] if pre else [])
    title = (f"critmin policy {kind} · {cal['commodity']} · {what} · {volume_t:g} t/yr · {years} yr · "
             f"{paths} paths · seed {seed}")
    return frame, {"seed": seed, "params": cal["params"], "fit": cal["fit"], "provenance": cal["provenance"],
                   "sources": sources, "notes": notes, "title": title, "calibration": cal}


def _param_rows(cal: dict[str, Any]) -> list[dict]:
    p, prov, fit = cal["params"], cal["provenance"], cal["fit"]
    lo, hi = fit["kappa_ci95"]
    return [
        _row("parameter", "kappa (mean-reversion speed)", p["kappa"], "1/yr",
             f"half-life {fit['half_life_years']:.2f} yr; 95% CI {lo:.3f}–{hi:.3f}; {prov['kappa']}"),
        _row("parameter", "mu (long-run log level)", p["mu"], f"ln({cal['unit']})", prov["mu"]),
        _row("parameter", "exp(mu) (long-run level without jumps)", math.exp(p["mu"]) if math.isfinite(p["mu"])
             else None, cal["unit"], ""),
        _row("parameter", "sigma (diffusion volatility)", p["sigma"], "1/sqrt(yr)", prov["sigma"]),
        _row("parameter", "jump intensity", p["jump_intensity"], "1/yr", prov["jump_intensity"]),
        _row("parameter", "jump size mean", p["jump_mean"], "log units", prov["jump_mean"]),
        _row("parameter", "jump size sd", p["jump_sd"], "log units", prov["jump_sd"]),
    ]


def worked_example(preset: dict[str, Any]) -> float:
    """The preset's worked example payout, USD: ``max(0, floor - benchmark) × volume`` (one period)."""
    ex = preset["worked_example"]
    floor = float(_value(preset["floor"]))
    usd, per_t = price_unit_factors(str(preset["floor"].get("unit", "USD/kg")) if isinstance(preset["floor"], dict)
                                    else "USD/kg")
    return float(M.floor_payout(float(ex["benchmark_usd_per_kg"]), floor, float(ex["volume_t"]) * usd * per_t))


# ---------------------------------------------------------------------------------------------------------
# Permitting


def permitting(project_id: str, *, track: str = "ordinary", horizon_months: float = 120.0,
               months_saved: tuple[float, ...] = (1.0, 3.0, 6.0, 12.0), relief_t_per_month: float | None = None,
               paths: int = DEFAULT_PATHS, seed: int = DEFAULT_SEED, params: str | Path | None = None,
               catalog=None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Time to first production of a project on a track (and on the ordinary track), and what faster
    permitting is worth inside the horizon.

    Parameters
    ----------
    project_id : str
        A ``project_id`` of the curated ``projects`` table.
    track : str
        ``ordinary`` | ``fast41`` | ``eu_crma``.
    horizon_months : float
        Months from now within which production relieves the shortfall.
    months_saved : tuple of float
        Months cut from the permit stages, one row each.
    relief_t_per_month : float, optional
        Tonnes of shortfall relieved per producing month (from the supply-chain ensemble); without it the value
        is reported in producing months gained.

    Returns
    -------
    (pandas.DataFrame, dict)
    """
    from critmin.reference.catalog import Catalog

    catalog = catalog if catalog is not None else Catalog()
    if paths < 100 or paths > 1_000_000:
        raise ConfigError(f"--paths must be in 100..1,000,000 (got {paths})")
    if not horizon_months > 0:
        raise ConfigError(f"--horizon must be > 0 months (got {horizon_months})")
    prm = PM.load_params(params)
    row = PM.project_row(catalog, project_id)
    tracks = ["ordinary"] if track == "ordinary" else ["ordinary", track]
    rows: list[dict] = []
    notes: list[str] = []
    for tr in tracks:
        tl = PM.sample_timeline(row, tr, paths, np.random.default_rng(seed), prm)
        rows.append(_row("result", f"time to first production ({tr})", M.distribution(tl.total), "months",
                         f"remaining stages: {', '.join(tl.remaining.stages) or 'none (producing)'}"))
        rows.append(_row("result", f"permit stages ({tr})", M.distribution(tl.permit), "months",
                         "; ".join(n for n in tl.notes if "CRMA" in n)))
        rows.append(_row("result", f"P(producing within {horizon_months:g} months) ({tr})",
                         float(np.mean(tl.total <= horizon_months)), "probability", ""))
        notes += [n for n in tl.notes if n not in notes]
    for ms in months_saved:
        v = PM.value_of_faster_permitting(row, ms, relief_t_per_month if relief_t_per_month is not None else 1.0,
                                          horizon_months, track, paths, np.random.default_rng(seed), prm)
        if relief_t_per_month is None:
            rows.append(_row("result", f"producing months gained, {ms:g} months faster permitting ({track})",
                             v["expected_avoided_t"], "months", "pass --relief (t/month) for tonnes of shortfall"))
        else:
            rows.append(_row("result", f"shortfall avoided, {ms:g} months faster permitting ({track})",
                             v["expected_avoided_t"], "t",
                             f"{v['per_month_saved_t']:.4g} t per month saved; relief {relief_t_per_month:g} t/month"))
    exp_year = row.get("expected_start_year")
    if exp_year is not None and not (isinstance(exp_year, float) and math.isnan(exp_year)):
        rows.append(_row("run", "sponsor's expected start year", float(exp_year), "year",
                         "curated projects table, for comparison (not used by the model)"))
    medians = PM.stage_medians(prm)
    for s in prm["stages"]:
        rows.append(_row("parameter", f"median {s}", medians[s], "months",
                         f"share {prm['stage_shares']['values'][s]:g} of the S&P 15.7-yr anchor (permitting.yml)"))
    d = prm["permitting_delay"]
    rows += [
        _row("parameter", "permitting-delay probability", d["probability"]["value"], "probability",
             "ERM 2023: 60% of projects delayed × 39% permitting-caused (demand_parameters)"),
        _row("parameter", "permitting-delay median", d["median_months"]["value"], "months", "critmin default"),
        _row("run", "seed", seed, "", "numpy.random.default_rng(seed), same draws for every track"),
        _row("run", "paths", paths, "", ""),
        _row("run", "horizon", horizon_months, "months", ""),
        _row("run", "project", None, "", f"{project_id}: {row.get('name')} ({row.get('country')}); status "
             f"{row.get('status')}; permitting {row.get('permitting_status')}; {row.get('citation')}"),
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    title = f"critmin policy permitting · {project_id} · track {track} · horizon {horizon_months:g} months · seed {seed}"
    return frame, {"seed": seed, "sources": ["curated-projects", "curated-demand_parameters"], "notes": notes,
                   "title": title}


def measure_result(kind: str, catalog=None, **options):
    """``critmin.policy_measure(kind, …)`` / ``critmin.policy.<kind>(…)``: :func:`evaluate_measure` as a
    :class:`critmin.results.Result` (main table: the cost to government and the project's NPV/IRR)."""
    from critmin.reference.catalog import Catalog
    from critmin.results import Result

    frame, meta = evaluate_measure(kind, catalog=catalog or Catalog(), **options)
    return Result(f"policy-{kind}", {kind: frame}, kind, meta=meta)

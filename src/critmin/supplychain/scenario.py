"""Scenario files (YAML): schema and validation with file, line and key (:mod:`.scenario_cuts` turns a scenario
into the kernel's arrays).

Schema (every key optional unless marked; unknown keys are errors)::

    name: china-ree-2010            # required, text
    description: ...                # text; presets cite the catalogue event_id(s) and source
    horizon_months: 36              # months simulated (1..600), default 36
    start: 2010-07                  # YYYY-MM of month 0, default the earliest event start
    events:                         # required, a list
      - type: export_restriction    # export_restriction | outage | demand_surge   (required)
        country: CHN                # ISO3 (required for export_restriction and outage)
        commodities: [rare-earths]  # id or list of ids modelled by the network   (required)
        stage: [mine, refine]       # mine | refine | metal | component, or a list; default every modelled stage
        fraction: 0.4               # 0..1 share of the flow withheld (outage: of output; demand_surge: extra
                                    #   demand as a share of baseline, 0..10); or
        ban: true                   # same as fraction: 1
        targets: all                # all | [USA, JPN, ...] ISO3 / consumer labels | {outside: msp}
        start: 2010-07              # YYYY-MM, default the scenario start
        duration_months: 24         # ≥ 0, default to the end of the horizon
        ramp_months: 0              # ≥ 0 months to reach the full fraction, default 0 (a step)
    responses:
      stockpile:                    # held at one stage, tonnes of that stage's basis
        stage: refine
        USA: 500                    # t, or {commodity: t}
        JPN: 200
        release_max_per_month: 50   # t/month, or {USA: t, JPN: t}
      spare_capacity_ramp: 0.04     # share of demand per year replaced by producers elsewhere; or {commodity: x}
      substitution_rate: 0.10       # share of demand per year given up through substitution; or {commodity: x}
      recycling_rate: 0.0           # extra secondary supply, share of demand per year; or {commodity: x}
      rerouting_leakage: 0.0        # share of a withheld flow still arriving via third countries (0..1)
      start: 2010-07                # YYYY-MM the response clock starts, default the earliest event start
    parameters:
      elasticity: -0.28             # price elasticity of demand (< 0), number or {commodity: x}
      price_cap: 22.5               # maximum price multiple (≥ 1), number or {commodity: x}

Defaults of the responses are the cited curated values in ``demand_parameters``: Sprecher et al. (2017)
substitution 10 % of demand per year and non-China ramp-up 4 % of market volume per year (rare earths;
applied by analogy to other commodities and said so), the cobalt price elasticity of demand −0.28 and the
neodymium 2010–11 price spike 22.5× as price cap (by analogy elsewhere). Recycling, rerouting leakage and
stockpiles have no published default: they are 0 (no credit taken) unless the scenario sets them.

Every error is a :class:`~critmin.errors.DataError` naming the file, the line (1-based) and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from critmin.constants import STAGES
from critmin.errors import DataError
from critmin.reference.countries import is_valid_code

EVENT_TYPES = ("export_restriction", "outage", "demand_surge")
TOP_KEYS = {"name", "description", "horizon_months", "start", "events", "responses", "parameters"}
EVENT_KEYS = {"type", "country", "commodities", "stage", "fraction", "ban", "targets", "start", "duration_months",
              "ramp_months", "note"}
RESPONSE_KEYS = {"stockpile", "spare_capacity_ramp", "substitution_rate", "recycling_rate", "rerouting_leakage",
                 "start"}
STOCK_KEYS = {"stage", "release_max_per_month"}
PARAM_KEYS = {"elasticity", "price_cap"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass
class Event:
    type: str
    commodities: list[str]
    fraction: float
    stages: list[str] | None = None
    country: str | None = None
    targets: Any = "all"
    start: str | None = None
    duration_months: int | None = None
    ramp_months: int = 0


@dataclass
class Scenario:
    """A validated scenario (see the module docstring for the schema)."""

    name: str
    events: list[Event]
    description: str = ""
    horizon_months: int = 36
    start: str | None = None
    responses: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    source: str = "<scenario>"

    @property
    def commodities(self) -> list[str]:
        out: list[str] = []
        for e in self.events:
            out += [c for c in e.commodities if c not in out]
        return out


# --- YAML with line numbers ------------------------------------------------------------------------------

class _Doc:
    """Plain Python values of a YAML document plus the line of every key path."""

    def __init__(self, text: str, file: str) -> None:
        self.file, self.lines = file, {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise DataError(f"not valid YAML: {exc.problem or exc}", file=file,
                            row=mark.line + 1 if mark else None) from None
        if node is None:
            raise DataError("empty scenario file", file=file, row=1)
        self.value = self._walk(node, ())

    def _walk(self, node, path: tuple) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = str(k.value)
                if key in out:
                    raise DataError(f"duplicate key {key!r}", file=self.file, row=k.start_mark.line + 1, column=key)
                self.lines[(*path, key)] = k.start_mark.line + 1
                out[key] = self._walk(v, (*path, key))
                self.lines[(*path, key)] = k.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(v, (*path, i)) for i, v in enumerate(node.value)]
        return yaml.SafeLoader(" ").construct_object(node, deep=True)

    def error(self, path: tuple, message: str) -> DataError:
        key = next((str(p) for p in reversed(path) if isinstance(p, str)), None)
        row = self.lines.get(path)
        probe = path
        while row is None and probe:
            probe = probe[:-1]
            row = self.lines.get(probe)
        return DataError(message, file=self.file, row=row, column=key)


def _month_index(value: str) -> int:
    m = _MONTH.match(value)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(value)
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def _check_month(doc: _Doc, path: tuple, value) -> str:
    text = str(value)
    try:
        _month_index(text)
    except ValueError:
        raise doc.error(path, f"{text!r} is not a month: write YYYY-MM (e.g. 2025-04)") from None
    return text


def _check_number(doc: _Doc, path: tuple, value, lo: float | None = None, hi: float | None = None,
                  integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise doc.error(path, f"{value!r} is not {'an integer' if integer else 'a number'}")
    if lo is not None and value < lo:
        raise doc.error(path, f"{value!r} must be ≥ {lo:g}")
    if hi is not None and value > hi:
        raise doc.error(path, f"{value!r} must be ≤ {hi:g}")
    return value


def _check_keys(doc: _Doc, path: tuple, obj, allowed: set[str], what: str) -> dict:
    if not isinstance(obj, dict):
        raise doc.error(path, f"{what} must be a mapping of keys to values")
    for k in obj:
        if k not in allowed:
            raise doc.error((*path, k), f"unknown key {k!r} in {what}; allowed: {', '.join(sorted(allowed))}")
    return obj


def _per_commodity(doc: _Doc, path: tuple, value, commodities: set[str], lo, hi) -> float | dict:
    if isinstance(value, dict):
        for c, v in value.items():
            if c not in commodities:
                raise doc.error((*path, c), f"unknown commodity {c!r}; modelled: {', '.join(sorted(commodities))}")
            _check_number(doc, (*path, c), v, lo, hi)
        return dict(value)
    return float(_check_number(doc, path, value, lo, hi))


def parse_scenario(text: str, *, file: str = "<scenario>", commodities: set[str] | None = None,
                   groups: dict | None = None) -> Scenario:
    """Parse and validate scenario YAML text.

    Parameters
    ----------
    text : the YAML document.
    file : name used in error messages.
    commodities : commodity ids the network models (default: :data:`critmin.supplychain.network.CHAINS`).
    groups : named country groups for ``targets: {outside: NAME}`` (default: critmin's groups).

    Raises
    ------
    DataError
        Naming the file, line and key of the first problem.
    """
    from critmin.importers import groups as all_groups
    from critmin.supplychain.network import CHAINS

    commodities = set(commodities or CHAINS)
    groups = groups if groups is not None else all_groups()
    doc = _Doc(text, file)
    top = _check_keys(doc, (), doc.value, TOP_KEYS, "the scenario")
    for req in ("name", "events"):
        if req not in top:
            raise doc.error((), f"missing required key {req!r}")
    horizon = int(_check_number(doc, ("horizon_months",), top.get("horizon_months", 36), 1, 600, integer=True))
    start = _check_month(doc, ("start",), top["start"]) if "start" in top else None
    if not isinstance(top["events"], list) or not top["events"]:
        raise doc.error(("events",), "events must be a non-empty list")
    events = []
    for i, raw in enumerate(top["events"]):
        p = ("events", i)
        ev = _check_keys(doc, p, raw, EVENT_KEYS, f"event {i + 1}")
        etype = ev.get("type")
        if etype not in EVENT_TYPES:
            raise doc.error((*p, "type") if "type" in ev else p,
                            f"event type must be one of {', '.join(EVENT_TYPES)}, got {etype!r}")
        country = ev.get("country")
        if etype != "demand_surge":
            if country is None:
                raise doc.error(p, f"a {etype} event needs 'country' (ISO3)")
            country = str(country).upper()
            if not is_valid_code(country) or country in ("WLD", "XNA"):
                raise doc.error((*p, "country"), f"unknown country {ev['country']!r}: use an ISO3 code (CHN, COD)")
        elif country is not None:
            raise doc.error((*p, "country"), "a demand_surge has no 'country'; use 'targets' for the consumers")
        comms = ev.get("commodities")
        if comms is None:
            raise doc.error(p, "missing 'commodities'")
        comms = [comms] if isinstance(comms, str) else comms
        if not isinstance(comms, list) or not comms:
            raise doc.error((*p, "commodities"), "commodities must be an id or a list of ids")
        for c in comms:
            if c not in commodities:
                raise doc.error((*p, "commodities"),
                                f"unknown commodity {c!r}; modelled: {', '.join(sorted(commodities))}")
        stages = ev.get("stage")
        if stages is not None:
            stages = [stages] if isinstance(stages, str) else stages
            if not isinstance(stages, list) or any(s not in STAGES for s in stages):
                raise doc.error((*p, "stage"), f"stage must be one or a list of {', '.join(STAGES)}, got {ev['stage']!r}")
        if ev.get("ban") is not None and not isinstance(ev["ban"], bool):
            raise doc.error((*p, "ban"), "ban must be true or false")
        if ev.get("ban") and "fraction" in ev:
            raise doc.error((*p, "fraction"), "give either 'ban: true' or 'fraction', not both")
        if ev.get("ban"):
            fraction = 1.0
        elif "fraction" in ev:
            fraction = float(_check_number(doc, (*p, "fraction"), ev["fraction"], 0.0,
                                           10.0 if etype == "demand_surge" else 1.0))
        else:
            raise doc.error(p, "missing 'fraction' (or 'ban: true')")
        targets = ev.get("targets", "all")
        if isinstance(targets, str):
            if targets != "all":
                targets = [targets]
        if isinstance(targets, list):
            for t in targets:
                if not is_valid_code(str(t).upper()) or str(t).upper() in ("WLD", "XNA"):
                    raise doc.error((*p, "targets"), f"unknown country {t!r} in targets")
            targets = [str(t).upper() for t in targets]
        elif isinstance(targets, dict):
            _check_keys(doc, (*p, "targets"), targets, {"outside"}, "targets")
            g = str(targets.get("outside", "")).lower()
            if g not in groups:
                raise doc.error((*p, "targets", "outside"), f"unknown group {targets.get('outside')!r}; known: "
                                f"{', '.join(sorted(groups))}")
            targets = {"outside": g}
        elif targets != "all":
            raise doc.error((*p, "targets"), "targets must be 'all', a list of ISO3 codes or {outside: group}")
        ev_start = _check_month(doc, (*p, "start"), ev["start"]) if "start" in ev else None
        dur = ev.get("duration_months")
        if dur is not None:
            dur = int(_check_number(doc, (*p, "duration_months"), dur, 0, None, integer=True))
        ramp = int(_check_number(doc, (*p, "ramp_months"), ev.get("ramp_months", 0), 0, None, integer=True))
        events.append(Event(type=etype, commodities=list(comms), fraction=fraction, stages=stages, country=country,
                            targets=targets, start=ev_start, duration_months=dur, ramp_months=ramp))
    resp = _check_keys(doc, ("responses",), top.get("responses") or {}, RESPONSE_KEYS, "responses")
    responses: dict[str, Any] = {}
    for key, hi in (("spare_capacity_ramp", 10.0), ("substitution_rate", 10.0), ("recycling_rate", 10.0),
                    ("rerouting_leakage", 1.0)):
        if key in resp:
            responses[key] = _per_commodity(doc, ("responses", key), resp[key], commodities, 0.0, hi)
    if "start" in resp:
        responses["start"] = _check_month(doc, ("responses", "start"), resp["start"])
    if "stockpile" in resp:
        sp = resp["stockpile"]
        p = ("responses", "stockpile")
        if not isinstance(sp, dict):
            raise doc.error(p, "stockpile must be a mapping")
        stock: dict[str, Any] = {"stage": "refine", "holdings": {}, "release_max": None}
        for k, v in sp.items():
            if k == "stage":
                if v not in STAGES:
                    raise doc.error((*p, k), f"stage must be one of {', '.join(STAGES)}")
                stock["stage"] = v
            elif k == "release_max_per_month":
                if isinstance(v, dict):
                    for who, x in v.items():
                        if not is_valid_code(str(who)):
                            raise doc.error((*p, k, who), f"unknown country {who!r}")
                        _check_number(doc, (*p, k, who), x, 0.0)
                    stock["release_max"] = dict(v)
                else:
                    stock["release_max"] = float(_check_number(doc, (*p, k), v, 0.0))
            elif is_valid_code(str(k)) and str(k) not in ("WLD", "XNA"):
                stock["holdings"][str(k)] = _per_commodity(doc, (*p, k), v, commodities, 0.0, None)
            else:
                raise doc.error((*p, k), f"unknown key {k!r} in stockpile: use stage, release_max_per_month or an "
                                "ISO3 holder (USA, JPN)")
        responses["stockpile"] = stock
    params = _check_keys(doc, ("parameters",), top.get("parameters") or {}, PARAM_KEYS, "parameters")
    parameters = {}
    if "elasticity" in params:
        parameters["elasticity"] = _per_commodity(doc, ("parameters", "elasticity"), params["elasticity"],
                                                  commodities, -100.0, -1e-6)
    if "price_cap" in params:
        parameters["price_cap"] = _per_commodity(doc, ("parameters", "price_cap"), params["price_cap"],
                                                 commodities, 1.0, None)
    name = top["name"]
    if not isinstance(name, str) or not name.strip():
        raise doc.error(("name",), "name must be a non-empty text")
    return Scenario(name=name, events=events, description=str(top.get("description", "")).strip(),
                    horizon_months=horizon, start=start, responses=responses, parameters=parameters, source=file)


def load_scenario(path: str | Path, **kwargs) -> Scenario:
    """Read and validate a scenario file (see :func:`parse_scenario`)."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read scenario: {exc}", file=path.name) from None
    return parse_scenario(text, file=path.name, **kwargs)




__all__ = ["Event", "Scenario", "load_scenario", "parse_scenario"]

"""``run_monitor``: read NEW data, compare it with the baseline (bundled dataset), return alerts.

Every file present is validated before any rule runs, so a bad file stops the run with a
DataError (file, line, column) and nothing is computed or written.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from critmin.contracts import parse_yaml, read_yaml, validate
from critmin.errors import ConfigError, DataError
from critmin.monitor import rules
from critmin.monitor.validate import read_export_controls, read_prices, read_us_trade
from critmin.reference.catalog import Catalog

#: Files ``--data DIR`` may hold, in the order they are read.
MONITOR_FILES = ("us_trade.csv", "prices.csv", "export_controls.csv")


class Threshold(BaseModel):
    """One threshold: ``{value: ..., reason: ...}``, or the bare value (the reason then says it is the user's)."""

    model_config = ConfigDict(extra="allow")

    value: Any
    reason: Any = None

    @model_validator(mode="before")
    @classmethod
    def _has_value(cls, data: Any) -> Any:
        data = data if isinstance(data, dict) else {"value": data}
        if data.get("value") is None:
            raise PydanticCustomError("no_value", "has no value")
        return data


@with_config(extra="forbid")
class ImportShareJump(TypedDict, total=False):
    share_jump_pp: Threshold
    high_pp: Threshold
    min_total_value_usd: Threshold


@with_config(extra="forbid")
class PriceSpike(TypedDict, total=False):
    k_sigma: Threshold
    high_k_sigma: Threshold
    monthly_window: Threshold
    min_returns: Threshold


@with_config(extra="forbid")
class NewControl(TypedDict, total=False):
    importers: Threshold
    high_measures: Threshold
    high_targets: Threshold


@with_config(extra="forbid")
class ThresholdsFile(TypedDict, total=False):
    """``thresholds.yml``, or a user's override of some of its entries (same layout)."""

    import_share_jump: ImportShareJump
    price_spike: PriceSpike
    new_control: NewControl


#: rule → its threshold names.
_RULE_KEYS = {rule: tuple(get_type_hints(td)) for rule, td in get_type_hints(ThresholdsFile).items()}
_NOUNS = {1: "rule", 2: "threshold"}


def default_thresholds() -> dict:
    """The shipped ``thresholds.yml`` as ``{rule: {name: {"value": ..., "reason": ...}}}``."""
    where = "thresholds file thresholds.yml (shipped)"
    doc = parse_yaml(resources.files("critmin.monitor").joinpath("thresholds.yml").read_text("utf-8"), where=where,
                     error=ConfigError)
    validate(ThresholdsFile, doc.data, where=where, error=ConfigError, node=doc.node, nouns=_NOUNS)
    return doc.data


def load_thresholds(path: str | Path | dict | None = None) -> dict:
    """Default thresholds, overridden entry by entry from a YAML file (same layout) or a dict.

    Raises
    ------
    ConfigError
        For an unknown rule or threshold name, a missing value, or an unreadable file (file, line, key).
    """
    spec = default_thresholds()
    if path is None:
        return spec
    node = None
    if isinstance(path, dict):
        override, where = path, "thresholds"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--thresholds file {str(p)!r} not found")
        where = f"--thresholds file {p.name}"
        doc = read_yaml(p, where=where, error=ConfigError)
        override, node = doc.data or {}, doc.node
    validate(ThresholdsFile, override, where=where, error=ConfigError, node=node, nouns=_NOUNS)
    for rule, entries in override.items():
        for name, entry in entries.items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            reason = entry.get("reason") if isinstance(entry, dict) else None
            spec[rule][name] = {"value": value, "reason": reason or "set by the user's --thresholds file"}
    return spec


def _source_ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["source"].astype(str)) if "source" in frame else set()


def _values(spec: dict, rule: str) -> dict:
    return {k: v["value"] for k, v in spec[rule].items()}


@cache
def ree_parents() -> dict[str, str]:
    """Individual rare-earth ids (group ``ree`` in commodities.csv) → ``rare-earths``."""
    text = resources.files("critmin.reference").joinpath("mappings/commodities.csv").read_text("utf-8")
    return {row["id"]: "rare-earths" for row in csv.DictReader(text.splitlines()) if row["group"] == "ree"}


def priority_set(catalog: Catalog, importers: str = "USA,JPN,USA+JPN") -> set[str]:
    """Commodities flagged priority for any of ``importers`` by :func:`critmin.workflows.priorities`."""
    from critmin import workflows

    table, _ = workflows.priorities(importer=importers, catalog=catalog)
    return set(table.loc[table["priority"].astype(bool), "commodity"].astype(str))


def run_monitor(data_dir: str | Path, catalog: Catalog | None = None,
                priority_commodities: set[str] | None = None,
                thresholds: str | Path | dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Compare the NEW data in ``data_dir`` with the baseline and return alerts.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding any of ``us_trade.csv``, ``prices.csv``, ``export_controls.csv``.
    catalog : Catalog, optional
        The baseline (default: the bundled dataset). Tables used: ``us_trade``, ``prices``,
        ``export_controls``.
    priority_commodities : set of str, optional
        Precomputed priority minerals; by default computed with :func:`critmin.workflows.priorities`
        for the importers in the thresholds (only when ``export_controls.csv`` is given).
    thresholds : path or dict, optional
        Overrides of ``thresholds.yml`` (same layout).

    Returns
    -------
    (pandas.DataFrame, dict)
        Alerts (:data:`critmin.monitor.rules.ALERT_COLUMNS`, high severity first) and metadata:
        ``files``, ``thresholds`` (value and reason each), ``priority_commodities``, ``counts`` per
        rule, ``notes`` (what could not be judged and why) and ``sources``.

    Raises
    ------
    DataError
        If the folder is missing or holds none of the files, or a file is invalid (file, line, column).
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"--data directory {str(d)!r} does not exist or is not a directory")
    present = [f for f in MONITOR_FILES if (d / f).is_file()]
    if not present:
        raise DataError(f"--data directory {d.name!r} holds none of {', '.join(MONITOR_FILES)}")
    spec = load_thresholds(thresholds)
    notes: list[str] = []
    # Validate every file first: a bad file must stop the run before any rule or output.
    new: dict[str, pd.DataFrame] = {}
    if "us_trade.csv" in present:
        new["us_trade"] = read_us_trade(d / "us_trade.csv", notes)
    if "prices.csv" in present:
        new["prices"] = read_prices(d / "prices.csv")
    if "export_controls.csv" in present:
        new["export_controls"] = read_export_controls(d / "export_controls.csv")

    cat = catalog or Catalog()
    parts = []
    sources: set[str] = {f"user:{f}" for f in present}
    if "us_trade" in new:
        base = cat.table("us_trade")
        sources |= _source_ids(base)
        parts.append(rules.share_jumps(base, new["us_trade"], **_values(spec, "import_share_jump"), notes=notes))
        n_export = int((new["us_trade"]["flow"] == "export").sum())
        if n_export:
            notes.append(f"us_trade.csv: {n_export} export row(s) read but not judged (the share rule covers "
                         "U.S. imports)")
        outside = set(new["us_trade"]["partner"]) - set(base["partner"].astype(str))
        if outside:
            notes.append(f"us_trade.csv: partner(s) {', '.join(sorted(outside))} are not in the baseline query and "
                         "are left out of the shares (same denominator in both periods)")
    if "prices" in new:
        base = cat.table("prices")
        used = base[base["commodity"].isin(set(new["prices"]["commodity"]))]
        sources |= _source_ids(used)
        parts.append(rules.price_spikes(base, new["prices"], **_values(spec, "price_spike"), notes=notes))
    priority: set[str] = set()
    if "export_controls" in new:
        ctl = _values(spec, "new_control")
        base = cat.table("export_controls")
        sources |= _source_ids(base)
        priority = set(priority_commodities) if priority_commodities is not None else priority_set(
            cat, str(ctl["importers"]))
        parts.append(rules.new_controls(base, new["export_controls"], priority, high_measures=ctl["high_measures"],
                                        high_targets=ctl["high_targets"], parents=ree_parents(),
                                        importers=str(ctl["importers"]), notes=notes))
    alerts = rules.sort_alerts(pd.concat(parts, ignore_index=True) if parts else rules.empty_alerts())
    meta = {
        "data_dir": str(d), "files": present, "baseline": "bundled dataset" if catalog is None else "given catalog",
        "thresholds": spec, "priority_commodities": sorted(priority),
        "counts": alerts.groupby("rule").size().to_dict() if len(alerts) else {},
        "notes": notes, "sources": sorted(sources),
    }
    return alerts, meta


def monitor_result(data, catalog: Catalog | None = None, thresholds=None):
    """``critmin.monitor(data)``: the alerts of :func:`run_monitor` as a :class:`critmin.results.Result`."""
    from critmin.results import Result

    alerts, meta = run_monitor(data, catalog=catalog, thresholds=thresholds)
    return Result("monitor", {"alerts": alerts}, "alerts", meta=meta)

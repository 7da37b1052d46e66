"""Method parameters (declarative, in params.yml) and their loading.

The structure of ``params.yml`` is declared below as TypedDicts (every key optional, unknown keys refused): the
shipped file is checked against it once, and a user's ``--params`` file, which overrides some of its entries, is
checked against the same contract before it is merged. A mapping in ``params.yml`` is merged key by key; any other
value (a number, a list, ``per_commodity``) is replaced whole by the user's value, whatever its type.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import with_config
from typing_extensions import TypedDict

from critmin.contracts import parse_yaml, read_yaml, validate
from critmin.errors import ConfigError


@with_config(extra="forbid")
class DefaultParam(TypedDict, total=False):
    """A scalar input with its default and the reason for it."""

    default: Any
    reason: Any


@with_config(extra="forbid")
class PerCommodityParam(TypedDict, total=False):
    """A default, its reason and per-commodity values (``per_commodity`` is replaced whole)."""

    default: Any
    reason: Any
    per_commodity: Any


@with_config(extra="forbid")
class ExportRestrictionT(TypedDict, total=False):
    """The EU SR trade factor t per export-restriction measure."""

    reason: Any
    none: Any
    ban: Any
    suspension: Any
    quota: Any
    licensing: Any
    tax: Any
    disruption: Any


@with_config(extra="forbid")
class EuSrParams(TypedDict, total=False):
    eol_rir: PerCommodityParam
    substitution_index: PerCommodityParam
    export_restriction_t: ExportRestrictionT
    missing_wgi_scaled: DefaultParam
    threshold: DefaultParam


@with_config(extra="forbid")
class UsgsParams(TypedDict, total=False):
    economic_vulnerability: PerCommodityParam


@with_config(extra="forbid")
class PrioritiesParams(TypedDict, total=False):
    eu_sr_threshold: Any
    single_supplier_share_threshold: Any
    control_share_threshold: Any
    impact_weight: DefaultParam
    reason: Any


@with_config(extra="forbid")
class ParamsFile(TypedDict, total=False):
    """``methods/params.yml``, or a user's override of some of its entries."""

    eu_sr: EuSrParams
    usgs: UsgsParams
    priorities: PrioritiesParams


@cache
def _default_params() -> dict:
    where = "params file params.yml (shipped)"
    doc = parse_yaml(resources.files("critmin.methods").joinpath("params.yml").read_text("utf-8"), where=where,
                     error=ConfigError)
    validate(ParamsFile, doc.data, where=where, error=ConfigError, node=doc.node)
    return doc.data


def load_params(path: str | Path | None = None) -> dict:
    """The shipped parameters, deep-merged with a user's YAML file (same keys).

    Raises
    ------
    ConfigError
        An unreadable file, an unknown key or a value where ``params.yml`` has a mapping (file, line, key).
    """
    params = copy.deepcopy(_default_params())
    if path:
        p = Path(path)
        where = f"params file {p.name}"
        doc = read_yaml(p, where=where, error=ConfigError)
        user = doc.data or {}
        validate(ParamsFile, user, where=where, error=ConfigError, node=doc.node)
        _merge(params, user)
    return params


def _merge(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(base[k], dict) and k != "per_commodity":
            _merge(base[k], v)
        else:
            base[k] = v

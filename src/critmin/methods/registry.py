"""Method parameters (declarative, in params.yml) and their loading."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from critmin.errors import ConfigError


@cache
def _default_params() -> dict:
    return yaml.safe_load(resources.files("critmin.methods").joinpath("params.yml").read_text("utf-8"))


def load_params(path: str | Path | None = None) -> dict:
    """The shipped parameters, deep-merged with a user's YAML file (same keys)."""
    import copy

    params = copy.deepcopy(_default_params())
    if path:
        p = Path(path)
        try:
            user = yaml.safe_load(p.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read params file {p.name}: {exc}") from None
        _merge(params, user, p.name, [])
    return params


def _merge(base: dict, new: dict, fname: str, path: list[str]) -> None:
    if not isinstance(new, dict):
        raise ConfigError(f"params file {fname}: expected a mapping at {'.'.join(path) or 'top level'}")
    for k, v in new.items():
        if k not in base:
            raise ConfigError(f"params file {fname}: unknown key {'.'.join([*path, str(k)])!r}")
        if isinstance(base[k], dict) and k != "per_commodity":
            _merge(base[k], v, fname, [*path, str(k)])
        else:
            base[k] = v

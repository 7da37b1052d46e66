"""Preset scenarios shipped with critmin, built from the cited export-controls catalogue."""

from __future__ import annotations

from importlib import resources

from critmin.errors import ConfigError
from critmin.supplychain.scenario import Scenario, parse_scenario


def _folder():
    return resources.files("critmin.supplychain").joinpath("presets")


def list_presets() -> list[str]:
    """Names of the shipped presets (file names without ``.yml``), sorted."""
    return sorted(p.name[:-4] for p in _folder().iterdir() if p.name.endswith(".yml"))


def preset_text(name: str) -> str:
    """The YAML text of a preset."""
    if name not in list_presets():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    return _folder().joinpath(f"{name}.yml").read_text("utf-8")


def load_preset(name: str) -> Scenario:
    """A validated preset scenario."""
    return parse_scenario(preset_text(name), file=f"{name}.yml")


__all__ = ["list_presets", "load_preset", "preset_text"]

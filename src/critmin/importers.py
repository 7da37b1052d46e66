"""Importers and groups: ``USA``, ``JPN``, a bloc ``USA+JPN`` or a named group (``g7``, ``msp`` ...).

An importer is a label and a set of member countries. Every method accepts any
mix of them; a bloc behaves as the union of its members.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from critmin.errors import ConfigError
from critmin.reference.countries import is_valid_code


@dataclass(frozen=True)
class Importer:
    label: str
    members: tuple[str, ...]

    @property
    def is_bloc(self) -> bool:
        return len(self.members) > 1


@cache
def _bundled_groups() -> dict[str, dict]:
    return yaml.safe_load(resources.files("critmin").joinpath("groups.yml").read_text("utf-8"))


def groups(extra: str | Path | None = None) -> dict[str, dict]:
    """Named groups: the shipped ones plus those in a user YAML file."""
    out = dict(_bundled_groups())
    if extra:
        path = Path(extra)
        try:
            user = yaml.safe_load(path.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read groups file {path.name}: {exc}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"groups file {path.name}: expected a mapping of group name -> {{members: [...]}}")
        for name, spec in user.items():
            members = (spec or {}).get("members") if isinstance(spec, dict) else None
            if not members or not isinstance(members, list):
                raise ConfigError(f"groups file {path.name}: group {name!r} needs a 'members' list")
            for m in members:
                if not is_valid_code(str(m)):
                    raise ConfigError(f"groups file {path.name}: group {name!r}: unknown country code {m!r}")
            out[str(name).lower()] = spec
    return out


def parse_importer(spec: str, extra_groups: str | Path | None = None) -> Importer:
    """Parse one importer: ISO3, ``A+B+...`` bloc, or a group name (case-insensitive)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty importer")
    named = groups(extra_groups)
    if spec.lower() in named:
        return Importer(spec.upper() if len(spec) <= 4 else spec.lower(),
                        tuple(sorted(named[spec.lower()]["members"])))
    parts = [p.strip().upper() for p in spec.split("+")]
    for p in parts:
        if not is_valid_code(p):
            raise ConfigError(f"unknown importer {p!r} in {spec!r}: use ISO3 codes (USA, JPN), blocs "
                              f"(USA+JPN) or a group ({', '.join(sorted(named))})")
    return Importer("+".join(parts), tuple(sorted(set(parts))))


def parse_importers(spec: str | list[str], extra_groups: str | Path | None = None) -> list[Importer]:
    """Comma-separated list (or list) of importers, de-duplicated, order kept."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Importer] = []
    for item in items:
        imp = parse_importer(item, extra_groups)
        if imp.label not in {i.label for i in out}:
            out.append(imp)
    return out

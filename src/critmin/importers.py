"""Importers and groups: ``USA``, ``JPN``, a bloc ``USA+JPN`` or a named group (``g7``, ``msp`` ...).

An importer is a label and a set of member countries. Every method accepts any
mix of them; a bloc behaves as the union of its members.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from critmin.contracts import parse_yaml, read_yaml, validate
from critmin.errors import ConfigError
from critmin.reference.countries import is_valid_code


@dataclass(frozen=True)
class Importer:
    label: str
    members: tuple[str, ...]

    @property
    def is_bloc(self) -> bool:
        return len(self.members) > 1


def _country_code(value: Any) -> Any:
    if not is_valid_code(str(value)):
        raise PydanticCustomError("country_code", f"unknown country code {value!r}")
    return value


class GroupSpec(BaseModel):
    """One named group in ``groups.yml`` (or a ``--groups`` file): its member countries.

    ``members`` is a non-empty list of ISO3 codes; ``name``, ``source`` and any other key are kept as given.
    """

    model_config = ConfigDict(extra="allow")

    members: list[Annotated[Any, AfterValidator(_country_code)]]
    name: Any = None
    source: Any = None

    @model_validator(mode="before")
    @classmethod
    def _needs_members(cls, data: Any) -> Any:
        members = data.get("members") if isinstance(data, dict) else None
        if not members or not isinstance(members, list):
            raise PydanticCustomError("members", "needs a non-empty 'members' list (ISO3 codes)")
        return data


def _group_mapping(data: Any) -> Any:
    if not isinstance(data, dict):
        raise PydanticCustomError("groups", "expected a mapping of group name -> {members: [...]}")
    return data


#: A groups file: group name -> :class:`GroupSpec`.
GroupsFile = Annotated[dict[Any, GroupSpec], BeforeValidator(_group_mapping)]


@cache
def _bundled_groups() -> dict[str, dict]:
    doc = parse_yaml(resources.files("critmin").joinpath("groups.yml").read_text("utf-8"),
                     where="groups file groups.yml (shipped)", error=ConfigError)
    validate(GroupsFile, doc.data, where="groups file groups.yml (shipped)", error=ConfigError, node=doc.node)
    return doc.data


def groups(extra: str | Path | None = None) -> dict[str, dict]:
    """Named groups: the shipped ones plus those in a user YAML file (see :class:`GroupSpec`).

    Raises
    ------
    ConfigError
        An unreadable file or one that breaks the format, naming the file, line and group.
    """
    out = dict(_bundled_groups())
    if extra:
        path = Path(extra)
        where = f"groups file {path.name}"
        doc = read_yaml(path, where=where, error=ConfigError)
        user = doc.data or {}
        validate(GroupsFile, user, where=where, error=ConfigError, node=doc.node)
        for name, spec in user.items():
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

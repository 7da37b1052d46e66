"""File contracts: read YAML with line marks, validate with pydantic, report one clear line.

Every configuration or data file critmin reads has its structure declared as a pydantic model next to
its loader. This module is the shared part: it reads YAML keeping the line of every node, validates,
and turns a :class:`pydantic.ValidationError` into the project's :class:`~critmin.errors.ConfigError` or
:class:`~critmin.errors.DataError` naming the file, the line (when the YAML gives one) and the key path::

    params file p.yml, line 4: unknown key 'eu_sr.eol_rr'; known: eol_rir, substitution_index, ...
    groups file g.yml, line 3: key 'allies.members[1]': unknown country code 'XXX'
    file corrections/usgs_mcs.yml, line 7, column 'action': input should be 'override', 'drop' or ...

Models state messages of their own by raising :class:`pydantic_core.PydanticCustomError` (the message is
used as written, after the key path). The loaders return the data as parsed: validation decides what is
accepted, it does not convert values.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core.core_schema import ErrorType
from typing_extensions import is_typeddict

from critmin.errors import CritminError, DataError

__all__ = ["YamlDoc", "adapter", "contract_error", "key_path", "parse_yaml", "read_yaml", "validate"]

_MAPPING_TYPES = {"dict_type", "model_type", "model_attributes_type", "dataclass_type"}


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML document: the data (as ``yaml.safe_load`` gives it) and its node tree (line marks)."""

    data: Any
    node: yaml.Node | None


def contract_error(detail: str, *, where: str, error: type[CritminError], file: str | None = None,
                   line: int | None = None, column: str | None = None) -> CritminError:
    """The error to raise: ``DataError(detail, file, row, column)`` or ``error("<where>, line N: <detail>")``."""
    if issubclass(error, DataError):
        return error(detail, file=file or where, row=line, column=column)
    return error(f"{where}{f', line {line}' if line else ''}: {detail}")


def parse_yaml(text: str, *, where: str, error: type[CritminError], file: str | None = None) -> YamlDoc:
    """Parse one YAML document with the safe loader, keeping the node tree for line numbers.

    The data are exactly what ``yaml.safe_load(text)`` returns (same loader, same constructor).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise contract_error(f"not valid YAML: {problem}", where=where, error=error, file=file,
                             line=mark.line + 1 if mark is not None else None) from None
    finally:
        loader.dispose()
    return YamlDoc(data, node)


def read_yaml(path: str | Path, *, where: str, error: type[CritminError], file: str | None = None) -> YamlDoc:
    """:func:`parse_yaml` of a file; an unreadable file is ``error`` too."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise contract_error(f"cannot read the file ({reason})", where=where, error=error, file=file) from None
    return parse_yaml(text, where=where, error=error, file=file)


@cache
def adapter(schema: Any) -> TypeAdapter:
    """A (cached) :class:`pydantic.TypeAdapter` of a model, TypedDict or type expression."""
    return TypeAdapter(schema)


def validate(schema: Any, data: Any, *, where: str, error: type[CritminError], file: str | None = None,
             node: yaml.Node | None = None, nouns: Mapping[int, str] | None = None, hint: str = "") -> Any:
    """Validate ``data`` against ``schema``; return the validated value or raise one ``error``.

    Parameters
    ----------
    schema
        A pydantic model, a TypedDict or a type expression (``dict[str, Model]``).
    data
        The parsed document.
    where : str
        How the message names the file (``"params file p.yml"``); for a ``DataError``, ``file`` is its file.
    error : type
        :class:`~critmin.errors.ConfigError`, :class:`~critmin.errors.DataError` ...
    node : yaml.Node, optional
        The document's node tree (:class:`YamlDoc`), for the line of the offending key.
    nouns : mapping, optional
        What a key is called at each depth, for unknown keys (``{1: "rule", 2: "threshold"}``); default "key".
    hint : str, optional
        Appended to the message (``" (see policy/permitting.yml)"``).
    """
    try:
        return adapter(schema).validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(p for p in first["loc"] if p != "[key]")
        # A DataError names the key as its column (the last key of the path; the line says which item), as the
        # project's other YAML data files do; a ConfigError names the whole key path in its message.
        as_data = issubclass(error, DataError)
        detail = describe(first, schema, nouns or {}, with_path=not as_data) + hint
        column = next((str(p) for p in reversed(loc) if isinstance(p, str)), None) if as_data else None
        raise contract_error(detail, where=where, error=error, file=file, line=_line(node, loc),
                             column=column) from None


def key_path(loc: Sequence[Any]) -> str:
    """``("eu_sr", "eol_rir")`` → ``eu_sr.eol_rir``; list positions as ``[i]`` (0-based, as in the data)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(err: Mapping[str, Any], schema: Any, nouns: Mapping[int, str], *, with_path: bool = True) -> str:
    """One pydantic error → one sentence; ``with_path``: prefix the key path (``key 'a.b': ...``)."""
    loc = tuple(p for p in err["loc"] if p != "[key]")
    path, kind = key_path(loc), err["type"]
    if kind == "missing":
        return f"missing key {path!r}"
    if kind == "extra_forbidden":
        known = _known_keys(schema, loc[:-1])
        noun = nouns.get(len(loc), "key")
        return f"unknown {noun} {path!r}" + (f"; known: {', '.join(known)}" if known else "")
    if kind in _MAPPING_TYPES:
        return f"expected a mapping at {path or 'top level'}"
    if kind == "list_type":
        return f"expected a list at {path or 'top level'}"
    msg = str(err["msg"])
    if kind in _BUILTIN_ERRORS:  # pydantic's own wording: "Input should be ..." → "input should be ... (got x)"
        msg = f"{msg[:1].lower()}{msg[1:]} (got {_short(err.get('input'))})"
    return f"key {path!r}: {msg}" if path and with_path else msg


#: Error types of pydantic itself; any other type was raised by a model with a message of its own.
_BUILTIN_ERRORS = frozenset(get_args(ErrorType))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _line(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the deepest node of ``loc`` found in the YAML tree (None without a tree)."""
    if node is None:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                         None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _fields(tp: Any) -> dict[str, Any] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: f.annotation for name, f in tp.model_fields.items()}
    if is_typeddict(tp):
        return get_type_hints(tp, include_extras=True)
    return None


def _known_keys(schema: Any, loc: Sequence[Any]) -> list[str]:
    """The keys the schema allows at ``loc`` (for 'unknown key' messages)."""
    tp = schema
    for part in loc:
        tp = _unwrap(tp)
        fields = _fields(tp)
        if fields is not None:
            if part not in fields:
                return []
            tp = fields[part]
        elif get_origin(tp) in (dict, Mapping):
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple, Sequence):
            tp = get_args(tp)[0]
        else:
            return []
    fields = _fields(_unwrap(tp))
    return list(fields) if fields else []

"""What the HTTP layer and the engine exchange: the commands the routes hand the engine and the results they get
back; JSON text byte for byte identical to the standard library encoder's (the audit chain hashes it), the request
and token hashes, and the error form. It imports none of the engine, the database schema or SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from critmin.errors import CritminError
from critmin.market.audit import to_jsonable

if TYPE_CHECKING:
    from critmin.server.engine import Actor


@dataclass
class Command:
    """A state change requested by ``actor``; ``data`` is the validated request body (a plain dict)."""

    kind: str
    actor: Actor
    data: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str = ""
    if_match: int | None = None


@dataclass
class Result:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    #: ``body`` rendered as JSON (UTF-8) by the writer, when it did: the idempotency record stores the same text, so
    #: an answer is encoded once. None when not rendered (callers then encode ``body`` themselves).
    raw: bytes | None = None


class ApiError(CritminError):
    """A refusal with an HTTP status; ``field`` names the offending request field when there is one."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def hash_token(secret: str) -> str:
    """SHA-256 hex of a token. Tokens are 256-bit random, so a fast hash is safe; only the hash is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _plain(obj: Any) -> Any:
    """``default`` of the canonical encoder: the conversions of :func:`critmin.market.audit.to_jsonable` for the
    values the C encoder does not know (Decimal, date, set, dataclass...). Strings, ints, bools, None, lists and
    dicts (str keys) are encoded as ``to_jsonable`` leaves them; the engine puts no floats in audit payloads."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dt.date):
        return obj.isoformat()
    return to_jsonable(obj)


# JSON encoding on the hot path: orjson when its output is provably the stdlib's, byte for byte, else the stdlib.
# Byte identity is not a nicety: canonical text is hashed into the audit chain, which ``critmin audit verify``
# recomputes with the stdlib (critmin.market.audit.record_hash). orjson differs from the stdlib on floats
# (1e-07 vs 1e-7; NaN/inf become null instead of raising), enums, UUIDs, orjson.Fragment and the subclasses
# of str/int/dict/list, and refuses lone surrogates, ints beyond 64 bits and non-str keys. So orjson only sees
# trees of the exact types below (a type scan, :func:`_orjson_safe`), with every non-JSON leaf passed to the
# very ``default`` the stdlib encoder uses (the PASSTHROUGH options route date/datetime there too); anything
# else, and anything orjson refuses, goes to the stdlib encoder, which also raises the stdlib's errors.
# Keys: orjson refuses every non-str key (str subclasses too), and OPT_SORT_KEYS orders by UTF-8 bytes, which
# is code-point order, as the stdlib's sort. tests/test_server_json.py checks all of this with hypothesis.

#: Leaf types orjson encodes as the stdlib does (Decimal and dates through the shared ``default`` hook).
_ORJSON_LEAVES = frozenset({str, int, bool, type(None), Decimal, dt.date, dt.datetime})
_ORJSON_OPTS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON_MAX_DEPTH = 200  # orjson refuses 254 levels; deeper (or cyclic) data goes to the stdlib


def _orjson_safe(obj: Any, depth: int = 0, _leaves: frozenset = _ORJSON_LEAVES, _type: type = type) -> bool:
    """True when ``obj`` is built only from exact dict/list/tuple and :data:`_ORJSON_LEAVES` (dict keys are left
    to orjson, which refuses non-str ones). Exact types only: a subclass may override what the stdlib calls."""
    t = _type(obj)
    if t is dict:
        values: Iterable[Any] = obj.values()
    elif t is list or t is tuple:
        values = obj
    else:
        return t in _leaves
    for v in values:
        if _type(v) not in _leaves:
            t = _type(v)
            if (t is dict or t is list or t is tuple) and depth < _ORJSON_MAX_DEPTH and _orjson_safe(v, depth + 1):
                continue
            return False
    return True


#: The stdlib encoders, the reference for byte identity (and the fallback). ``_std_canonical`` has the options of
#: :func:`critmin.market.audit.canonical`; ``_std_render`` those of Starlette's JSONResponse, ``default=str``.
_std_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                                  default=_plain).encode
_std_render = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str).encode
_std_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode  # = json.dumps(...)
_encode_str = json.encoder.encode_basestring  # JSONEncoder(ensure_ascii=False).encode(s) for a str s


def _via_orjson(obj: Any, default: Any, option: int, ascii_only: bool = False) -> str | None:
    """orjson's text of ``obj`` when it is provably the stdlib encoder's (see above), else None. ``ascii_only``:
    for an encoder with ``ensure_ascii``, which escapes all non-ASCII and DEL where orjson writes them raw."""
    if not _orjson_safe(obj):
        return None
    try:
        out = orjson.dumps(obj, default=default, option=option)
    except orjson.JSONEncodeError:  # lone surrogate, int beyond 64 bits, non-str key, too deep
        return None
    if ascii_only and (not out.isascii() or b"\x7f" in out):
        return None
    return out.decode()


def canonical_text(obj: Any) -> str:
    """``canonical(x).decode()`` (:func:`critmin.market.audit.canonical`): sorted keys, compact, UTF-8 text.
    Byte-identical to the stdlib encoder (the audit chain hashes it); orjson when that is provably so."""
    if type(obj) is str:  # what JSONEncoder.encode does first, and cheaper than orjson for one string
        return _encode_str(obj)
    out = _via_orjson(obj, _plain, _ORJSON_OPTS | orjson.OPT_SORT_KEYS)
    return out if out is not None else _std_canonical(obj)


def render(body: dict[str, Any]) -> str:
    """JSON text of a response body, as the HTTP layer sends it (and as the idempotency record keeps it).
    Byte-identical to the stdlib encoder (keys in insertion order, ``default=str``); orjson when provably so."""
    if type(body) is str:
        return _encode_str(body)
    out = _via_orjson(body, str, _ORJSON_OPTS)
    return out if out is not None else _std_render(body)


def dumps(body: dict[str, Any]) -> str:
    """``json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)``, byte for byte."""
    out = _via_orjson(body, str, _ORJSON_OPTS | orjson.OPT_SORT_KEYS, ascii_only=True)
    return out if out is not None else _std_dumps(body)


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()

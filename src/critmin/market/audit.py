"""Append-only audit log with a SHA-256 hash chain.

Each record is ``{"seq", "kind", "payload", "prev_hash", "hash"}`` where ``hash`` is the SHA-256 (hex) of the
canonical JSON of ``{"seq", "kind", "payload", "prev_hash"}`` (keys sorted, no spaces, UTF-8) and ``prev_hash`` is
the previous record's ``hash`` (:data:`GENESIS` for the first). ``seq`` counts from 0.

:func:`verify` detects any modification, deletion, insertion or reordering *inside* the log. Removing records from
the end (truncation) or appending forged ones leaves a valid shorter/longer chain; it is detected only against a
head hash kept elsewhere (``expected_head``), which is why the service should publish or store the latest hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from critmin.errors import DataError

GENESIS = "0" * 64
_FIELDS = ("seq", "kind", "payload", "prev_hash", "hash")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON value of ``obj``: Decimal → string (exact), date → ISO, enum → value, dataclass → dict,
    set → sorted list. Floats are refused: their text form is not a safe basis for money or a hash."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        raise DataError(f"float {obj!r} in audit payload; use Decimal or str", column="payload")
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return sorted(to_jsonable(v) for v in obj)
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    raise DataError(f"cannot put {type(obj).__name__} in an audit payload", column="payload")


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(seq: int, kind: str, payload: Any, prev_hash: str) -> str:
    """SHA-256 hex digest of the canonical JSON of ``(seq, kind, payload, prev_hash)``."""
    body = {"seq": seq, "kind": kind, "payload": payload, "prev_hash": prev_hash}
    return hashlib.sha256(canonical(body)).hexdigest()


class AuditLog:
    """Append-only hash-chained log held in memory; persistence is the caller's job (see :func:`dumps`)."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []

    @property
    def head(self) -> str:
        """Hash of the last record (:data:`GENESIS` when empty)."""
        return self._records[-1]["hash"] if self._records else GENESIS

    def append(self, kind: str, payload: Any) -> dict[str, Any]:
        """Append a record and return it (a copy; the log itself cannot be edited through it)."""
        if not isinstance(kind, str) or not kind:
            raise DataError("audit record kind must be a non-empty string", column="kind")
        plain = to_jsonable(payload)
        seq = len(self._records)
        rec = {"seq": seq, "kind": kind, "payload": plain, "prev_hash": self.head,
               "hash": record_hash(seq, kind, plain, self.head)}
        self._records.append(rec)
        return json.loads(json.dumps(rec))

    def records(self) -> list[dict[str, Any]]:
        """Deep copy of every record, in order."""
        return json.loads(json.dumps(self._records))


class ChainCheck:
    """Incremental hash-chain check: feed records in log order with :meth:`step` (one pass over a log too large to
    hold, or checked while something else reads it); :func:`verify` is this over a sequence."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.count = 0

    def step(self, rec: Any) -> str | None:
        """None when ``rec`` continues the chain, else why not (the chain is then broken at index ``count``)."""
        i = self.count
        if not isinstance(rec, Mapping) or set(rec) != set(_FIELDS):
            return f"record must have exactly the fields {', '.join(_FIELDS)}"
        if rec["seq"] != i or isinstance(rec["seq"], bool):
            return f"seq is {rec['seq']!r}, expected {i} (record deleted, inserted or moved)"
        if rec["prev_hash"] != self.prev:
            return "prev_hash does not match the previous record's hash (chain broken)"
        try:
            h = record_hash(rec["seq"], rec["kind"], rec["payload"], rec["prev_hash"])
        except (DataError, TypeError, ValueError) as exc:
            return f"payload cannot be hashed canonically: {exc}"
        if rec["hash"] != h:
            return "hash does not match the record's content (record modified)"
        self.prev = h
        self.count += 1
        return None

    def finish(self, expected_head: str | None) -> str | None:
        """None when the last hash is ``expected_head`` (or none is expected), else why not."""
        if expected_head is not None and self.prev != expected_head:
            return "last hash differs from the expected head (records truncated or appended)"
        return None


def verify(records: Iterable[Mapping[str, Any]], expected_head: str | None = None) -> tuple[bool, int | None, str]:
    """Check a hash chain.

    Parameters
    ----------
    records : iterable of mapping
        Records in log order.
    expected_head : str, optional
        The hash the last record must carry (detects truncation and forged appends).

    Returns
    -------
    (ok, first_bad_index, reason)
        ``(True, None, "ok")`` or ``(False, i, reason)`` with ``i`` the 0-based index of the first bad record
        (the number of records when only the head check fails).
    """
    check = ChainCheck()
    for rec in records:
        reason = check.step(rec)
        if reason is not None:
            return False, check.count, reason
    reason = check.finish(expected_head)
    if reason is not None:
        return False, check.count, reason
    return True, None, "ok"


def dumps(records: Iterable[Mapping[str, Any]]) -> str:
    """JSON-lines text of records (one canonical JSON object per line)."""
    return "".join(canonical(dict(r)).decode("utf-8") + "\n" for r in records)


def loads(text: str, source: str = "<text>") -> list[dict[str, Any]]:
    """Parse JSON-lines text into records (blank lines ignored).

    Raises
    ------
    DataError
        On a line that is not a JSON object, naming the line.
    """
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg} (column {exc.colno})", file=source, row=n) from None
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", file=source, row=n)
        out.append(obj)
    return out

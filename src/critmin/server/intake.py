"""Order intake: the fast lane for ``POST /v1/orders``, the one endpoint that carries the load.

A request is answered on the fast lane only when the FastAPI route would accept it: a bearer token of a live
token, the ``trade`` scope and a seller or buyer role, one valid ``Idempotency-Key``, ``Content-Type:
application/json``, a body that ``OrderIn`` validates, and no rate limit. Anything else is handed, unchanged, to
the FastAPI app, so errors keep their exact form. The command submitted is the one the route builds (same data,
same request hash), and the answer is the same status, body and headers.

The lane has two halves, so that it can run in one process or be split across two (see
:mod:`critmin.server.front`):

* :func:`prepare` — everything that needs only the request: headers, JSON parsing and validation, the canonical
  request hash, the token's hash. CPU-heavy and stateless: in ``critmin serve`` it runs in the HTTP front process.
* :func:`admit` — everything that needs the service's state: the token (revocation takes effect at once, since it
  is looked up here, in sequence), scope, role and the rate limit. Cheap: it runs next to the sequencer.

:class:`OrderIntake` runs both halves as ASGI middleware in front of the FastAPI app (one process: tests, embedded
use). :class:`CoreIntake` is the sequencer's side of the split: a Unix-socket protocol that takes prepared orders
from the front, admits them and answers each after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import re
import struct
from typing import Any

# orjson parses valid JSON to the same value as the stdlib, ~4x faster; what it refuses goes to the route
from orjson import loads as _loads

from critmin.server.wire import Command, Result, canonical_text, hash_token, render, request_hash

log = logging.getLogger(__name__)


_IDEM_KEY = re.compile(r"[\x21-\x7e]{1,200}")  # the route's Idempotency-Key rule (fullmatch)
MAX_FAST_BODY = 65536  # larger bodies go to the FastAPI app
_WANTED = frozenset({b"authorization", b"idempotency-key", b"content-type"})
_TRADERS = ("seller", "buyer")  # the roles the route lets place orders (Role is a StrEnum: equal to these)

#: A prepared order: (token hash, Idempotency-Key, validated body as plain JSON data, request hash).
Prepared = tuple[str, str, dict[str, Any], str]


def order_adapter() -> Any:
    """The pydantic validator of the route's body model."""
    from pydantic import TypeAdapter

    from critmin.server.schemas import OrderIn

    return TypeAdapter(OrderIn)


def prepare(headers: list[tuple[bytes, bytes]], body: bytes, adapter: Any) -> Prepared | None:
    """The request half of the lane: the prepared order, or None when the route should answer the request."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _WANTED:
            if name in found:
                return None
            found[name] = value
    if len(found) != 3 or len(body) > MAX_FAST_BODY:
        return None
    scheme, _, token = found[b"authorization"].decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    key = found[b"idempotency-key"].decode("latin-1")
    if not _IDEM_KEY.fullmatch(key):
        return None
    if found[b"content-type"].split(b";", 1)[0].strip().lower() != b"application/json":
        return None
    try:
        obj = _loads(body)
        if isinstance(obj, dict):
            # Absent sub-objects as {}: the same model as the defaults, without pydantic deep-copying them.
            for name in ("attestations", "requirements"):
                if name not in obj:
                    obj[name] = {}
        model = adapter.validate_python(obj, from_attributes=True)
    except Exception:  # JSON or validation error, undecodable bytes, nesting too deep: the route says which
        return None
    data = model.model_dump(mode="json")
    # canonical(data): the body is plain JSON data (strings, ints, booleans, None), so one encoder pass.
    raw = canonical_text(data).encode("utf-8")
    return hash_token(token), key, data, request_hash("POST", "/v1/orders", raw)


def admit(state: Any, prepared: Prepared) -> Command | None:
    """The state half of the lane: the command, or None when the route should answer (unknown or revoked token,
    missing scope, wrong role, rate limited). ``state`` is the FastAPI app's state (``seq``, ``limiter``)."""
    token_hash, key, data, rhash = prepared
    who = state.seq.engine.actor_for(token_hash)
    if who is None or "trade" not in who.scopes or who.role not in _TRADERS:
        return None
    if state.limiter.check(who.token_id):
        return None  # the route answers 429 (a refusal does not use up the bucket)
    return Command("place_order", who, data, key, rhash, None)


def answer(res: Result) -> tuple[int, bytes, bool, int | None]:
    """(status, body bytes, replayed, ETag version or None) of a command's result, as the route answers it."""
    raw = res.raw if res.raw is not None else render(res.body).encode("utf-8")
    version = res.body.get("version") if isinstance(res.body, dict) else None
    return res.status, raw, res.replayed, version if res.status < 300 and isinstance(version, int) else None


def etag(version: int) -> str:
    """The ``ETag`` of an object at ``version`` (what ``If-Match`` sends back)."""
    return f'"{version}"'


#: ``Retry-After`` (seconds) of a 503: the change was not committed (or the service is starting or stopping), and
#: the same request with the same Idempotency-Key may be sent again.
RETRY_AFTER_503 = "1"


def answer_headers(status: int, raw: bytes, replayed: bool, version: int | None) -> list[tuple[bytes, bytes]]:
    """The headers of an answer of the lane (or of the front's own errors)."""
    headers = [(b"content-length", str(len(raw)).encode("ascii")), (b"content-type", b"application/json")]
    if status == 503:
        headers.append((b"retry-after", RETRY_AFTER_503.encode("ascii")))
    if replayed:
        headers.append((b"idempotency-replayed", b"true"))
    if version is not None:
        headers.append((b"etag", etag(version).encode("ascii")))
    return headers


async def send_answer(send: Any, status: int, raw: bytes, replayed: bool, version: int | None) -> None:
    headers = answer_headers(status, raw, replayed, version)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def is_order_post(scope: dict) -> bool:
    """``POST /v1/orders`` without a query string (the operation takes none: the route refuses one, by name)."""
    return (scope["type"] == "http" and scope["path"] == "/v1/orders" and scope["method"] == "POST"
            and not scope.get("query_string"))


class OrderIntake:
    """ASGI middleware: both halves of the lane in one process, in front of the FastAPI app.

    Parameters
    ----------
    app : ASGI app
        The next app (FastAPI's stack), which answers everything not taken here.
    api : fastapi.FastAPI
        The service: its ``state.seq`` (sequencer) and ``state.limiter`` (rate limiter).
    """

    def __init__(self, app: Any, api: Any) -> None:
        self.app, self.api = app, api
        self._adapter = order_adapter()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not is_order_post(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # disconnected: let the app see it
                await self.app(scope, _replay_receive(chunks, receive, message), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if more and size > MAX_FAST_BODY:
                await self.app(scope, _replay_receive(chunks, receive, None, more=True), send)
                return
        prepared = prepare(scope["headers"], b"".join(chunks), self._adapter)
        cmd = admit(self.api.state, prepared) if prepared is not None else None
        if cmd is None:
            await self.app(scope, _replay_receive(chunks, receive, None), send)
            return
        await send_answer(send, *answer(await self.api.state.seq.submit(cmd)))


def _replay_receive(chunks: list[bytes], receive: Any, last: dict | None, more: bool = False) -> Any:
    """A ``receive`` that first gives back the body already read (then ``last``, if any), then reads on."""
    pending: list[dict] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more or last is not None}]
    if last is not None:  # the client went away mid-body
        pending = (pending if chunks else []) + [last]

    async def replay() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


# ---------------------------------------------------------------------- the split: frames between front and core
#: A frame: 4-byte big-endian length, then a ``marshal``-encoded tuple of plain data (never code objects: the
#: decoder refuses anything else). Front → core: (request id, token hash, key, data, request hash).
#: Core → front: (request id, status, body bytes, replayed, version); status 0 = "let the route answer".
FRAME = struct.Struct(">I")
FALLBACK = 0


def encode_frame(msg: tuple) -> bytes:
    payload = marshal.dumps(msg)
    return FRAME.pack(len(payload)) + payload


def decode_frames(buf: bytearray) -> list[tuple]:
    """Take every complete frame off the front of ``buf``."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= 4:
        (size,) = FRAME.unpack_from(buf, pos)
        if n - pos - 4 < size:
            break
        msg = marshal.loads(bytes(buf[pos + 4:pos + 4 + size]))
        if not isinstance(msg, tuple):
            raise ValueError("intake frame is not a tuple")
        out.append(msg)
        pos += 4 + size
    del buf[:pos]
    return out


class _Reply:
    """Future-like handle the sequencer resolves after the commit (see Sequencer.enqueue): sends the answer."""

    __slots__ = ("conn", "rid")

    def __init__(self, conn: CoreIntake, rid: int) -> None:
        self.conn, self.rid = conn, rid

    def done(self) -> bool:
        return False

    def set_result(self, res: Result) -> None:
        self.conn.reply((self.rid, *answer(res)))

    def frame(self, res: Result) -> bytes:
        """The answer as the front takes it, for the storage process to send after the commit (Sequencer._commit).
        Only the front's intake connection's replies render their own answers: the answer channel leads there."""
        return encode_frame((self.rid, *answer(res)))


class CoreIntake(asyncio.Protocol):
    """The sequencer process's end of the intake socket: admit each prepared order and answer after its commit.

    Answers are written in one ``write`` per event-loop turn (a committed group resolves many at once)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # answers still pending are dropped: their HTTP clients went with the front

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            msgs = decode_frames(self.buf)
        except Exception as exc:  # not our front: drop the connection
            log.error("malformed intake frame, closing the connection: %s", exc)
            if self.transport is not None:
                self.transport.close()
            return
        state = self.api.state
        items = []
        for msg in msgs:
            rid, prepared = msg[0], msg[1:]
            cmd = admit(state, prepared)  # type: ignore[arg-type]
            if cmd is None:
                self.reply((rid, FALLBACK, b"", False, None))
            else:
                items.append((cmd, self.loop, _Reply(self, rid)))
        state.seq.enqueue(items)

    def reply(self, msg: tuple) -> None:
        if self.transport is None:
            return
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(encode_frame(msg))

    def _flush(self) -> None:
        if self.transport is not None and self.out:
            self.transport.write(b"".join(self.out))
        self.out.clear()

"""Order intake: the fast lane for ``POST /v1/orders``, the one endpoint that carries the load.

:class:`OrderIntake` is plain ASGI middleware in front of the FastAPI app (the HTTP is uvicorn's: this module sees
only the ASGI scope, the header list and the body). A request is answered on the fast lane only when the FastAPI
route would accept it: a bearer token of a live token, the ``trade`` scope and a seller or buyer role, one valid
``Idempotency-Key``, ``Content-Type: application/json``, a body that ``OrderIn`` validates, and no rate limit.
Anything else is handed, unchanged, to the FastAPI app, so errors keep their exact form. The command submitted is
the one the route builds (same data, same request hash), and the answer is the same status, body and headers.

It has two halves: :func:`prepare` (everything that needs only the request: headers, JSON parsing and validation,
the canonical request hash, the token's hash) and :func:`admit` (everything that needs the service's state: the
token, looked up at once so that a revocation takes effect for the next request, scope, role and the rate limit).
"""

from __future__ import annotations

import logging
import re
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

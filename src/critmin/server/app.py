"""The marketplace REST API (FastAPI; the OpenAPI document is at ``/openapi.json``).

Reads go straight to the database (they see exactly what has been acknowledged); every change goes through the
sequencer (:mod:`critmin.server.sequencer`) and is answered only once committed. Authentication: ``Authorization:
Bearer <token>``. State-changing requests need an ``Idempotency-Key``; updates of versioned objects need
``If-Match: <version>`` (optimistic concurrency; the current version is in the body and the ``ETag``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from critmin.market.audit import canonical, verify
from critmin.market.model import Role
from critmin.market.money import MONEY
from critmin.server import db
from critmin.server import schemas as S
from critmin.server.engine import (
    SEES_ALL,
    Actor,
    Command,
    Result,
    enrolment_body,
    fixing_row,
    not_found,
    order_body,
    participant_body,
    policy_body,
    programme_body,
    token_body,
)
from critmin.server.intake import OrderIntake, answer, answer_headers, etag
from critmin.server.migrate import upgrade
from critmin.server.sequencer import Sequencer
from critmin.server.wire import ApiError, hash_token, render, request_hash

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.ErrorBody, "description": text} for code, text in (
        (400, "Bad request"), (401, "Missing, unknown or revoked token"), (403, "Role or token scope does not allow it"),
        (404, "Not found (or not yours)"), (409, "Conflict: exists, not open, or idempotency key reused"),
        (412, "If-Match version is stale"), (422, "Invalid request; the message names the field"),
        (428, "If-Match required"), (429, "Rate limit; see Retry-After"),
        (413, "Request body larger than the service's limit (MAX_BODY_BYTES)"),
        (503, "Not committed, or the service is at its connection limit; retry"))}

#: Largest request body the service reads (bytes): 1 MiB, room for ~2,000 typical orders (~500 bytes each) where
#: the largest request, a bulk POST /v1/orders/batch, takes at most 100. A larger body is refused with 413 before
#: it is read: when ``Content-Length`` says so, at once; a chunked body, as soon as what has arrived passes the limit.
MAX_BODY_BYTES = 1024 * 1024

bearer = HTTPBearer(auto_error=False, description="API token issued by POST /v1/participants/{id}/tokens")
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
                                description="Unique per change; a retry with the same key returns the first answer")]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40, pattern=r'^(W/)?"?[0-9]{1,9}"?$',
                                       description="Current version of the object (from its ETag)")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
SlugPath = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64)]
IdPath = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class RateLimiter:
    """Token bucket per API token: ``rate`` requests/s sustained, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> float:
        """0 when allowed, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        level, last = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1:
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate
        self._buckets[key] = (level - 1, now)
        return 0.0


def _loc(err: dict) -> str:
    """``body.quantity``, ``query.limit``, ``header.Idempotency-Key``; a JSON syntax error points at ``body``."""
    loc = [str(x) for x in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        loc = loc[:1]
    return ".".join(loc)


_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def _describe(err: dict, content_type: str | None) -> str:
    """One validation error in words, led by its field: ``body.quantity: String should match pattern ...``."""
    loc, kind, value = _loc(err), err.get("type"), err.get("input")
    if kind == "json_invalid":
        pos = err.get("loc", ())[1:2]
        where = f" at character {pos[0]}" if pos else ""
        return f"{loc}: invalid JSON ({(err.get('ctx') or {}).get('error', 'decode error')}{where})"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        if loc == "body" and isinstance(value, bytes | bytearray):  # not parsed: the Content-Type is not JSON
            return (f"body: must be a JSON object sent with Content-Type: application/json, got "
                    f"{repr(content_type) if content_type else 'no Content-Type'}")
        return f"{loc}: must be a JSON object, got {_JSON_KINDS.get(type(value), type(value).__name__)}"
    if kind == "missing" and loc == "body":
        return "body: required (a JSON object), the request has none"
    return f"{loc}: {err.get('msg')}"


def _unparsable(exc: BaseException | None) -> str:
    """Why a request body that FastAPI could not parse was refused (it only says "error parsing the body")."""
    if isinstance(exc, UnicodeDecodeError):
        return f"body: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); send UTF-8 JSON"
    if isinstance(exc, RecursionError):
        return "body: JSON nested too deeply"
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return f"body: a JSON number has more than {sys.get_int_max_str_digits()} digits"
    return f"body: cannot be parsed ({type(exc).__name__ if exc is not None else 'unknown error'})"


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value.removeprefix("W/").strip('"'))


def _error(status: int, code: str, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status, headers=headers)


#: Response headers the service sends, as the OpenAPI document declares them (see :func:`declare_headers`).
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": "The object's version, quoted: send it back as If-Match to change the object",
             "schema": {"type": "string", "pattern": r'^"[0-9]+"$'}},
    "Idempotency-Replayed": {"description": "Present when this is the stored answer to an earlier request with the "
                                            "same Idempotency-Key (nothing was changed again)",
                             "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {"description": "Seconds to wait: before the next request with this token (429), before sending "
                                   "the same request again with the same Idempotency-Key (503)",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "WWW-Authenticate": {"description": "The authentication scheme: Bearer", "schema": {"type": "string"}},
}


def declare_headers(doc: dict[str, Any]) -> None:
    """Declare in ``doc`` (an OpenAPI document, changed in place) the response headers each operation sends:

    - ``Retry-After`` on every 429 and 503, and ``WWW-Authenticate`` on every 401;
    - ``Idempotency-Replayed`` on every answer of an operation that takes an ``Idempotency-Key`` (a replay repeats
      the first answer, whatever its status);
    - ``ETag`` on each 2xx answer whose body has an integer ``version`` at its top level (the rule the service
      applies: the ETag is that version).

    None is required: each is sent only in the cases above."""
    schemas = doc.get("components", {}).get("schemas", {})

    def versioned(response: dict[str, Any]) -> bool:
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = schemas.get(ref.rsplit("/", 1)[1], {})
        return schema.get("properties", {}).get("version", {}).get("type") == "integer"

    for item in doc.get("paths", {}).values():
        for op in item.values():
            keyed = any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key"
                        for p in op.get("parameters", []))
            for status, response in op.get("responses", {}).items():
                names = ["Idempotency-Replayed"] if keyed else []
                if status in ("429", "503"):
                    names.append("Retry-After")
                elif status == "401":
                    names.append("WWW-Authenticate")
                elif status.startswith("2") and versioned(response):
                    names.append("ETag")
                if names:
                    response.setdefault("headers", {}).update({n: dict(RESPONSE_HEADERS[n]) for n in names})


# ---------------------------------------------------------------------- dependencies
def known_query(request: Request) -> None:
    """Refuse a query parameter the operation does not declare in the OpenAPI document (422 naming it). Ignored, a
    misspelt ``limt=5`` would silently give the default page size."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    cache = request.app.state.query_names
    key = (getattr(route, "path_format", None), request.method)
    names = cache.get(key)
    if names is None:
        op = request.app.openapi().get("paths", {}).get(key[0], {}).get(key[1].lower(), {})
        names = cache[key] = frozenset(p["name"] for p in op.get("parameters", ()) if p.get("in") == "query")
    unknown = sorted({k for k, _ in request.query_params.multi_items()} - names)
    if unknown:
        takes = ", ".join(sorted(names)) if names else "no query parameters"
        raise ApiError(422, "invalid_request", f"query.{unknown[0]}: unknown query parameter; {request.method} "
                                               f"{request.scope.get('path')} takes {takes}", f"query.{unknown[0]}")


async def actor(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    if cred is None or cred.scheme.lower() != "bearer":
        given = "authorization" in request.headers
        raise ApiError(401, "unauthenticated", "the Authorization header must be 'Bearer <token>'" if given
                       else "missing bearer token", "Authorization")
    who = request.app.state.seq.engine.actor_for(hash_token(cred.credentials))
    if who is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token", "Authorization")
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.check(who.token_id)
    if wait:
        raise ApiError(429, "rate_limited", f"more than {limiter.rate:g} requests/s on this token; retry later",
                       str(max(1, round(wait + 0.5))))
    return who

Who = Annotated[Actor, Depends(actor)]

def need(who: Actor, scope: str, *roles: Role) -> None:
    if scope not in who.scopes:
        raise ApiError(403, "forbidden", f"token lacks the {scope!r} scope")
    if roles and who.role not in roles:
        raise ApiError(403, "forbidden", f"a {who.role.value} cannot do this")

@contextlib.contextmanager
def conn(request: Request) -> Iterator[sa.Connection]:
    with request.app.state.sa_engine.connect() as c:
        yield c


class Service:
    """What the app runs on: the database engine, the server's lease on it (:class:`critmin.server.db.ServerLock`)
    and the sequencer. :meth:`open` takes the lease, brings the schema to head, loads the engine, creates the first
    admin on an empty database and starts the sequencer's threads; :meth:`close` answers what is queued and gives
    everything back. The app's lifespan opens it unless it is open already (``critmin serve`` opens it before it
    listens, so that a start-up error is one line and exit code 2, not a server that never answers)."""

    def __init__(self, url: str, durable: bool = True, admin_token_file: Path | None = None,
                 admin_country: str = "USA") -> None:
        self.url, self.durable = url, durable
        self.admin_token_file, self.admin_country = admin_token_file, admin_country
        self.sa_engine: sa.Engine | None = None
        self.lock: db.ServerLock | None = None
        self.seq: Sequencer | None = None
        #: Called (from a thread) if the lease is lost: another server took the database over. Every commit is
        #: refused from then on anyway; ``critmin serve`` sets it to stop.
        self.on_lease_lost: Any = None
        #: The app state the routes read (``sa_engine``, ``seq``), set by :meth:`open` (create_app sets it).
        self.state: Any = None

    @property
    def is_open(self) -> bool:
        return self.seq is not None

    def open(self) -> None:
        sa_engine = db.make_engine(self.url, durable=self.durable)
        lock = db.ServerLock(sa_engine)
        try:
            lock.acquire()
            try:
                upgrade(sa_engine)
                seq = Sequencer(sa_engine, fence=lock.renew)
                if self.admin_token_file is not None and not seq.engine.participants:
                    _bootstrap(seq, Path(self.admin_token_file), self.admin_country)
                seq.start()
            except BaseException:
                lock.release()
                raise
        except BaseException:
            sa_engine.dispose()
            raise
        lock.start_heartbeat(self._lease_lost)
        self.sa_engine, self.lock, self.seq = sa_engine, lock, seq
        if self.state is not None:
            self.state.sa_engine, self.state.seq = sa_engine, seq

    def _lease_lost(self, exc: BaseException) -> None:
        import logging

        logging.getLogger(__name__).error("%s; nothing more is committed", exc)
        if self.on_lease_lost is not None:
            self.on_lease_lost(exc)

    def close(self) -> None:
        if self.seq is not None:
            self.seq.stop()
            self.seq = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.sa_engine is not None:
            self.sa_engine.dispose()
            self.sa_engine = None


class BodyLimit:
    """ASGI middleware: refuse a request body larger than ``limit`` bytes with 413 in the service's error form,
    without reading it (a ``Content-Length`` over the limit is answered at once; a body without one is counted as
    it arrives). The server (uvicorn) then closes the connection: the rest of the body is never read."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    too_large = False  # the server has refused a malformed length already
                if too_large:
                    await self._refuse(send)
                    return
                break
        size = 0
        state = {"started": False, "refused": False}

        async def counted() -> dict:
            nonlocal size
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    # Answered here (unless the app has begun an answer), and the app is told the client is gone:
                    # whatever it sends from now on is dropped.
                    if not state["started"]:
                        state["refused"] = True
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def watch(message: dict) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counted, watch)

    async def _refuse(self, send: Any) -> None:
        body = render({"error": {"code": "too_large", "message": f"request body larger than {self.limit} bytes",
                                 "field": "body"}}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def create_app(url: str | None = None, *, rate: float = 500.0, burst: float = 1000.0, durable: bool = True,
               admin_token_file: Path | None = None, admin_country: str = "USA",
               max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; default SQLite in ``./critmin-data`` (or ``$CRITMIN_DATA_DIR``).
    rate, burst : float
        Per-token rate limit, requests/s and burst size; ``rate=0`` disables it.
    durable : bool
        SQLite only: ``synchronous=FULL`` (default) or ``NORMAL``.
    admin_token_file : Path, optional
        On a database without participants, create the ``admin`` participant and write its first token here
        (mode 0600) before committing it; refused, with nothing committed, when the file exists. Nothing happens
        when participants exist.
    admin_country : str
        ISO3 country of that admin.
    max_body : int
        Largest request body read, bytes (:data:`MAX_BODY_BYTES`); larger ones get 413.

    The app's ``state.service`` (:class:`Service`) is opened by its lifespan, unless opened before. Mounted inside
    another ASGI app (whose server runs only the outer app's lifespan), open it from the outer lifespan:
    ``inner.state.service.open()`` before serving, ``inner.state.service.close()`` after.
    """
    url = url or db.default_url()
    service = Service(url, durable=durable, admin_token_file=admin_token_file, admin_country=admin_country)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if not service.is_open:
            service.open()
        try:
            yield
        finally:
            service.close()

    # No /docs page: Swagger UI loads its JS from a CDN, and nothing here may leave the machine.
    app = FastAPI(title="critmin marketplace", version="1", lifespan=lifespan, responses=ERRORS, docs_url=None,
                  redoc_url=None, dependencies=[Depends(known_query)],
                  description=__doc__)
    app.state.service = service
    service.state = app.state
    app.state.limiter = RateLimiter(rate, burst)
    app.state.query_names = {}  # (path, method) -> the query parameters the operation declares (known_query)
    app.add_middleware(OrderIntake, api=app)  # POST /v1/orders fast lane; everything else reaches the routes
    app.add_middleware(BodyLimit, limit=max_body)  # outermost: before anything reads a body

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        parts = [_describe(e, request.headers.get("content-type")) for e in errs[:5]]
        first = _loc(errs[0]) if errs else None
        return _error(422, "invalid_request", "; ".join(parts) or "invalid request", first)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return _error(422, "invalid_request", _unparsable(exc.__cause__), "body")
        return _error(exc.status_code, "http", str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status == 429:
            headers = {"Retry-After": exc.field or "1"}
            return _error(429, exc.code, exc.message, None, headers)
        return JSONResponse(exc.body(), exc.status, headers=headers)

    async def change(request: Request, kind: str, who: Actor, data: dict[str, Any], key: str,
                     if_match: str | None = None, body: Any = None) -> Response:
        raw = canonical(body.model_dump(mode="json") if body is not None else data)
        version = _if_match(if_match)
        if version is not None:  # part of the request: a retry with another If-Match is another request (409)
            raw += b"\nIf-Match: %d" % version
        cmd = Command(kind, who, data, key, request_hash(request.method, request.url.path, raw), version)
        res: Result = await request.app.state.seq.submit(cmd)
        # Answered as the order lane answers (one rule for ETag, Idempotency-Replayed and Retry-After), with the
        # very text the idempotency record keeps, so that a replay is the first answer byte for byte.
        status, text, replayed, etag_version = answer(res)
        response = Response(text, status)
        response.raw_headers = answer_headers(status, text, replayed, etag_version)
        return response

    # ------------------------------------------------------------------ health and identity
    @app.get("/health", response_model=S.Health, tags=["service"])
    def health(request: Request) -> dict:
        return {"status": "ok", "backend": request.app.state.sa_engine.dialect.name}

    @app.get("/v1/me", response_model=S.MeOut, tags=["participants"])
    def me(request: Request, response: Response, who: Who) -> dict:
        p = request.app.state.seq.engine.participants[who.participant_id]
        response.headers["ETag"] = etag(p["version"])
        return {**participant_body(p), "token_id": who.token_id, "scopes": sorted(who.scopes)}

    # ------------------------------------------------------------------ participants and tokens
    @app.post("/v1/participants", status_code=201, response_model=S.ParticipantOut, tags=["participants"])
    async def create_participant(request: Request, body: S.ParticipantIn, who: Who, key: IdemKey) -> Response:
        need(who, "admin", Role.ADMIN)
        return await change(request, "create_participant", who, body.model_dump(), key, body=body)

    @app.get("/v1/participants", response_model=S.ParticipantPage, tags=["participants"])
    def list_participants(request: Request, who: Who,
                          after: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = None,
                          limit: Limit = 100) -> dict:
        need(who, "read", *SEES_ALL)
        p = db.participants
        q = sa.select(p).order_by(p.c.id).limit(limit)
        if after is not None:
            q = q.where(p.c.id > after)
        with conn(request) as c:
            rows = [participant_body(dict(r)) for r in c.execute(q).mappings()]
        return {"items": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}

    def _participant_visible(request: Request, who: Who, pid: str) -> dict:
        p = request.app.state.seq.engine.participants.get(pid)
        if p is None or (pid != who.participant_id and not who.sees_all):
            raise not_found("participant", pid)
        return p

    @app.get("/v1/participants/{participant_id}", response_model=S.ParticipantOut, tags=["participants"])
    def get_participant(request: Request, response: Response, participant_id: IdPath, who: Who) -> dict:
        need(who, "read")
        p = _participant_visible(request, who, participant_id)
        response.headers["ETag"] = etag(p["version"])
        return participant_body(p)

    @app.post("/v1/participants/{participant_id}/tokens", status_code=201, response_model=S.TokenOut,
              tags=["participants"])
    async def issue_token(request: Request, participant_id: IdPath, body: S.TokenIn, who: Who,
                          key: IdemKey) -> Response:
        data = {"participant_id": participant_id, **body.model_dump()}
        return await change(request, "issue_token", who, data, key, body=body)

    @app.get("/v1/participants/{participant_id}/tokens", response_model=list[S.TokenOut], tags=["participants"])
    def list_tokens(request: Request, participant_id: IdPath, who: Who) -> list:
        need(who, "read")
        if participant_id != who.participant_id and who.role is not Role.ADMIN:
            raise not_found("participant", participant_id)
        _participant_visible(request, who, participant_id)
        infos = [t for t in list(request.app.state.seq.engine.tokens.values()) if t.participant_id == participant_id]
        return [token_body(t) for t in sorted(infos, key=lambda t: t.id)]

    @app.delete("/v1/tokens/{token_id}", response_model=S.TokenOut, tags=["participants"])
    async def revoke_token(request: Request, token_id: IdPath, who: Who, key: IdemKey) -> Response:
        return await change(request, "revoke_token", who, {"token_id": token_id}, key)

    # ------------------------------------------------------------------ orders
    @app.post("/v1/orders", status_code=201, response_model=S.PlaceOrderOut, tags=["orders"])
    async def place_order(request: Request, body: S.OrderIn, who: Who, key: IdemKey) -> Response:
        need(who, "trade", Role.SELLER, Role.BUYER)
        data = body.model_dump(mode="json")
        return await change(request, "place_order", who, data, key, body=body)

    @app.post("/v1/orders/batch", response_model=S.OrderBatchOut, tags=["orders"],
              description="Bulk order entry: each order is placed exactly as by POST /v1/orders, in the order given, "
                          "and answered on its own (one may be refused while the others trade). Order i carries the "
                          "idempotency key '<Idempotency-Key>#i', so retrying the batch replays every order.")
    async def place_orders(request: Request, body: S.OrderBatchIn, who: Who,
                           key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=190,
                                                      pattern=r"^[\x21-\x7e]+$")]) -> JSONResponse:
        need(who, "trade", Role.SELLER, Role.BUYER)
        cmds = []
        for i, item in enumerate(body.orders):
            data = item.model_dump(mode="json")
            # The same command and request hash as POST /v1/orders of this one order.
            cmds.append(Command("place_order", who, data, f"{key}#{i}",
                                request_hash("POST", "/v1/orders", canonical(data)), None))
        results = await request.app.state.seq.submit_many(cmds)
        out = []
        for res in results:
            if res.status < 300:
                out.append({"status": res.status, "order": res.body["order"], "trades": res.body["trades"],
                            "error": None})
            else:
                out.append({"status": res.status, "order": None, "trades": None, "error": res.body.get("error")})
        return JSONResponse({"results": out}, 200)

    @app.get("/v1/orders", response_model=S.OrderPage, tags=["orders"])
    def list_orders(request: Request, who: Who,
                    status: Annotated[str | None, Query(pattern="^(open|filled|cancelled)$")] = None,
                    commodity: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None,
                    after: Annotated[int | None, Query(ge=-1, le=2**62)] = None, limit: Limit = 100) -> dict:
        need(who, "read")
        o = db.orders
        q = sa.select(o).order_by(o.c.seq).limit(limit)
        if not who.sees_all:
            q = q.where(o.c.participant_id == who.participant_id)
        if status is not None:
            q = q.where(o.c.status == status)
        if commodity is not None:
            q = q.where(o.c.commodity == commodity)
        if after is not None:
            q = q.where(o.c.seq > after)
        with conn(request) as c:
            rows = [order_body(dict(r)) for r in c.execute(q).mappings()]
        return {"items": rows, "next_after": rows[-1]["seq"] if len(rows) == limit else None}

    def _order_row(request: Request, who: Actor, order_id: str) -> dict:
        o = db.orders
        with conn(request) as c:
            row = c.execute(sa.select(o).where(o.c.id == order_id)).mappings().first()
        if row is None or (row["participant_id"] != who.participant_id and not who.sees_all):
            raise not_found("order", order_id)
        return order_body(dict(row))

    @app.get("/v1/orders/{order_id}", response_model=S.OrderOut, tags=["orders"])
    def get_order(request: Request, order_id: IdPath, who: Who) -> JSONResponse:
        need(who, "read")
        row = _order_row(request, who, order_id)
        return JSONResponse(json.loads(json.dumps(row, default=str)), headers={"ETag": etag(row["version"])})

    @app.delete("/v1/orders/{order_id}", response_model=S.CancelOut, tags=["orders"])
    async def cancel_order(request: Request, order_id: IdPath, who: Who, key: IdemKey,
                           if_match: IfMatch = None) -> Response:
        need(who, "trade", Role.SELLER, Role.BUYER)
        row = _order_row(request, who, order_id)
        if row["participant_id"] != who.participant_id:
            raise not_found("order", order_id)
        return await change(request, "cancel_order", who, {"order_id": order_id}, key, if_match)

    # ------------------------------------------------------------------ trades
    def _trade_filter(request: Request, who: Actor):
        t = db.trades
        if who.sees_all:
            return sa.true()
        if who.role is Role.PROGRAMME:
            mine = [pid for pid, st in list(request.app.state.seq.engine.programmes.items())
                    if st.owner == who.participant_id]
            return t.c.programme_id.in_(mine)
        return sa.or_(t.c.buyer_id == who.participant_id, t.c.seller_id == who.participant_id)

    @app.get("/v1/trades", response_model=S.TradePage, tags=["trades"])
    def list_trades(request: Request, who: Who, after: Annotated[int | None, Query(ge=-1, le=2**62)] = None,
                    limit: Limit = 100) -> dict:
        need(who, "read")
        t = db.trades
        q = sa.select(t).where(_trade_filter(request, who)).order_by(t.c.id).limit(limit)
        if after is not None:
            q = q.where(t.c.id > after)
        with conn(request) as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        return {"items": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}

    @app.get("/v1/trades/{trade_id}", response_model=S.TradeOut, tags=["trades"])
    def get_trade(request: Request, trade_id: Annotated[int, PathParam(ge=0, le=2**62)], who: Who) -> dict:
        need(who, "read")
        t = db.trades
        with conn(request) as c:
            row = c.execute(sa.select(t).where(t.c.id == trade_id, _trade_filter(request, who))).mappings().first()
        if row is None:
            raise not_found("trade", str(trade_id))
        return dict(row)

    # ------------------------------------------------------------------ books and auctions
    @app.get("/v1/books/{commodity}/{form}/{grade}", response_model=S.BookOut, tags=["books"])
    def get_book(request: Request, response: Response, commodity: SlugPath, form: SlugPath, grade: SlugPath,
                 who: Who) -> dict:
        need(who, "read")
        eng = request.app.state.seq.engine
        key3 = (commodity, form, grade)
        mode, version = eng.book_modes.get(key3, ("continuous", 0))
        response.headers["ETag"] = etag(version)
        book = eng.books.get(key3)
        price_tick, quantity_tick = eng._ticks(key3)
        return {"commodity": commodity, "form": form, "grade": grade, "mode": mode, "version": version,
                "price_tick": format(price_tick, "f"), "quantity_tick": format(quantity_tick, "f"),
                "bids": _levels(book.bids() if book else []), "asks": _levels(book.asks() if book else [])}

    @app.put("/v1/books/{commodity}/{form}/{grade}", response_model=S.BookModeOut, tags=["books"])
    async def set_book_mode(request: Request, commodity: SlugPath, form: SlugPath, grade: SlugPath,
                            body: S.BookModeIn, who: Who, key: IdemKey, if_match: IfMatch = None) -> Response:
        need(who, "admin", Role.ADMIN)
        data = {"commodity": commodity, "form": form, "grade": grade, "mode": body.mode,
                "price_tick": body.price_tick, "quantity_tick": body.quantity_tick}
        return await change(request, "set_book_mode", who, data, key, if_match, body=body)

    @app.post("/v1/books/{commodity}/{form}/{grade}/auction", response_model=S.AuctionOut, tags=["books"])
    async def run_auction(request: Request, commodity: SlugPath, form: SlugPath, grade: SlugPath, who: Who,
                          key: IdemKey) -> Response:
        need(who, "admin", Role.ADMIN)
        return await change(request, "run_auction", who, {"commodity": commodity, "form": form, "grade": grade}, key)

    # ------------------------------------------------------------------ programmes and policy
    @app.post("/v1/programmes", status_code=201, response_model=S.ProgrammeOut, tags=["programmes"])
    async def create_programme(request: Request, body: S.ProgrammeIn, who: Who, key: IdemKey) -> Response:
        need(who, "programme", Role.PROGRAMME)
        return await change(request, "create_programme", who, body.model_dump(), key, body=body)

    @app.get("/v1/programmes", response_model=list[S.ProgrammeOut], tags=["programmes"])
    def list_programmes(request: Request, who: Who) -> list:
        need(who, "read")
        eng = request.app.state.seq.engine
        return [programme_body(st, eng.ledger.spent(pid)) for pid, st in list(eng.programmes.items())]

    @app.get("/v1/programmes/{programme_id}", response_model=S.ProgrammeOut, tags=["programmes"])
    def get_programme(request: Request, programme_id: IdPath, who: Who) -> JSONResponse:
        need(who, "read")
        eng = request.app.state.seq.engine
        st = eng.programmes.get(programme_id)
        if st is None:
            raise not_found("programme", programme_id)
        return JSONResponse(programme_body(st, eng.ledger.spent(programme_id)), headers={"ETag": etag(st.version)})

    @app.patch("/v1/programmes/{programme_id}", response_model=S.ProgrammeOut, tags=["programmes"])
    async def update_programme(request: Request, programme_id: IdPath, body: S.ProgrammePatch, who: Who,
                               key: IdemKey, if_match: IfMatch = None) -> Response:
        if not ({"programme", "admin"} & who.scopes) or who.role not in (Role.PROGRAMME, Role.ADMIN):
            raise ApiError(403, "forbidden", f"a {who.role.value} cannot change programmes")
        return await change(request, "update_programme", who, {"programme_id": programme_id, **body.model_dump()},
                            key, if_match, body=body)

    @app.post("/v1/programmes/{programme_id}/enrolments", status_code=201, response_model=S.EnrolmentOut,
              tags=["programmes"])
    async def enrol(request: Request, programme_id: IdPath, body: S.EnrolmentIn, who: Who, key: IdemKey) -> Response:
        """The calling seller enrols in the programme: it settles the seller's trades of its commodity/form."""
        need(who, "trade", Role.SELLER)
        return await change(request, "enrol", who, {"programme_id": programme_id}, key, body=body)

    @app.get("/v1/programmes/{programme_id}/enrolments", response_model=list[S.EnrolmentOut], tags=["programmes"])
    def list_enrolments(request: Request, programme_id: IdPath, who: Who) -> list:
        """The programme's owner, regulators and admins see every enrolment; a seller sees its own."""
        need(who, "read")
        eng = request.app.state.seq.engine
        st = eng.programmes.get(programme_id)
        if st is None:
            raise not_found("programme", programme_id)
        everyone = who.sees_all or st.owner == who.participant_id
        return [enrolment_body(e, st, eng.ledger) for (pid, seller), e in list(eng.enrolments.items())
                if pid == programme_id and (everyone or seller == who.participant_id)]

    @app.delete("/v1/programmes/{programme_id}/enrolments/{seller_id}", response_model=S.EnrolmentOut,
                tags=["programmes"])
    async def withdraw_enrolment(request: Request, programme_id: IdPath, seller_id: IdPath, who: Who, key: IdemKey,
                                 if_match: IfMatch = None) -> Response:
        """The seller leaves a floor programme (a CfD's enrolment binds: 409)."""
        need(who, "trade", Role.SELLER)
        return await change(request, "withdraw_enrolment", who, {"programme_id": programme_id,
                                                                  "seller_id": seller_id}, key, if_match)

    @app.post("/v1/fixings/{commodity}/{form}", status_code=201, response_model=S.FixingOut, tags=["programmes"])
    async def publish_fixing(request: Request, commodity: SlugPath, form: SlugPath, body: S.FixingIn, who: Who,
                             key: IdemKey) -> Response:
        """Publish the reference price floors and CfDs settle against (the operator: neither payer nor payee)."""
        need(who, "admin", Role.ADMIN)
        return await change(request, "publish_fixing", who, {"commodity": commodity, "form": form,
                                                              **body.model_dump()}, key, body=body)

    @app.get("/v1/fixings/{commodity}/{form}", response_model=list[S.FixingOut], tags=["programmes"])
    def list_fixings(request: Request, commodity: SlugPath, form: SlugPath, who: Who) -> list:
        """Every fixing of a commodity/form, oldest first; the last is the one in force."""
        need(who, "read")
        f = db.fixings
        with conn(request) as c:
            rows = c.execute(sa.select(f).where(f.c.commodity == commodity, f.c.form == form)
                             .order_by(f.c.id)).mappings()
            return [fixing_row(dict(r)) for r in rows]

    @app.get("/v1/policies", response_model=list[S.PolicyOut], tags=["programmes"])
    def list_policies(request: Request, who: Who) -> list:
        need(who, "read")
        eng = request.app.state.seq.engine
        return [policy_body(p) for _, p in sorted(eng.policies.items())]

    @app.get("/v1/policies/{commodity}/{form}", response_model=S.PolicyOut, tags=["programmes"])
    def get_policy(request: Request, commodity: SlugPath, form: SlugPath, who: Who) -> JSONResponse:
        need(who, "read")
        p = request.app.state.seq.engine.policies.get((commodity, form))
        if p is None:
            raise not_found("policy", f"{commodity}/{form}")
        return JSONResponse(policy_body(p), headers={"ETag": etag(p.version)})

    @app.put("/v1/policies/{commodity}/{form}", response_model=S.PolicyOut, tags=["programmes"])
    async def set_policy(request: Request, commodity: SlugPath, form: SlugPath, body: S.PolicyIn, who: Who,
                         key: IdemKey, if_match: IfMatch = None) -> Response:
        if not (("programme" in who.scopes and who.role is Role.PROGRAMME)
                or ("admin" in who.scopes and who.role is Role.ADMIN)):
            raise ApiError(403, "forbidden", f"a {who.role.value} cannot set market policy")
        data = {"commodity": commodity, "form": form, **body.model_dump()}
        return await change(request, "set_policy", who, data, key, if_match, body=body)

    # ------------------------------------------------------------------ ledger
    @app.post("/v1/deposits", status_code=201, response_model=S.DepositOut, tags=["ledger"])
    async def deposit(request: Request, body: S.DepositIn, who: Who, key: IdemKey) -> Response:
        need(who, "admin", Role.ADMIN)
        if Decimal(body.amount) == 0:
            raise ApiError(422, "invalid", "amount must be > 0", "body.amount")
        return await change(request, "deposit", who, body.model_dump(), key, body=body)

    @app.get("/v1/accounts/{owner}", response_model=S.AccountOut, tags=["ledger"])
    def get_account(request: Request, owner: IdPath, who: Who) -> dict:
        need(who, "read")
        eng = request.app.state.seq.engine
        prog = eng.programmes.get(owner)
        mine = owner == who.participant_id or (prog is not None and prog.owner == who.participant_id)
        exists = owner in eng.participants or prog is not None
        if not exists or not (mine or who.sees_all):
            raise not_found("account", owner)
        with conn(request) as c:
            totals = db.balances(c, owner)
        return {"owner": owner, "balances": [{"asset": a, "amount": format(v, "f")} for (_, a), v in sorted(totals.items())]}

    @app.get("/v1/ledger/trial-balance", response_model=S.TrialBalanceOut, tags=["ledger"])
    def trial_balance(request: Request, who: Who) -> dict:
        need(who, "audit", *SEES_ALL)
        totals: dict[str, Decimal] = {}
        with db.read_snapshot(request.app.state.sa_engine) as c:  # the entries, accounts and count must agree
            sums = db.entry_sums(c)
            accounts = db.balances(c)
            n = c.execute(sa.select(sa.func.count()).select_from(db.postings)).scalar_one()
        for (_, asset), amount in sums.items():
            totals[asset] = MONEY.add(totals.get(asset, Decimal(0)), amount)  # exact: never the default context
        agree = {k: v for k, v in sums.items() if v} == {k: v for k, v in accounts.items() if v}  # absent = 0
        return {"balanced": all(v == 0 for v in totals.values()), "accounts_agree": agree, "postings": n,
                "totals": [{"asset": a, "amount": format(v, "f")} for a, v in sorted(totals.items())]}

    # ------------------------------------------------------------------ audit
    @app.get("/v1/audit", response_model=S.AuditPage, tags=["audit"])
    def audit(request: Request, who: Who, after: Annotated[int | None, Query(ge=-1, le=2**62)] = None,
              limit: Limit = 100) -> dict:
        need(who, "audit", *SEES_ALL)
        with conn(request) as c:
            rows = list(db.audit_records(c, after, limit))
        return {"items": rows, "next_after": rows[-1]["seq"] if len(rows) == limit else None}

    @app.get("/v1/audit/head", response_model=S.AuditHead, tags=["audit"])
    def audit_head(request: Request, who: Who, verify_chain: Annotated[bool, Query(alias="verify")] = False) -> dict:
        need(who, "audit", *SEES_ALL)
        a = db.audit_log
        with conn(request) as c:
            last = c.execute(sa.select(a.c.seq, a.c.hash).order_by(a.c.seq.desc()).limit(1)).first()
            out: dict[str, Any] = {"count": last[0] + 1 if last else 0, "head": last[1] if last else "0" * 64}
            if verify_chain:
                ok, bad, reason = verify(list(db.audit_records(c)))
                out.update(valid=ok, first_bad=bad, reason=reason)
        return out

    @app.get("/v1/audit/verify", response_model=S.AuditVerifyOut, tags=["audit"],
             description="The hash chain, then every stored row (participants, tokens, programmes, policies, books, "
                         "orders, trades, postings, ledger entries, account balances, stored answers) recomputed "
                         "from the audit log and compared, in one snapshot: each row that disagrees, with its "
                         "table, key, column, stored value and the value the log implies. Reads the whole "
                         "database: the same check as `critmin audit verify --db`.")
    def audit_verify(request: Request, who: Who, head: Annotated[str | None, Query(
            pattern="^[0-9a-f]{64}$", description="Expected hash of the last record (detects truncation)")] = None,
            ) -> dict:
        need(who, "audit", *SEES_ALL)
        from critmin.server.integrity import verify_database

        with db.read_snapshot(request.app.state.sa_engine) as c:
            return verify_database(c, head).as_dict()

    @app.get("/v1/audit/export", tags=["audit"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                              "description": "JSON lines, one audit record per line (for `critmin audit verify`)"}})
    def audit_export(request: Request, who: Who) -> StreamingResponse:
        need(who, "audit", *SEES_ALL)
        engine = request.app.state.sa_engine

        def lines() -> Iterator[bytes]:
            with engine.connect() as c:
                for rec in db.audit_records(c):
                    yield canonical(rec) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with each optional parameter declared as what travels: absent or a value, never
        ``null`` (``anyOf: [T, null]`` told clients ``If-Match: null`` was valid), and the response headers
        declared (:func:`declare_headers`)."""
        if app.openapi_schema is None:
            for item in base_openapi().get("paths", {}).values():
                for op in item.values():
                    for param in op.get("parameters", []):
                        schema = param.get("schema", {})
                        alts = [a for a in schema.get("anyOf", ()) if a != {"type": "null"}]
                        if len(alts) == 1 and len(schema["anyOf"]) == 2:
                            param["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **alts[0]}
            declare_headers(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _levels(orders) -> list[dict]:
    """Aggregate resting orders by price (anonymous depth)."""
    out: list[dict] = []
    for o in orders:
        if out and out[-1]["_p"] == o.limit_price:
            out[-1]["_q"] = MONEY.add(out[-1]["_q"], o.quantity)  # exact, whatever the thread's context
            out[-1]["orders"] += 1
        else:
            out.append({"_p": o.limit_price, "_q": o.quantity, "orders": 1})
    return [{"price": format(x["_p"], "f"), "quantity": format(x["_q"], "f"), "orders": x["orders"]} for x in out]


def _bootstrap(seq: Sequencer, token_file: Path, country: str) -> None:
    """Create the first admin and its token on an empty database. The token file is written first (mode 0600,
    complete on disk under its name, never over an existing file), and only then is the admin committed: a
    failure at any step leaves either nothing committed, or the file and the admin both. An existing file is
    refused before anything is applied (a marketplace whose admin token nobody holds could never be administered)."""
    from critmin.errors import ConfigError

    if token_file.exists() or token_file.is_symlink():
        raise ConfigError(f"{token_file} exists but the database is empty: it holds the admin token of another "
                          f"database; move it away (or point --data-dir elsewhere) and start again")
    system = Actor("system", Role.ADMIN, country, "bootstrap", frozenset({"admin", "read", "audit"}))
    cmds = [Command("create_participant", system, {"id": "admin", "name": "Marketplace administrator",
                                                   "role": "admin", "country": country}),
            Command("issue_token", system, {"participant_id": "admin", "scopes": None, "label": "bootstrap"})]

    def write_file(results: list[Result]) -> None:
        for res in results:
            if res.status != 201:
                raise ConfigError(f"cannot create the admin: {res.body}")
        write_secret(token_file, results[1].body["token"] + "\n")

    results = seq.apply_then_commit(cmds, write_file)
    if any(res.status != 201 for res in results):  # the commit failed: no admin, so no file either
        token_file.unlink(missing_ok=True)
        raise ConfigError(f"cannot create the admin: the database refused the commit ({results[0].body})")


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path``, mode 0600, atomically: it appears under its name complete and synced,
    or not at all; FileExistsError (as ConfigError) if ``path`` exists, which is never overwritten."""
    from critmin.errors import ConfigError

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never over an existing file
        except FileExistsError:
            raise ConfigError(f"{path} exists; it is never overwritten") from None
        except OSError:  # a file system without hard links: the name is checked, then taken
            if path.exists():
                raise ConfigError(f"{path} exists; it is never overwritten") from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

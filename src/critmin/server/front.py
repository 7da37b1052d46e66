"""The HTTP front of ``critmin serve``: a second process that speaks HTTP to clients, so the sequencer's does not.

The service is CPU-bound in Python, and one process runs Python on one core at a time. ``critmin serve`` therefore
runs two processes (and a storage writer, :mod:`critmin.server.storage`):

* the **core** (the ``critmin serve`` process itself): the FastAPI app, the engine and the sequencer, the database
  and its lock. It listens only on two Unix sockets in a private directory (mode 0700): the app's HTTP API and the
  intake socket (:class:`critmin.server.intake.CoreIntake`).
* the **front** (this module, a child process): HTTP/1.1 on the public host and port, parsed by httptools in one
  asyncio protocol per connection (:class:`HttpConnection`: keep-alive, pipelining, chunked bodies,
  ``Expect: 100-continue``, size limits, idle timeout). ``POST /v1/orders`` requests are parsed, validated and
  hashed here (:func:`critmin.server.intake.prepare`) and sent to the core as compact frames; the core admits them
  (token, scope, role, rate limit: its state, so revocation is immediate), sequences, commits and answers. Every
  other request, and an order the lane does not take, is forwarded unchanged over the API socket to the FastAPI
  app (:class:`Forwarder`), and its answer streamed back: one implementation of every route and error.

Why not uvicorn here: an ASGI server spends a task, a scope and several message dicts on every request. The order
lane needs none of them, and at ~2,000 orders/s on two cores shared with the core and the writer that was a third
of the front's CPU (measured: the front used ≈240 µs of CPU per order under uvicorn, ≈170 µs with this protocol).

The front holds no state of the service. It dies with the core (``PR_SET_PDEATHSIG``, and it stops when the intake
socket closes); the core stops when the front ends. An answer still always follows the commit: the core sends it
only then, and the front only relays it.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from email.utils import formatdate
from typing import Any

import httptools

from critmin.server.children import die_with_parent
from critmin.server.intake import (
    FALLBACK,
    answer_headers,
    decode_frames,
    encode_frame,
    order_adapter,
    prepare,
    send_answer,
)
from critmin.server.wire import ApiError, render

log = logging.getLogger(__name__)

#: Largest request body the front accepts (the biggest legitimate one, a batch of 100 orders, is ~60 kB).
MAX_BODY = 16 * 1024 * 1024
#: Hop-by-hop headers (RFC 9110 §7.6.1) and the framing the front redoes itself.
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                  b"upgrade", b"content-length", b"expect"})


def _error_body(status: int, code: str, message: str) -> bytes:
    """An error the front itself answers, in the service's error form (:meth:`ApiError.body`)."""
    return render(ApiError(status, code, message).body()).encode()


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    await send_answer(send, status, _error_body(status, code, message), False, None)


class IntakeClient(asyncio.Protocol):
    """The front's end of the intake socket: one frame per prepared order, one future per answer."""

    def __init__(self, on_lost: Any) -> None:
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.waiting: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.transport: asyncio.Transport | None = None
        self.on_lost = on_lost

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the service core went away"))
        self.waiting.clear()
        self.on_lost()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.deliver(self.buf)

    def deliver(self, buf: bytearray) -> None:
        """Resolve the requests answered by the complete frames at the front of ``buf`` (from this connection or
        from the answer channel)."""
        for rid, status, raw, replayed, version in decode_frames(buf):
            fut = self.waiting.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(None if status == FALLBACK else (status, raw, replayed, version))

    def submit(self, prepared: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self.transport is None:
            fut.set_exception(ConnectionError("the service core went away"))
            return fut
        rid = next(self.ids)
        self.waiting[rid] = fut
        if not self.out:  # frames of one event-loop turn leave in one write (one wake-up of the core)
            loop.call_soon(self._flush)
        self.out.append(encode_frame((rid, *prepared)))
        return fut

    def _flush(self) -> None:
        if self.transport is not None and self.out:
            self.transport.write(b"".join(self.out))
        self.out.clear()


class AnswerChannel(asyncio.Protocol):
    """The front's end of the answer channel: answers of committed orders, sent by the storage writer process right
    after its commit (see :mod:`critmin.server.storage`), for the requests the intake client is waiting on."""

    def __init__(self, intake: IntakeClient, on_lost: Any) -> None:
        self.intake, self.on_lost = intake, on_lost
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.intake.deliver(self.buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()


class Forwarder:
    """Relays an HTTP request to the core's API socket (HTTP/1.1, kept-alive connections) and streams back the
    answer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __call__(self, scope: dict, body: bytes, send: Any) -> None:
        import h11

        conn = None
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                conn = reader, writer
                break
            writer.close()
        if conn is None:
            try:
                conn = await asyncio.open_unix_connection(self.path, limit=1 << 20)
            except OSError:
                await _send_error(send, 503, "unavailable", "the service is starting or stopping; retry")
                return
        reader, writer = conn
        h = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(n, v) for n, v in scope["headers"] if n not in _HOP]
        if not any(n == b"host" for n, _ in headers):
            headers.append((b"host", b"critmin"))
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        started = reusable = False
        try:
            writer.write(h.send(h11.Request(method=scope["method"], target=target, headers=headers)))
            if body:
                writer.write(h.send(h11.Data(data=body)))
            writer.write(h.send(h11.EndOfMessage()))
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    h.receive_data(await reader.read(1 << 16))
                elif isinstance(event, h11.Response):
                    out = [(n, v) for n, v in event.headers if n not in _HOP or n == b"content-length"]
                    await send({"type": "http.response.start", "status": event.status_code, "headers": out})
                    started = True
                elif isinstance(event, h11.Data):
                    await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
                elif isinstance(event, h11.EndOfMessage):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the core closed the connection mid-answer")
                # h11.InformationalResponse (100 Continue): nothing to relay
            reusable = h.our_state is h11.DONE and h.their_state is h11.DONE
        except (OSError, ConnectionError, h11.ProtocolError) as exc:
            if started:
                raise  # the answer is cut: the connection is dropped (HttpConnection._relay)
            log.warning("forwarding %s %s failed: %s", scope["method"], scope["path"], exc)
            await _send_error(send, 502, "core_unavailable", "the service core did not answer; retry "
                                                             "(with the same Idempotency-Key)")
        finally:  # also when the client went away mid-answer: a half-read connection is never reused
            if reusable:
                self.idle.append(conn)
            else:
                writer.close()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii")) for s in http.HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: A keep-alive connection with no request for this long is closed (seconds; uvicorn's default).
IDLE_TIMEOUT = 5.0
#: Most bytes of a request's line and headers (the front answers 431 beyond).
MAX_HEAD = 64 * 1024
#: Complete requests a connection may have waiting (HTTP/1.1 pipelining) before the front stops reading it.
MAX_PIPELINED = 16


class _Date:
    """The Date header, rendered once a second."""

    def __init__(self) -> None:
        self.second, self.value = -1, b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second, self.value = now, b"date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self.value


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "target", "version")

    def __init__(self, method: bytes, target: bytes, headers: list, body: bytes, keep_alive: bool,
                 version: str) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.keep_alive, self.version = keep_alive, version


class HttpConnection(asyncio.Protocol):
    """One client connection of the front: HTTP/1.1 parsed by httptools (keep-alive, pipelining, chunked bodies,
    ``Expect: 100-continue``), answered in order. ``POST /v1/orders`` goes to the core on the intake socket;
    everything else, and an order the lane does not take, is relayed by the :class:`Forwarder`."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Request] = deque()
        self.busy = False         # a request is being answered
        self.closing = False      # close after the answer in progress
        self.paused = False       # reading paused (too many pipelined requests)
        self.can_write: asyncio.Event | None = None   # set while the transport's buffer is below its limit
        self.idle: asyncio.TimerHandle | None = None
        self._reset()

    # -- asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.front.connections.add(self)
        self._idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.front.connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.can_write is not None:
            self.can_write.set()

    def pause_writing(self) -> None:
        if self.can_write is None:
            self.can_write = asyncio.Event()
        self.can_write.clear()

    def resume_writing(self) -> None:
        if self.can_write is not None:
            self.can_write.set()

    def data_received(self, data: bytes) -> None:
        if self.closing and not self.busy:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "bad_request", "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.refused:
                self._refuse(400, "bad_request", f"malformed HTTP request: {exc}")

    # -- httptools callbacks
    def _reset(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.head_size = 0
        self.refused = False

    def on_message_begin(self) -> None:
        self._reset()
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def on_url(self, url: bytes) -> None:
        self.target += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value)
        if self.head_size > MAX_HEAD:
            self._refuse(431, "headers_too_large", f"request line and headers over {MAX_HEAD} bytes")
            raise _Refused
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        for name, value in self.headers:
            if name == b"content-length" and value.strip().isdigit() and int(value) > MAX_BODY:
                self._refuse(413, "too_large", f"request body over {MAX_BODY} bytes")
                raise _Refused
        if any(n == b"expect" and v.strip().lower() == b"100-continue" for n, v in self.headers) and \
                self.transport is not None and not self.busy and not self.waiting:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self._refuse(413, "too_large", f"request body over {MAX_BODY} bytes")
            raise _Refused
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        req = _Request(self.parser.get_method(), self.target, self.headers, b"".join(self.body),
                       self.parser.should_keep_alive(), self.parser.get_http_version())
        self.waiting.append(req)
        if len(self.waiting) > MAX_PIPELINED and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if not self.busy:
            self._next()

    # -- answering, one request at a time
    def _next(self) -> None:
        if not self.waiting or self.transport is None:
            return
        req = self.waiting.popleft()
        if self.paused and len(self.waiting) <= MAX_PIPELINED // 2:
            self.transport.resume_reading()
            self.paused = False
        self.busy = True
        front = self.front
        if req.method == b"POST" and req.target == b"/v1/orders" and front.intake is not None:
            prepared = prepare(req.headers, req.body, front.adapter)
            if prepared is not None:
                front.intake.submit(prepared).add_done_callback(lambda fut: self._answered(req, fut))
                return
        self._forward(req)

    def _answered(self, req: _Request, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            raw = _error_body(503, "unavailable", "the service is stopping; retry with the same Idempotency-Key")
            self.respond(req, 503, answer_headers(503, raw, False, None), raw)
            return
        got = fut.result()
        if got is None:  # the route answers
            self._forward(req)
            return
        status, raw, replayed, version = got
        self.respond(req, status, answer_headers(status, raw, replayed, version), raw)

    def _head(self, req: _Request, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        keep = req.keep_alive and not self.closing
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]  # a status without a known phrase
        parts += [b"%s: %s\r\n" % (n, v) for n, v in headers]
        parts.append(self.front.date.header())
        if not keep:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def respond(self, req: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole answer (headers with content-length) and the next request."""
        if self.transport is not None:
            self.transport.write(self._head(req, status, headers) + (b"" if req.method == b"HEAD" else body))
        self._finished(req)

    def _finished(self, req: _Request) -> None:
        self.busy = False
        if self.transport is None:
            return
        if not req.keep_alive or self.closing:
            self.transport.close()
            return
        if self.waiting:
            self._next()
        else:
            self._idle_timer()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """A request the front answers itself before reading all of it; the connection is closed after it."""
        self.refused = True
        self.waiting.clear()
        raw = _error_body(status, code, message)
        req = _Request(b"", b"", [], b"", False, "1.1")
        self.closing = True
        if not self.busy and self.transport is not None:
            self.respond(req, status, answer_headers(status, raw, False, None), raw)
        # else: the answer in progress goes out first, then the connection closes (no answer to this one)

    def _idle_timer(self) -> None:
        if self.front.stopping:
            if self.transport is not None:
                self.transport.close()
            return
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(IDLE_TIMEOUT, self._idle_close)

    def _idle_close(self) -> None:
        if not self.busy and not self.waiting and self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """The front is stopping: close now if idle, else after the answer in progress."""
        self.closing = True
        if not self.busy and not self.waiting and self.transport is not None:
            self.transport.close()

    # -- relaying to the core's API
    def _forward(self, req: _Request) -> None:
        asyncio.get_running_loop().create_task(self._relay(req))

    async def _relay(self, req: _Request) -> None:
        path, _, query = req.target.partition(b"?")
        scope = {"method": req.method.decode("ascii"), "path": path.decode("latin-1"), "raw_path": path,
                 "query_string": query, "headers": req.headers}
        state: dict[str, Any] = {}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"]
                length = next((v for n, v in headers if n == b"content-length"), None)
                state["chunked"] = chunked = length is None and req.method != b"HEAD" and req.version == "1.1"
                if length is None and not chunked:
                    req.keep_alive = False  # the end of the body is the end of the connection
                if chunked:
                    headers = [*headers, (b"transfer-encoding", b"chunked")]
                if self.transport is not None:
                    self.transport.write(self._head(req, message["status"], headers))
                return
            body = message.get("body", b"")
            if self.transport is not None and body and req.method != b"HEAD":
                self.transport.write(b"%x\r\n%s\r\n" % (len(body), body) if state.get("chunked") else body)
            if not message.get("more_body", False):
                if state.get("chunked") and self.transport is not None:
                    self.transport.write(b"0\r\n\r\n")
                self._finished(req)
            elif self.can_write is not None and not self.can_write.is_set():
                await self.can_write.wait()

        try:
            await self.front.forward(scope, req.body, send)
        except Exception:  # the answer was cut mid-way: the client cannot tell where it ends
            log.warning("relaying %s %s failed mid-answer", scope["method"], scope["path"], exc_info=True)
            if self.transport is not None:
                self.transport.abort()
            self.busy = False


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request the front has answered."""


class Front:
    """The front: its connections, the intake client and the forwarder."""

    def __init__(self, api_socket: str, intake_socket: str, answer_fd: int | None = None) -> None:
        self.intake_socket, self.answer_fd = intake_socket, answer_fd
        self.forward = Forwarder(api_socket)
        self.intake: IntakeClient | None = None
        self.adapter = order_adapter()
        self.connections: set[HttpConnection] = set()
        self.date = _Date()
        self.stopping = False

    async def run(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            _, self.intake = await loop.create_unix_connection(lambda: IntakeClient(stop.set), self.intake_socket)
            if self.answer_fd is not None:
                intake = self.intake
                await loop.create_unix_connection(lambda: AnswerChannel(intake, stop.set),
                                                  sock=socket.socket(fileno=self.answer_fd))
        except OSError as exc:
            log.error("cannot reach the core: %s", exc)
            return 1
        try:
            server = await loop.create_server(lambda: HttpConnection(self), host, port, backlog=2048,
                                              reuse_address=True)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc)
            return 1
        await stop.wait()
        # Stop: no new connections; idle ones closed now, busy ones after their answer (the core still runs).
        self.stopping = True
        server.close()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = loop.time() + 30
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.forward.close()
        if self.intake.transport is not None:
            self.intake.transport.close()
        return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="critmin-front", description="HTTP front of critmin serve (started by it)")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-socket", required=True)
    ap.add_argument("--intake-socket", required=True)
    ap.add_argument("--parent", type=int, required=True, help="pid of the core; the front exits if it is gone")
    ap.add_argument("--answer-fd", type=int, help="inherited socket on which committed answers arrive")
    ap.add_argument("--ready-fd", type=int, help="inherited pipe: wait for one byte on it (the core listens) before "
                                                 "connecting to the core and binding the port; its end: exit")
    args = ap.parse_args(argv)
    if not die_with_parent(args.parent):
        return 1
    if args.ready_fd is not None:
        # Until the core says go, Ctrl-C (it reaches the terminal's whole group) is the core's to handle: it stops
        # and closes the pipe, and the front then exits quietly. run() installs the front's own handler.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: critmin front: %(message)s")
    from critmin.server.children import freeze_gc

    front = Front(args.api_socket, args.intake_socket, args.answer_fd)
    freeze_gc()
    if args.ready_fd is not None:  # started with the core (critmin.server.children): wait until it listens
        go = os.read(args.ready_fd, 1)
        os.close(args.ready_fd)
        if not go:  # the core did not start (it says why)
            return 0
    # The front adds the Date header to every answer (the core's uvicorn adds none, so none is doubled).
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(front.run(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())

"""The HTTP front of ``critmin serve``: a second process that speaks HTTP to clients, so the sequencer's does not.

The service is CPU-bound in Python, and one process runs Python on one core at a time. ``critmin serve`` therefore
runs two processes:

* the **core** (the ``critmin serve`` process itself): the FastAPI app, the engine and the sequencer, the database
  and its lock. It listens only on two Unix sockets in a private directory (mode 0700): the app's HTTP API and the
  intake socket (:class:`critmin.server.intake.CoreIntake`).
* the **front** (this module, a child process): uvicorn on the public host and port. ``POST /v1/orders`` requests
  are parsed, validated and hashed here (:func:`critmin.server.intake.prepare`) and sent to the core as compact
  frames; the core admits them (token, scope, role, rate limit: its state, so revocation is immediate), sequences,
  commits and answers. Every other request, and an order the lane does not take, is forwarded unchanged over the
  API socket to the FastAPI app, and its answer streamed back: one implementation of every route and error.

The front holds no state of the service. It dies with the core (``PR_SET_PDEATHSIG``, and it stops when the intake
socket closes); the core stops when the front ends. An answer still always follows the commit: the core sends it
only then, and the front only relays it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import signal
import sys
from typing import Any

from critmin.server.engine import ApiError, render
from critmin.server.intake import FALLBACK, decode_frames, encode_frame, is_order_post, order_adapter, prepare, send_answer

log = logging.getLogger(__name__)

#: Largest request body the front accepts (the biggest legitimate one, a batch of 100 orders, is ~60 kB).
MAX_BODY = 16 * 1024 * 1024
#: Hop-by-hop headers (RFC 9110 §7.6.1) and the framing the front redoes itself.
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                  b"upgrade", b"content-length", b"expect"})
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """First thing in a child process (the front, the storage writer): get SIGKILL when the parent dies (Linux),
    so a ``kill -9`` of the service never leaves a child answering on the port or writing. False when the parent
    ``parent`` is already gone (it died before the request took effect): the child should exit.

    Done in the child, not in a ``preexec_fn``: code between fork and exec can deadlock when the parent has
    threads."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == parent


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    """An error the front itself answers, in the service's error form (:meth:`ApiError.body`)."""
    await send_answer(send, status, render(ApiError(status, code, message).body()).encode(), False, None)


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
        for rid, status, raw, replayed, version in decode_frames(self.buf):
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
                raise  # the answer is cut: uvicorn drops the client connection
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


class Front:
    """The front's ASGI app."""

    def __init__(self, api_socket: str, intake_socket: str) -> None:
        self.intake_socket = intake_socket
        self.forward = Forwarder(api_socket)
        self.intake: IntakeClient | None = None
        self.adapter = order_adapter()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: none served
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _send_error(send, 413, "too_large", f"request body over {MAX_BODY} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if is_order_post(scope) and self.intake is not None:
            prepared = prepare(scope["headers"], body, self.adapter)
            if prepared is not None:
                try:
                    got = await self.intake.submit(prepared)
                except ConnectionError:
                    await _send_error(send, 503, "unavailable", "the service is stopping; retry with the same "
                                                                "Idempotency-Key")
                    return
                if got is not None:
                    await send_answer(send, *got)
                    return
        await self.forward(scope, body, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    _, self.intake = await loop.create_unix_connection(lambda: IntakeClient(_stop_self),
                                                                       self.intake_socket)
                except OSError as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"cannot reach the core: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.forward.close()
                if self.intake is not None and self.intake.transport is not None:
                    self.intake.transport.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _stop_self() -> None:
    """The core closed the intake socket (it stopped or died): stop this front too."""
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="critmin-front", description="HTTP front of critmin serve (started by it)")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-socket", required=True)
    ap.add_argument("--intake-socket", required=True)
    ap.add_argument("--parent", type=int, required=True, help="pid of the core; the front exits if it is gone")
    args = ap.parse_args(argv)
    if not die_with_parent(args.parent):
        return 1
    import uvicorn

    # The front adds the Date header to every answer (the core's uvicorn adds none, so none is doubled).
    uvicorn.run(Front(args.api_socket, args.intake_socket), host=args.host, port=args.port, log_level="warning",
                access_log=False, proxy_headers=False, lifespan="on", server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

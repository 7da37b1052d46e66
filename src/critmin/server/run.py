"""Running ``critmin serve``: the core process (this one) and its HTTP front (a child); see :mod:`critmin.server.front`.

Start-up: the front has been started already (:mod:`critmin.server.children`: by ``critmin serve`` before it built
the app, or here), and waits. The core runs the FastAPI app's lifespan (database lock, migrations, sequencer),
listens on its two Unix sockets in the private directory the front was told, then lets the front go on: it connects
to them and binds the public port. Stop (SIGINT or SIGTERM to the core, or Ctrl-C to both): the front is asked to
stop first and finishes the requests it holds (their answers come from the core, still running), then the core
stops: every queued command is answered, the lock released. If the front ends on its own (it could not bind the
port), the core stops and the exit code is 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from critmin.server.children import Children, freeze_gc
from critmin.server.intake import CoreIntake


class _CoreServer(uvicorn.Server):
    """uvicorn on the API socket, its signals left to :func:`serve` (which stops the front first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


#: The core's GIL switch interval (seconds; CPython's default is 0.005). The applier thread runs Python nearly all
#: the time; the thread that hands batches to the storage writer wakes when a commit is done and must take the GIL
#: back from it, which by default can take up to 5 ms per commit, with the storage writer idle meanwhile.
SWITCH_INTERVAL = 0.0005


def serve(app: Any, host: str, port: int, children: Children | None = None) -> int:
    """Serve ``app`` (from :func:`critmin.server.app.create_app`) on ``host:port``; returns the exit code.

    ``children``: the front (and storage writer) ``critmin serve`` started before it built ``app``, for ``host``
    and ``port`` (see :mod:`critmin.server.children`); the caller closes them. Without, the front is started here."""
    if children is None:
        with Children(host, port) as own:
            return serve(app, host, port, own)
    sys.setswitchinterval(SWITCH_INTERVAL)
    config = uvicorn.Config(app, uds=children.api_socket, log_level="warning", access_log=False,
                            lifespan="on", timeout_keep_alive=24 * 3600, server_header=False, date_header=False)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        return runner.run(_serve(app, config, children))


async def _serve(app: Any, config: uvicorn.Config, children: Children) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = _CoreServer(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():  # the lifespan failed (uvicorn logged why) or raised
            serving.result()
            return 3
        await asyncio.sleep(0.01)
    intake = await loop.create_unix_server(lambda: CoreIntake(app), path=children.intake_socket)
    # The answer channel: committed orders are answered by the storage writer process straight to the front.
    storage = getattr(getattr(app.state, "seq", None), "storage", None)
    if storage is not None and children.answers is not None:
        storage.set_answer_channel(children.answers)
    front = children.front
    assert front is not None
    children.ready()  # the front connects to the two sockets and binds the public port
    freeze_gc()
    code = 0
    try:
        while not stop.is_set() and not serving.done():
            if front.poll() is not None:
                print(f"critmin serve: the HTTP front ended (exit {front.returncode}); stopping", file=sys.stderr)
                code = 2
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        await _stop_front(front)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        intake.close()
    return code


async def _stop_front(front: subprocess.Popen, timeout: float = 30.0) -> None:
    if front.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        front.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while front.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if front.poll() is None:
        front.kill()
        front.wait()

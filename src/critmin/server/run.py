"""Running ``critmin serve``: the core process (this one) and its HTTP front (a child); see :mod:`critmin.server.front`.

Start-up: the core runs the FastAPI app's lifespan (database lock, migrations, sequencer), listens on its two Unix
sockets in a fresh private directory, then starts the front, which binds the public port. Stop (SIGINT or SIGTERM
to the core, or Ctrl-C to both): the front is asked to stop first and finishes the requests it holds (their answers
come from the core, still running), then the core stops: every queued command is answered, the lock released.
If the front ends on its own (it could not bind the port), the core stops and the exit code is 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from critmin.server.intake import CoreIntake
from critmin.server.sequencer import freeze_gc


class _CoreServer(uvicorn.Server):
    """uvicorn on the API socket, its signals left to :func:`serve` (which stops the front first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


#: The core's GIL switch interval (seconds; CPython's default is 0.005). The applier thread runs Python nearly all
#: the time; the thread that hands batches to the storage writer wakes when a commit is done and must take the GIL
#: back from it, which by default can take up to 5 ms per commit, with the storage writer idle meanwhile.
SWITCH_INTERVAL = 0.0005


def serve(app: Any, host: str, port: int, front_ready_timeout: float = 60.0) -> int:
    """Serve ``app`` (from :func:`critmin.server.app.create_app`) on ``host:port``; returns the exit code."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    sockets = tempfile.mkdtemp(prefix="critmin-serve-")  # mode 0700: only this user reaches the core
    try:
        config = uvicorn.Config(app, uds=os.path.join(sockets, "api.sock"), log_level="warning", access_log=False,
                                lifespan="on", timeout_keep_alive=24 * 3600, server_header=False, date_header=False)
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            return runner.run(_serve(app, config, sockets, host, port, front_ready_timeout))
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


async def _serve(app: Any, config: uvicorn.Config, sockets: str, host: str, port: int, ready_timeout: float) -> int:
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
    intake_path = os.path.join(sockets, "intake.sock")
    intake = await loop.create_unix_server(lambda: CoreIntake(app), path=intake_path)
    # The answer channel: committed orders are answered by the storage writer process straight to the front.
    ours, theirs = socket.socketpair()
    storage = getattr(getattr(app.state, "seq", None), "storage", None)
    try:
        args = [sys.executable, "-m", "critmin.server.front", "--host", host, "--port", str(port),
                "--api-socket", config.uds, "--intake-socket", intake_path, "--parent", str(os.getpid())]
        if storage is not None:
            args += ["--answer-fd", str(theirs.fileno())]
        front = subprocess.Popen(args, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
    finally:
        theirs.close()
    if storage is not None:
        storage.set_answer_channel(ours)
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
        ours.close()
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

"""The dashboard served for browser tests: uvicorn on a free loopback port in a thread of the test process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app: Any, ready_path: str, what: str = "the dashboard") -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL once ``ready_path`` answers 200 (60 s at most)."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}{ready_path}", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        srv.should_exit = True
        pytest.fail(f"{what} did not start")
    try:
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=30)

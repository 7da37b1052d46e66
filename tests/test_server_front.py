"""``critmin serve`` as shipped: the core process, its HTTP front (critmin.server.front) and its storage writer
(critmin.server.storage) answer exactly as the app does in one process, and stop and die together."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx
from serverkit import BUY, SELL, database_url, open_market, populate
from test_server_reliability import _scenario

from critmin.server.loadgen import free_port, stop_server

HOST = "127.0.0.1"


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Serve:
    """``critmin serve`` on SQLite in a subprocess."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir, self.port = data_dir, port or free_port(HOST)
        self.log = data_dir / "serve.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "critmin.cli.main", "serve", "--data-dir", str(data_dir), "--host", HOST,
                 "--port", str(self.port), "--rate-limit", "0"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        self.base = f"http://{HOST}:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not healthy: {self.log.read_text()}")

    def stop(self) -> int:
        return stop_server(self.proc)


@pytest.fixture
def served(tmp_path):
    s = Serve(tmp_path)
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


def _market(served: Serve):
    client = httpx.Client(base_url=served.base, timeout=30)
    return populate(client, (served.data_dir / "admin.token").read_text().strip())


def test_the_split_service_answers_orders_exactly_as_the_app_in_one_process(served, tmp_path):
    """Fast lane (placed, crossed, replayed) and every refusal handed to the routes: the same status, body and
    headers through the front as from the app in one process."""
    m = _market(served)
    split = _scenario(m)
    one = tmp_path / "one"
    one.mkdir()
    with open_market(database_url("sqlite", one), one) as m1:
        single = _scenario(m1)
    assert [s for s, _, _ in split][:4] == [201, 201, 201, 409]
    assert split == single


def test_forwarded_requests_keep_queries_streams_and_errors(served, tmp_path):
    m = _market(served)
    for i in range(3):
        m.order("lynas", SELL, limit_price=str(95 + i))
    m.order("toyota", BUY)
    one = tmp_path / "one"
    one.mkdir()
    with open_market(database_url("sqlite", one), one) as m1:
        for i in range(3):
            m1.order("lynas", SELL, limit_price=str(95 + i))
        m1.order("toyota", BUY)
        for path in ("/v1/orders?limit=2", "/v1/orders?limit=2&after=1", "/v1/trades", "/v1/books",
                     "/v1/orders/ord_999", "/v1/orders?limit=abc", "/v1/nothing-here"):
            a, b = m.get("lynas", path), m1.get("lynas", path)
            assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        # the audit export is a stream (no content-length): relayed whole, line for line
        a, b = m.get("gao", "/v1/audit/export"), m1.get("gao", "/v1/audit/export")
        assert a.status_code == b.status_code == 200
        lines = a.text.splitlines()
        assert len(lines) == len(b.text.splitlines()) > 10
        assert [json.loads(x)["kind"] for x in lines] == [json.loads(x)["kind"] for x in b.text.splitlines()]
    # a body sent in chunks (no content-length) still reaches the route
    chunks = (part for part in (json.dumps({**SELL, "limit_price": "99"}).encode(),))
    r = m.client.post("/v1/orders", content=chunks, headers={**m.headers("mp"), "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    # one Date header on every answer (the front's), relayed or from the fast lane; no server banner
    for r in (m.client.get("/health"), m.post("mp", "/v1/orders", {**SELL, "limit_price": "98"})):
        assert len(r.headers.get_list("date")) == 1 and "server" not in r.headers, r.headers
    # too large for the front: 413 in the service's error form
    r = m.client.post("/v1/orders", content=b"x" * (16 * 1024 * 1024 + 1), headers=m.headers("mp"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def _read_answers(sock: socket.socket, n: int, heads: frozenset[int] = frozenset()) -> list[tuple[int, dict, bytes]]:
    """Read ``n`` HTTP/1.1 answers off a raw socket: (status, headers, body); bodies by content-length or chunked,
    none for the answers numbered in ``heads`` (to HEAD requests)."""
    buf, out = b"", []
    f = sock.makefile("rb")
    for i in range(n):
        line = f.readline()
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (h := f.readline()) not in (b"\r\n", b""):
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100 or i in heads:
            out.append((status, headers, b""))
            continue
        if "content-length" in headers:
            buf = f.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            buf = b""
            while (size := int(f.readline().strip(), 16)) > 0:
                buf += f.read(size)
                f.readline()
            f.readline()
        else:
            buf = f.read()
        out.append((status, headers, buf))
    return out


def test_the_front_speaks_http_1_1_on_a_raw_socket(served):
    m = _market(served)
    token = m.tokens["mp"]

    def connect() -> socket.socket:
        return socket.create_connection((HOST, served.port), timeout=10)

    # pipelined requests are answered in order on one connection, a HEAD without a body
    with connect() as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _read_answers(s, 3, heads=frozenset({1}))
        assert [a[0] for a in answers] == [200, 405, 404]
        assert json.loads(answers[0][2])["status"] == "ok" and answers[1][2] == b""
        assert all(len(a[1]["date"]) > 10 for a in answers)
    # Expect: 100-continue is answered before the body is sent; the order then goes through the fast lane
    body = json.dumps({**SELL, "limit_price": "97"}).encode()
    with connect() as s:
        s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                  + b"\r\nIdempotency-Key: raw-1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                  + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert _read_answers(s, 1)[0][0] == 100
        s.sendall(body)
        status, headers, raw = _read_answers(s, 1)[0]
        assert status == 201 and json.loads(raw)["order"]["side"] == "sell"
        assert headers["content-type"] == "application/json"
    # HTTP/1.0: the answer says connection: close and the connection ends after it
    with connect() as s:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        status, headers, _ = _read_answers(s, 1)[0]
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(10) == b""
    # malformed requests and oversized headers: 400 and 431 in the service's error form, then the connection closes
    for request, status, code in ((b"NOT AN HTTP REQUEST\r\n\r\n", 400, "bad_request"),
                                  (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
                                   "headers_too_large")):
        with connect() as s:
            s.sendall(request)
            got, headers, raw = _read_answers(s, 1)[0]
            assert (got, json.loads(raw)["error"]["code"]) == (status, code)
            assert headers["connection"] == "close" and s.recv(10) == b""
    # the front still serves new connections after all that
    assert httpx.get(served.base + "/health").status_code == 200


def test_a_revoked_token_is_refused_at_once_on_the_fast_lane(served):
    m = _market(served)
    r = m.post("admin", "/v1/participants/lynas/tokens", {"label": "second"})
    second = r.json()
    ok = m.client.post("/v1/orders", json=SELL, headers={"Authorization": f"Bearer {second['token']}",
                                                         "Idempotency-Key": "k1"})
    assert ok.status_code == 201
    r = m.delete("admin", f"/v1/tokens/{second['id']}")
    assert r.status_code in (200, 204), r.text
    refused = m.client.post("/v1/orders", json=SELL, headers={"Authorization": f"Bearer {second['token']}",
                                                              "Idempotency-Key": "k2"})
    assert refused.status_code == 401, refused.text


def _module_of(pid: int) -> str:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return args[args.index(b"-m") + 1].decode() if b"-m" in args else ""


def _socket_dirs(core: int) -> list[Path]:
    import tempfile

    return list(Path(tempfile.gettempdir()).glob(f"critmin-serve-{core}-*"))


def test_kill_9_of_the_service_takes_its_front_writer_and_port_with_it(served):
    children = _children(served.proc.pid)
    assert sorted(_module_of(p) for p in children) == ["critmin.server.front", "critmin.server.storage"]
    core = served.proc.pid
    assert len(_socket_dirs(core)) == 1
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait()
    t0 = time.monotonic()
    while any(_alive(p) for p in children) and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert not any(_alive(p) for p in children)
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.base + "/health", timeout=2)
    assert len(_socket_dirs(core)) == 1  # nothing outlives a kill -9 to remove it...
    again = Serve(served.data_dir, served.port)  # same database and port: the lock and the port are free
    try:
        again.wait_healthy()
        assert _socket_dirs(core) == []  # ...so the next start does
    finally:
        assert again.stop() == 0


def test_sigterm_stops_front_then_core_cleanly(served):
    children = _children(served.proc.pid)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    assert not any(_alive(p) for p in children)


def test_the_children_start_first_and_bind_nothing_until_the_core_listens(tmp_path):
    """critmin serve starts its front and its storage writer before it builds its app (they import their modules
    meanwhile). Until the core says it listens, the front binds no port; if the core never gets there, closing the
    children ends both, cleanly, and removes the sockets' directory."""
    from critmin.server.children import Children

    port = free_port(HOST)
    with Children(HOST, port, writer=True) as kids:
        front, (writer, _) = kids.front, kids.writer
        assert kids.api_socket.startswith(kids.sockets) and kids.intake_socket.startswith(kids.sockets)
        assert oct(os.stat(kids.sockets).st_mode & 0o777) == "0o700"
        time.sleep(2.5)  # both have imported their modules by now, and wait
        assert front.poll() is None and writer.poll() is None
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
        sockets = kids.sockets
    assert front.returncode == 0 and writer.returncode == 0
    assert not Path(sockets).exists()


def test_socket_dirs_of_dead_cores_are_swept(tmp_path):
    """A kill -9 leaves the core's socket directory behind; the next start removes those whose core is no process,
    and nothing else."""
    from critmin.server.children import sweep_socket_dirs

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"critmin-serve-{gone.pid}-abc123"
    live = tmp_path / f"critmin-serve-{os.getpid()}-def456"
    unknown = [tmp_path / "critmin-serve-k2j4h5g6", tmp_path / "critmin-serve-99999999", tmp_path / "other-1-x",
               tmp_path / f"critmin-serve-{'9' * 30}-x"]
    for d in (dead, live, *unknown):
        d.mkdir()
    (dead / "api.sock").write_text("")
    assert sweep_socket_dirs(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists() and all(d.exists() for d in unknown)


def test_a_spare_writer_that_died_is_replaced(tmp_path):
    """The storage writer started ahead is used by the first start, unless it died meanwhile: then a new one."""
    from critmin.server.children import spawn_writer
    from critmin.server.storage import WriterProcess

    url = f"sqlite:///{tmp_path / 'market.sqlite3'}"
    for kill in (False, True):
        proc, sock = spawn_writer()
        if kill:
            proc.kill()
            proc.wait()
        w = WriterProcess(url, spare=(proc, sock))
        w.start()
        try:
            assert w.alive and (w.proc is proc) is not kill and w.proc.poll() is None
            w.send(0, 0, None)
            assert w.receive() == ("ok", 1)
        finally:
            w.close()
        assert w.proc is None or w.proc.poll() is not None


def test_a_port_in_use_stops_the_service_with_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        s = Serve(tmp_path, busy.getsockname()[1])
        assert s.proc.wait(timeout=60) == 2
    assert "HTTP front ended" in s.log.read_text()


def test_the_storage_writer_dying_refuses_its_batch_then_restarts(served):
    """kill -9 of the writer process with a batch in flight (the process stopped first, so that the order is
    handed over and waits): that order is refused (503, not committed), memory is rebuilt from the database, a
    new writer starts, and the retry with the same key is applied once. A writer that dies idle has nothing in
    flight: the next order is simply committed by a new one."""
    import concurrent.futures

    m = _market(served)
    first = m.order("lynas", SELL)
    writer = next(p for p in _children(served.proc.pid) if _module_of(p) == "critmin.server.storage")
    os.kill(writer, signal.SIGSTOP)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(m.post, "toyota", "/v1/orders", BUY, key="after-kill")
        time.sleep(1.0)
        assert not pending.done()  # handed over, not answered: its commit waits for the stopped process
        os.kill(writer, signal.SIGKILL)
        r = pending.result(timeout=60)
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable", r.text
    assert r.headers.get("retry-after") == "1"
    r = m.post("toyota", "/v1/orders", BUY, key="after-kill")
    assert r.status_code == 201, r.text
    assert r.json()["trades"] and r.json()["trades"][0]["sell_order_id"] == first["order"]["id"]
    again = m.post("toyota", "/v1/orders", BUY, key="after-kill")
    assert again.status_code == 201 and again.headers.get("idempotency-replayed") == "true"
    second = next(p for p in _children(served.proc.pid) if _module_of(p) == "critmin.server.storage")
    assert second != writer

    os.kill(second, signal.SIGKILL)  # idle: nothing in flight
    time.sleep(0.5)
    r = m.post("lynas", "/v1/orders", SELL, key="after-idle-kill")
    assert r.status_code == 201, r.text
    orders = m.get("gao", "/v1/orders?limit=50").json()["items"]
    assert [o["id"] for o in orders if o["participant_id"] == "toyota"] == [again.json()["order"]["id"]]
    assert sum(o["id"] == r.json()["order"]["id"] for o in orders) == 1
    head = m.get("gao", "/v1/audit/head?verify=true").json()
    assert head["valid"] is True, head
    assert [p for p in _children(served.proc.pid) if _module_of(p) == "critmin.server.storage"] not in (
        [], [writer], [second])


def test_a_new_server_waits_for_the_last_writer_of_the_previous_one(tmp_path):
    """The storage writer holds its own lock for its life; a server starting on the database waits until it is
    free before loading, so a commit still in flight from a killed server cannot land after the load."""
    import threading

    from critmin.errors import ConfigError
    from critmin.server.db import ServerLock, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'market.sqlite3'}")
    held = ServerLock(engine, writer=True)
    held.acquire()
    with pytest.raises(ConfigError, match="storage writer"):
        ServerLock(engine, writer=True).wait_free(timeout=0.1)
    threading.Timer(0.3, held.release).start()
    t0 = time.monotonic()
    ServerLock(engine, writer=True).wait_free(timeout=10)
    assert 0.2 < time.monotonic() - t0 < 5
    engine.dispose()

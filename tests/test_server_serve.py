"""``critmin serve`` as shipped: one process, uvicorn serving the FastAPI app. It answers exactly as the app does in
process (TestClient), speaks HTTP/1.1 on a raw socket, bounds what a client can make it hold, stops cleanly, and
refuses to start, in one line with exit code 2, when it should not run."""

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
from loadkit import free_port, stop_server
from serverkit import BUY, SELL, database_url, open_market, populate
from test_server_reliability import _scenario

HOST = "127.0.0.1"


def _serve_cmd(data_dir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "critmin.cli.main", "serve", "--data-dir", str(data_dir), "--host", HOST,
            "--port", str(port), "--rate-limit", "0", *extra]


class Serve:
    """``critmin serve`` on SQLite in a subprocess."""

    def __init__(self, data_dir: Path, port: int | None = None, *extra: str) -> None:
        self.data_dir, self.port = data_dir, port or free_port(HOST)
        self.log = data_dir / f"serve-{self.port}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(_serve_cmd(data_dir, self.port, *extra), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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


def test_the_served_app_answers_orders_exactly_as_in_process(served, tmp_path):
    """Fast lane (placed, crossed, replayed) and every refusal handed to the routes: the same status, body and
    headers over uvicorn as from the app in process."""
    m = _market(served)
    over_http = _scenario(m)
    one = tmp_path / "one"
    one.mkdir()
    with open_market(database_url("sqlite", one), one) as m1:
        in_process = _scenario(m1)
    assert [s for s, _, _ in over_http][:4] == [201, 201, 201, 409]
    assert over_http == in_process


def test_queries_streams_and_errors_over_http(served, tmp_path):
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
        a, b = m.get("gao", "/v1/audit/export"), m1.get("gao", "/v1/audit/export")
        assert a.status_code == b.status_code == 200
        lines = a.text.splitlines()
        assert len(lines) == len(b.text.splitlines()) > 10
        assert [json.loads(x)["kind"] for x in lines] == [json.loads(x)["kind"] for x in b.text.splitlines()]
    # a body sent in chunks (no content-length) still reaches the route
    chunks = (part for part in (json.dumps({**SELL, "limit_price": "99"}).encode(),))
    r = m.client.post("/v1/orders", content=chunks, headers={**m.headers("mp"), "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    # one Date header on every answer; no server banner
    for r in (m.client.get("/health"), m.post("mp", "/v1/orders", {**SELL, "limit_price": "98"})):
        assert len(r.headers.get_list("date")) == 1 and "server" not in r.headers, r.headers


def test_headers_with_trailing_whitespace_are_accepted(served):
    """RFC 9110: a field value excludes leading and trailing whitespace. An Idempotency-Key, a token and a content
    type with a space or tab after them are the same values (the former HTTP front answered 502 here)."""
    m = _market(served)
    token = m.tokens["lynas"]
    body = json.dumps(SELL).encode()
    with socket.create_connection((HOST, served.port), timeout=10) as s:
        s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b" \t\r\n"
                  b"Idempotency-Key: ws-1 \r\nContent-Type: application/json\t\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"  \r\n\r\n" + body)
        status, _, raw = _read_answers(s, 1)[0]
    assert status == 201, raw
    again = m.client.post("/v1/orders", content=body, headers={"Authorization": f"Bearer {token}",
                                                               "Idempotency-Key": "ws-1",
                                                               "Content-Type": "application/json"})
    assert again.status_code == 201 and again.headers.get("idempotency-replayed") == "true"
    assert again.json()["order"]["id"] == json.loads(raw)["order"]["id"]


def _read_answers(sock: socket.socket, n: int, heads: frozenset[int] = frozenset()) -> list[tuple[int, dict, bytes]]:
    """Read ``n`` HTTP/1.1 answers off a raw socket: (status, headers, body); bodies by content-length or chunked,
    none for the answers numbered in ``heads`` (to HEAD requests)."""
    out = []
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


def test_http_1_1_on_a_raw_socket(served):
    m = _market(served)
    token = m.tokens["mp"]

    def connect() -> socket.socket:
        return socket.create_connection((HOST, served.port), timeout=10)

    # pipelined requests are answered in order on one keep-alive connection
    with connect() as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _read_answers(s, 3, heads=frozenset({1}))
        assert [a[0] for a in answers] == [200, 405, 404]
        assert json.loads(answers[0][2])["status"] == "ok"
    # Expect: 100-continue is answered before the body is sent
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
    # HTTP/1.0: the connection ends after the answer
    with connect() as s:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        status, headers, _ = _read_answers(s, 1)[0]
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(10) == b""
    # a malformed request and a header block over the limit: 400, then the connection closes
    for request in (b"NOT AN HTTP REQUEST\r\n\r\n", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"):
        with connect() as s:
            s.sendall(request)
            got, _, _ = _read_answers(s, 1)[0]
            assert got == 400
            assert s.recv(10) == b""
    assert httpx.get(served.base + "/health").status_code == 200


def test_a_body_over_the_limit_gets_413_before_it_is_sent(served):
    """A Content-Length over the limit is answered 413, in the service's error form, as soon as the head has
    arrived: the body is never read (here it is never even sent), and the connection is closed."""
    from critmin.server.app import MAX_BODY_BYTES

    m = _market(served)
    token = m.tokens["mp"].encode()
    with socket.create_connection((HOST, served.port), timeout=10) as s:
        s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                  b"\r\nIdempotency-Key: big-1\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(16 * 1024 * 1024).encode() + b"\r\n\r\n" + b"{")
        status, _headers, raw = _read_answers(s, 1)[0]
        assert status == 413 and json.loads(raw)["error"]["code"] == "too_large"
        assert s.recv(10) == b""  # closed: the 16 MiB are never read
    # a chunked body (no length given) is cut off once it passes the limit, while the client is still sending
    with socket.create_connection((HOST, served.port), timeout=10) as s:
        s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                  b"\r\nIdempotency-Key: big-2\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        sent = 0
        with pytest.raises(OSError):  # the server closes the connection: the send fails (reset or broken pipe)
            for _ in range(4 * MAX_BODY_BYTES // 65536):
                s.sendall(chunk)
                sent += 65536
                time.sleep(0.002)
            status, _, raw = _read_answers(s, 1)[0]  # or the answer arrives before the send notices
            assert status == 413 and json.loads(raw)["error"]["code"] == "too_large"
            raise ConnectionResetError
        assert sent < 3 * MAX_BODY_BYTES
    assert m.client.get("/health").status_code == 200


def test_connections_are_bounded(tmp_path):
    """Beyond --max-connections, a new connection's request is answered 503 at once (nothing is queued for it)."""
    s = Serve(tmp_path, None, "--max-connections", "4")
    try:
        s.wait_healthy()
        idle = [socket.create_connection((HOST, s.port), timeout=10) for _ in range(4)]
        time.sleep(0.3)
        try:
            r = httpx.get(s.base + "/health", timeout=10)
            assert r.status_code == 503
        finally:
            for c in idle:
                c.close()
        time.sleep(0.3)
        assert httpx.get(s.base + "/health", timeout=10).status_code == 200
    finally:
        s.stop()


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


def test_kill_9_leaves_nothing_that_blocks_a_restart(served):
    """One process: kill -9 takes the port with it, and the lease it leaves in the database is taken over at once
    by a restart on the same host (its owner's process is gone)."""
    m = _market(served)
    placed = m.order("lynas", SELL)
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait()
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.base + "/health", timeout=2)
    again = Serve(served.data_dir, served.port)
    try:
        again.wait_healthy(timeout=20)
        r = httpx.get(again.base + f"/v1/orders/{placed['order']['id']}", timeout=10,
                      headers={"Authorization": f"Bearer {m.tokens['lynas']}"})
        assert r.status_code == 200
    finally:
        assert again.stop() == 0


def test_sigterm_stops_cleanly(served):
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def _refused(cmd: list[str], timeout: float = 60) -> str:
    """Run ``critmin serve`` expected to refuse: exit code 2, one line on stderr, no traceback."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    return out


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        out = _refused(_serve_cmd(tmp_path, busy.getsockname()[1]))
    assert "cannot listen" in out
    assert not (tmp_path / "market.sqlite3").exists()  # refused before the database was touched


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_a_second_server_through_another_name_of_the_database_is_refused(tmp_path, link):
    """The lock is in the database: a second server on a hard link or a symbolic link to the running server's
    SQLite file is refused (exit 2, one line), and the first one goes on answering."""
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first = Serve(first_dir)
    try:
        first.wait_healthy()
        m = _market(first)
        m.order("lynas", SELL)
        target = second_dir / "market.sqlite3"
        if link == "hard":
            os.link(first_dir / "market.sqlite3", target)
        else:
            target.symlink_to(first_dir / "market.sqlite3")
        out = _refused([*_serve_cmd(second_dir, free_port(HOST)), "--db", f"sqlite:///{target}"])
        assert ("hard links" in out) if link == "hard" else ("another critmin server is running" in out
                                                              and f"pid {first.proc.pid}" in out), out
        assert m.order("toyota", BUY)["trades"]  # the first one is undisturbed
    finally:
        assert first.stop() == 0


def test_bootstrap_refuses_an_existing_token_file_before_committing(tmp_path):
    """An empty database in a folder that already has admin.token: one line, exit 2, and nothing committed (no
    participant), the file untouched. Then, with the file moved away, the start creates the admin, and the file
    holds its token (mode 0600)."""
    import sqlalchemy as sa

    token = tmp_path / "admin.token"
    token.write_text("a token of another marketplace\n")
    out = _refused(_serve_cmd(tmp_path, free_port(HOST)))
    assert "admin.token" in out and "exists" in out
    assert token.read_text() == "a token of another marketplace\n"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'market.sqlite3'}")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM participants")).scalar_one() == 0
    engine.dispose()
    token.rename(tmp_path / "old.token")
    s = Serve(tmp_path)
    try:
        s.wait_healthy()
        assert oct(token.stat().st_mode & 0o777) == "0o600"
        r = httpx.get(s.base + "/v1/me", headers={"Authorization": f"Bearer {token.read_text().strip()}"})
        assert r.status_code == 200 and r.json()["id"] == "admin"
    finally:
        s.stop()


def test_bootstrap_writes_the_file_before_the_commit(tmp_path, monkeypatch):
    """In process: the token file exists, complete, when the admin's commit runs; if writing it fails, nothing is
    committed and the error propagates."""
    from fastapi.testclient import TestClient

    from critmin.server import app as service
    from critmin.server import sequencer

    url = database_url("sqlite", tmp_path)
    token = tmp_path / "admin.token"
    seen = []
    real = sequencer.Sequencer._commit

    def commit(self, group):
        seen.append(token.exists() and len(token.read_text().strip()) > 20)
        return real(self, group)

    monkeypatch.setattr(sequencer.Sequencer, "_commit", commit)
    with TestClient(service.create_app(url, admin_token_file=token)) as c:
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {token.read_text().strip()}"}).status_code == 200
    assert seen[0] is True

    def fail(path, text):
        raise OSError(28, "No space left on device")

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setattr(service, "write_secret", fail)
    with pytest.raises(OSError, match="No space"), TestClient(service.create_app(
            database_url("sqlite", other), admin_token_file=other / "admin.token")):
        pass
    import sqlalchemy as sa

    engine = sa.create_engine(database_url("sqlite", other))
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM participants")).scalar_one() == 0
    engine.dispose()


def test_server_modules_import_without_fcntl(monkeypatch):
    """Nothing Unix-only is needed to import the service and its command (Windows has no fcntl, no Unix sockets):
    the modules import with fcntl made unavailable, in a fresh interpreter."""
    code = ("import sys; sys.modules['fcntl'] = None; sys.modules['termios'] = None\n"
            "import critmin.server.app, critmin.server.db, critmin.server.sequencer, critmin.cli.serve_cmd\n"
            "from typer.testing import CliRunner\nfrom critmin.cli.main import app\n"
            "r = CliRunner().invoke(app, ['serve', '--help'])\nassert r.exit_code == 0, r.output\nprint('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr


@pytest.mark.parametrize("which", ["-shm", "-wal", ""])
def test_an_unusable_sqlite_file_is_one_line_and_exit_2(tmp_path, which):
    """The database, its WAL or its WAL index (the -shm, which SQLite memory-maps: cut short under the mapping it
    kills the process with SIGBUS) in a state SQLite cannot write: refused at start, naming the file, one line."""
    s = Serve(tmp_path)
    s.wait_healthy()
    os.kill(s.proc.pid, signal.SIGKILL)  # leaves the -wal and -shm behind
    s.proc.wait()
    path = tmp_path / f"market.sqlite3{which}"
    assert path.exists()
    if os.geteuid() == 0 or which == "":  # permissions do not stop root: a directory in the file's place does
        saved = path.with_name(path.name + ".saved")
        path.rename(saved)
        path.mkdir()
    else:
        path.chmod(0o444)
    out = _refused(_serve_cmd(tmp_path, free_port(HOST)))
    assert str(path) in out, out


def test_the_shm_made_unwritable_while_serving_changes_nothing(served):
    """The server opens the -shm once (one mapping shared by all its connections): permissions taken away while
    it runs do not reach it; new connections (a burst of concurrent reads and writes) keep working."""
    import concurrent.futures

    m = _market(served)
    (served.data_dir / "market.sqlite3-shm").chmod(0o444)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        placed = list(pool.map(lambda i: m.post("lynas", "/v1/orders", {**SELL, "quantity": str(100 + i)}).status_code,
                               range(32)))
        read = list(pool.map(lambda i: m.get("gao", "/v1/orders?limit=5").status_code, range(32)))
    assert placed == [201] * 32 and read == [200] * 32
    assert served.proc.poll() is None


def test_the_app_mounted_in_another_opens_from_the_outer_lifespan(tmp_path):
    """A dashboard mounts the service: the outer app's lifespan opens and closes it (a mounted app's own lifespan
    is not run by the server)."""
    import contextlib

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from critmin.server.app import create_app

    token = tmp_path / "admin.token"
    inner = create_app(database_url("sqlite", tmp_path), admin_token_file=token)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        inner.state.service.open()
        try:
            yield
        finally:
            inner.state.service.close()

    outer = FastAPI(lifespan=lifespan)
    outer.mount("/market", inner)
    with TestClient(outer) as c:
        assert c.get("/market/health").json()["backend"] == "sqlite"
        me = c.get("/market/v1/me", headers={"Authorization": f"Bearer {token.read_text().strip()}"})
        assert me.status_code == 200 and me.json()["id"] == "admin"
    assert not inner.state.service.is_open


def test_a_server_whose_lease_was_taken_over_commits_nothing(tmp_path):
    """Every commit checks the lease in its own transaction: once another owner holds it (here written straight into
    the row, as a server on another host would after the lease expired), changes are refused with 503 and nothing
    reaches the database; the heartbeat reports the loss."""
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from critmin.server.app import create_app

    token = tmp_path / "admin.token"
    app = create_app(database_url("sqlite", tmp_path), admin_token_file=token)
    lost = []
    with TestClient(app) as c:
        service = app.state.service
        service.on_lease_lost = lost.append
        h = {"Authorization": f"Bearer {token.read_text().strip()}"}
        body = {"id": "p1", "name": "P", "role": "buyer", "country": "JPN"}
        assert c.post("/v1/participants", json=body, headers={**h, "Idempotency-Key": "a"}).status_code == 201
        with service.sa_engine.begin() as conn:
            conn.execute(sa.text("UPDATE server_lease SET owner = 'someone-else', host = 'elsewhere'"))
        r = c.post("/v1/participants", json={**body, "id": "p2"}, headers={**h, "Idempotency-Key": "b"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
        service.lock.ttl = 0.3  # the next heartbeat comes within 0.1 s
        service.lock.start_heartbeat(service._lease_lost)
        time.sleep(0.5)
        assert lost and "taken over" in str(lost[0])
        with service.sa_engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM participants ORDER BY id"))]
    assert ids == ["admin", "p1"]

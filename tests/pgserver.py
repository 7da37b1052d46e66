"""A PostgreSQL server for the tests.

``postgres_url()`` returns CI's server (``CRITMIN_TEST_PG_URL``, set by ``.ci/run``) or else starts a throwaway
server from the local PostgreSQL binaries (once per process, in a temporary folder, on a free loopback port,
stopped and removed at exit), or returns None when PostgreSQL is not available (``unavailable_reason()`` says
why). ``require_pg()`` is True when CI requires the database tests (``CRITMIN_REQUIRE_PG=1``): callers then fail
instead of skipping. ``fresh_database(url)`` makes a new empty database on the same server.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from loadkit import free_port

_UNSET = object()
_url: object = _UNSET
_reason = ""


def require_pg() -> bool:
    return os.environ.get("CRITMIN_REQUIRE_PG") == "1"


def unavailable_reason() -> str:
    """Why ``postgres_url()`` returned None (empty when it did not)."""
    return _reason


def postgres_url() -> str | None:
    """A ``postgresql+psycopg://`` URL of a running server's test database, or None when there is none."""
    global _url, _reason
    env = os.environ.get("CRITMIN_TEST_PG_URL")
    if env:
        return env
    if _url is _UNSET:
        try:
            _url = _start_throwaway()
        except _Unavailable as e:
            _url, _reason = None, str(e)
    return _url  # type: ignore[return-value]


def fresh_database(url: str) -> str:
    """Create a new, uniquely named, empty database on the server of ``url`` and return its URL (dropped at exit)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = f"critmin_t_{secrets.token_hex(6)}"
    _create_database(u, name)
    atexit.register(_drop_database, u, name)
    return u.set(database=name).render_as_string(hide_password=False)


# --- throwaway server -------------------------------------------------------------------------------------------


class _Unavailable(Exception):
    pass


def _bindir() -> Path | None:
    def version(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(p).parent.parent.name)) or (0,)

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")  # other systems: binaries on PATH
    return Path(initdb).parent if initdb else None


def _start_throwaway() -> str:
    try:
        import psycopg  # noqa: F401
        from sqlalchemy.engine import make_url
    except ImportError as e:
        raise _Unavailable(f"{e.name} is not installed") from None
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        raise _Unavailable("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:  # the server refuses to run as root: run it as postgres
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise _Unavailable("running as root and there is no postgres user to run the server") from None
        runuser = shutil.which("runuser")
        run_as = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]

    def run(*cmd: str | Path) -> subprocess.CompletedProcess:
        args = [str(c) for c in cmd]
        if run_as and run_as[0] == "su":
            args = [*run_as, " ".join(_quote(a) for a in args)]
        else:
            args = [*run_as, *args]
        return subprocess.run(args, capture_output=True, text=True, cwd="/", check=False)

    top = Path(tempfile.mkdtemp(prefix="critmin-pg-"))
    if owner is not None:
        os.chown(top, owner.pw_uid, owner.pw_gid)
    data, log = top / "data", top / "log"
    password = secrets.token_hex(12)
    (top / "pw").write_text(password + "\n")
    if owner is not None:
        os.chown(top / "pw", owner.pw_uid, owner.pw_gid)
    r = run(bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={top / 'pw'}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N")
    (top / "pw").unlink()
    if r.returncode != 0:
        shutil.rmtree(top, ignore_errors=True)
        raise _Unavailable(f"initdb failed: {(r.stderr or r.stdout).strip()[-500:]}")
    for _attempt in range(3):  # the free port can be taken between the check and the start
        port = free_port()
        opts = f"-p {port} -h 127.0.0.1 -k {top}"
        if os.environ.get("CRITMIN_TEST_PG_DURABLE") != "1":  # tests need no durability; benchmarks do (=1)
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        r = run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-o", opts, "start")
        if r.returncode == 0:
            break
    else:
        tail = log.read_text(errors="replace")[-500:] if log.exists() else r.stderr
        shutil.rmtree(top, ignore_errors=True)
        raise _Unavailable(f"the throwaway PostgreSQL server did not start: {tail.strip()}")

    def stop() -> None:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(top, ignore_errors=True)

    atexit.register(stop)
    u = make_url(f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres")
    _create_database(u, "critmin_test")
    return u.set(database="critmin_test").render_as_string(hide_password=False)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _conninfo(u) -> dict:
    info = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    info.update({k: v for k, v in u.query.items() if isinstance(v, str)})
    return {k: v for k, v in info.items() if v is not None}


def _create_database(u, name: str) -> None:
    import psycopg

    with psycopg.connect(**_conninfo(u), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(u, name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(**_conninfo(u), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass  # best effort: the server may be gone already

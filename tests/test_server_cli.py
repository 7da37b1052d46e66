"""critmin serve / audit verify --db from the command line; the alembic migration matches the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from serverkit import BACKENDS, BUY, SELL, database_url, open_market
from typer.testing import CliRunner

from critmin.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_matches_models(backend, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from critmin.server import db, migrate

    engine = db.make_engine(database_url(backend, tmp_path))
    assert migrate.current(engine) is None  # no schema yet
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent
    assert migrate.current(engine) == migrate.head() == migrate.file_head() == "0005"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []
    engine.dispose()


def test_a_database_at_head_is_not_handed_to_alembic(tmp_path, monkeypatch):
    """Every start upgrades the database; one already at head must not wait for alembic (~0.2 s to import): the
    files' head and the database's revision decide, and alembic's command is not called."""
    from alembic import command

    from critmin.server import db, migrate

    engine = db.make_engine(database_url("sqlite", tmp_path))
    migrate.upgrade(engine, "0001")
    calls = []
    real = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    migrate.upgrade(engine)  # 0001 -> head: alembic runs
    migrate.upgrade(engine)  # at head: it does not
    assert calls == ["head"] and migrate.current(engine) == migrate.head()
    engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0002_fills_account_balances_from_the_ledger(backend, tmp_path):
    """A database with ledger entries written at revision 0001 gets its account balances, summed exactly (decimal
    text, never floats), and the downgrade takes them away again."""
    from critmin.server import db, migrate

    engine = db.make_engine(database_url(backend, tmp_path))
    migrate.upgrade(engine, "0001")
    legs = [(0, "lynas", "USD", "0.1"), (0, "external", "USD", "-0.1"), (1, "lynas", "USD", "0.2"),
            (1, "toyota", "USD", "-0.2"), (2, "lynas", "ndpr/oxide", "-400"), (2, "toyota", "ndpr/oxide", "400")]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO postings (seq, memo) VALUES (0, 'a'), (1, 'b'), (2, 'c')"))
        for leg, (seq, owner, asset, amount) in enumerate(legs):
            conn.execute(sa.text("INSERT INTO ledger_entries (posting_seq, leg, owner, asset, amount) "
                                 "VALUES (:s, :l, :o, :a, :m)"), {"s": seq, "l": leg, "o": owner, "a": asset, "m": amount})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = {(o, a): (m, s) for o, a, m, s in conn.execute(sa.text(
            "SELECT owner, asset, amount, posting_seq FROM account_balances"))}
        assert db.balances(conn) == db.entry_sums(conn)
    assert rows == {("lynas", "USD"): ("0.3", 1), ("external", "USD"): ("-0.1", 0), ("toyota", "USD"): ("-0.2", 1),
                    ("lynas", "ndpr/oxide"): ("-400", 2), ("toyota", "ndpr/oxide"): ("400", 2)}
    migrate.downgrade(engine, "0001")
    assert migrate.current(engine) == "0001"
    assert "account_balances" not in sa.inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_audit_verify_db_detects_tampering(backend, tmp_path):
    url = database_url(backend, tmp_path)
    with open_market(url, tmp_path) as m:
        m.order("lynas", SELL)
        assert m.order("toyota", BUY)["trades"]
    r = runner.invoke(app, ["audit", "verify", "--db", url])
    assert r.exit_code == 0, r.output
    assert "chain intact" in r.output
    from critmin.server.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        else:
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        # Rewrite the quantity of the first trade in its audit record, leaving the hashes alone.
        seq, payload = conn.execute(sa.text("SELECT seq, payload FROM audit_log WHERE kind = 'order.place' "
                                            "AND payload LIKE '%\"trades\":[{%' ORDER BY seq LIMIT 1")).one()
        forged = payload.replace('"quantity":"400"', '"quantity":"40"', 1)
        assert forged != payload
        conn.execute(sa.text("UPDATE audit_log SET payload = :p WHERE seq = :s"), {"p": forged, "s": seq})
    engine.dispose()
    r = runner.invoke(app, ["audit", "verify", "--db", url])
    assert r.exit_code == 1, r.output
    assert f"INVALID at record {seq}" in r.output and "record modified" in r.output


def test_serve_refuses_bad_options(tmp_path):
    r = runner.invoke(app, ["serve", "--port", "0", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--port" in r.output
    r = runner.invoke(app, ["serve", "--rate-limit", "-1", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--rate-limit" in r.output
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 2 and "FILE or --db" in r.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_server_per_database(backend, tmp_path):
    """A second server on the same database is refused (its in-memory book would be stale); the first one's lock
    goes when it stops."""
    from fastapi.testclient import TestClient

    from critmin.errors import ConfigError
    from critmin.server.app import create_app

    url = database_url(backend, tmp_path)
    with TestClient(create_app(url)) as first:
        assert first.get("/health").status_code == 200
        with pytest.raises(ConfigError, match="another critmin server is running"), TestClient(create_app(url)):
            pass
    with TestClient(create_app(url)) as again:
        assert again.get("/health").status_code == 200


def test_serve_refuses_a_busy_or_unreachable_database(tmp_path):
    from critmin.server.db import ServerLock, make_engine

    url = f"sqlite:///{tmp_path / 'market.sqlite3'}"
    engine = make_engine(url)
    lock = ServerLock(engine)
    lock.acquire()  # as a running server holds it (this process is alive: its lease holds)
    try:
        r = runner.invoke(app, ["serve", "--db", url, "--data-dir", str(tmp_path)])
        assert r.exit_code == 2 and "another critmin server is running" in r.output
    finally:
        lock.release()
        engine.dispose()
    r = runner.invoke(app, ["serve", "--db", "postgresql://someone:secret@127.0.0.1:1/nodb", "--data-dir",
                            str(tmp_path)])
    assert r.exit_code == 2 and "cannot open the database" in r.output and "secret" not in r.output


def test_serve_refuses_a_file_that_is_no_database_in_one_line(tmp_path):
    (tmp_path / "market.sqlite3").write_text("not a database")
    r = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", "8123"])
    assert r.exit_code == 2 and "cannot open the database" in r.output and "file is not a database" in r.output
    assert "Traceback" not in r.output


def test_serve_names_the_missing_server_modules_before_starting_anything(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    r = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", "8123"])
    assert r.exit_code == 2 and "pip install 'critmin[server]'" in r.output and "missing: uvicorn" in r.output
    assert not (tmp_path / "market.sqlite3").exists()


def test_serve_refuses_a_data_dir_that_is_a_file_in_one_line(tmp_path):
    """--data-dir naming a regular file, or a folder under one: one line naming it, exit 2, no traceback."""
    f = tmp_path / "plain-file"
    f.write_text("x")
    for where in (f, f / "sub"):
        r = runner.invoke(app, ["serve", "--data-dir", str(where), "--port", "8123"])
        assert r.exit_code == 2 and "--data-dir" in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_error_messages_keep_brackets(monkeypatch):
    """A message naming the extra to install keeps its brackets (rich must not eat "[server]" as markup)."""
    import builtins

    real_import = builtins.__import__

    def no_sqlalchemy(name, *args, **kwargs):
        if name == "sqlalchemy" or name.startswith("sqlalchemy."):
            raise ImportError("No module named 'sqlalchemy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sqlalchemy)
    r = runner.invoke(app, ["audit", "verify", "--db", "sqlite:///nowhere.db"])
    assert r.exit_code == 2 and "pip install 'critmin[server]'" in r.output

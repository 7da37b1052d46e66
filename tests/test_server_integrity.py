"""The database checked against its audit log: ``critmin audit verify --db`` and ``GET /v1/audit/verify``.

A market with every kind of change (programmes, a budget raise, a tariff policy and its levy, deposits, continuous
trades with support, a call auction, a cancel, a token revoked, a replayed request) verifies clean; then each
tampering the chain alone missed (a trade's price, a reset ``support_paid``, an open lot raised from 50 kg to
1,000,000 kg, a forged admin token row, a swapped token hash, ...) is reported naming its row and column, and the
database verifies clean again once the change is undone. A starting server refuses a database whose programme
rows or support payments disagree with the log and the journal.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from serverkit import BACKENDS, BUY, SELL, database_url, open_market
from typer.testing import CliRunner

from critmin.cli.main import app as cli
from critmin.server import db, integrity


def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def verify_cli(url: str, *extra: str):
    return CliRunner().invoke(cli, ["audit", "verify", "--db", url, *extra])


def build(m) -> dict:
    """Every kind of change; returns the ids the tampering cases need."""
    ids = {}
    ok(m.post("dod", "/v1/programmes", {"id": "dod-floor", "commodity": "ndpr", "form": "oxide", "floor": "110",
                                        "budget": "5000"}), 201)
    ok(m.post("admin", "/v1/deposits", {"owner": "dod-floor", "asset": "USD", "amount": "4000"}), 201)
    ok(m.post("admin", "/v1/deposits", {"owner": "toyota", "asset": "USD", "amount": "90000"}), 201)
    ok(m.put("dod", "/v1/policies/ndpr/oxide", {"nonmarket_tariff_rate": "0.25", "nonmarket_origins": ["CHN"]}))
    # support needs an enrolled seller that holds the material, and a published reference price
    ok(m.post("lynas", "/v1/programmes/dod-floor/enrolments", {}), 201)
    ok(m.post("admin", "/v1/deposits", {"owner": "lynas", "asset": "ndpr/oxide", "amount": "1000"}), 201)
    ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": "95", "source": "hand example"}),
       201)
    ok(m.post("dod", "/v1/programmes", {"id": "dod-floor-2", "commodity": "ndpr", "form": "oxide", "floor": "100",
                                        "budget": "100"}), 201)
    ok(m.post("mp", "/v1/programmes/dod-floor-2/enrolments", {}), 201)
    ok(m.delete("mp", "/v1/programmes/dod-floor-2/enrolments/mp", **{"If-Match": '"1"'}))
    m.order("lynas", SELL, quantity="400")
    (t,) = m.order("toyota", BUY)["trades"]                      # 400 @ 95, floor 110: 6000 due, 5000 paid
    assert t["support_paid"] == "5000" and t["programme_id"] == "dod-floor"
    ids["supported_trade"] = t["id"]
    ok(m.patch("dod", "/v1/programmes/dod-floor", {"budget": "6000"}, **{"If-Match": '"1"'}))
    m.order("shenghe", SELL, origin="CHN", limit_price="80", quantity="100", attestations={})
    (lev,) = m.order("toyota", BUY, limit_price="105", quantity="100", requirements={})["trades"]
    assert lev["levy"] != "0"
    ids["levy_trade"] = lev["id"]
    ids["open_lot"] = m.order("lynas", SELL, quantity="50", limit_price="500")["order"]["id"]
    gone = m.order("mp", SELL, origin="USA", quantity="10", limit_price="400")["order"]["id"]
    ok(m.delete("mp", f"/v1/orders/{gone}", **{"If-Match": '"1"'}))
    ids["cancelled"] = gone
    # a call auction on another book, then back to continuous
    hi = {"grade": "hi"}
    ok(m.put("admin", "/v1/books/ndpr/oxide/hi", {"mode": "call"}))
    m.order("mp", SELL, origin="USA", quantity="300", limit_price="90", **hi)
    m.order("dla", BUY, quantity="200", limit_price="97", **hi)
    ok(m.post("admin", "/v1/books/ndpr/oxide/hi/auction"))
    m.order("dla", BUY, quantity="50", limit_price="96", **hi)
    ok(m.put("admin", "/v1/books/ndpr/oxide/hi", {"mode": "continuous"}, **{"If-Match": '"1"'}))
    # tokens: one issued and revoked; a request replayed with its key
    tok = ok(m.post("admin", "/v1/participants/dla/tokens", {"label": "spare"}), 201)
    ok(m.delete("admin", f"/v1/tokens/{tok['id']}"))
    ids["toyota_token"] = ok(m.get("toyota", "/v1/me"))["token_id"]
    r1 = m.post("toyota", "/v1/orders", {**BUY, "quantity": "1", "limit_price": "1"}, key="replayed")
    r2 = m.post("toyota", "/v1/orders", {**BUY, "quantity": "1", "limit_price": "1"}, key="replayed")
    assert r1.status_code == r2.status_code == 201 and r2.headers.get("Idempotency-Replayed") == "true"
    ids["admin_token"] = ok(m.get("admin", "/v1/me"))["token_id"]
    return ids


@pytest.fixture(scope="module", params=BACKENDS)
def market(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"integrity-{request.param}")
    url = database_url(request.param, tmp)
    with open_market(url, tmp, durable=False) as m:
        yield url, m, build(m)


def test_untouched_database_agrees(market):
    url, m, _ = market
    res = verify_cli(url)
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert re.match(rf"database: \d+ audit records, chain intact; \d+ rows in {len(integrity.TABLES) + 1} tables agree "
                    r"with the log", last), last
    rep = ok(m.get("gao", "/v1/audit/verify"))
    assert (rep["ok"], rep["disagreements"], rep["findings"]) == (True, 0, [])
    assert rep["rows_checked"]["orders"] >= 10 and rep["rows_checked"]["ledger_entries"] >= 20
    head = ok(m.get("gao", "/v1/audit/head"))
    assert rep["records"] == head["count"] and rep["head"] == head["head"]
    assert verify_cli(url, "--head", head["head"]).exit_code == 0
    # a head the log does not end with: truncated or appended
    res = verify_cli(url, "--head", "0" * 64)
    assert res.exit_code == 1 and "expected head" in res.output
    assert m.get("seller" if "seller" in m.tokens else "lynas", "/v1/audit/verify").status_code == 403


FORGED_SECRET = "cm_0123456789abcdef_forged"
FORGED_HASH = hashlib.sha256(FORGED_SECRET.encode()).hexdigest()


def _tampers(ids: dict) -> dict[str, tuple]:
    """case → (statements that tamper, statements that undo, [(table, key, column or None, words)])."""
    t, o, tk, p, b = db.trades, db.orders, db.tokens, db.programmes, db.account_balances
    tid, sid, lot = ids["supported_trade"], ids["levy_trade"], ids["open_lot"]
    forged = {"id": "tok_forged00000000", "participant_id": "admin", "token_hash": FORGED_HASH,
              "scopes": "admin audit read", "label": "bootstrap", "created_seq": 1, "revoked": False, "version": 1}
    return {
        "trade price": ([t.update().where(t.c.id == tid).values(price="1")],
                        [t.update().where(t.c.id == tid).values(price="95")],
                        [("trades", str(tid), "price", 'stored "1", the audit log implies "95"')]),
        "support_paid reset": ([t.update().where(t.c.id == tid).values(support_paid="0")],
                               [t.update().where(t.c.id == tid).values(support_paid="5000")],
                               [("trades", str(tid), "support_paid", 'stored "0", the audit log implies "5000"')]),
        "levy removed": ([t.update().where(t.c.id == sid).values(levy="0")],
                         [t.update().where(t.c.id == sid).values(levy="2000.00")],
                         [("trades", str(sid), "levy", 'stored "0", the audit log implies "2000.00"')]),
        "open lot raised": ([o.update().where(o.c.id == lot).values(quantity="1000000", remaining="1000000")],
                            [o.update().where(o.c.id == lot).values(quantity="50", remaining="50")],
                            [("orders", lot, "quantity", 'stored "1000000", the audit log implies "50"'),
                             ("orders", lot, "remaining", 'stored "1000000", the audit log implies "50"')]),
        "cancelled order reopened": ([o.update().where(o.c.id == ids["cancelled"]).values(status="open")],
                                     [o.update().where(o.c.id == ids["cancelled"]).values(status="cancelled")],
                                     [("orders", ids["cancelled"], "status", 'implies "cancelled"')]),
        "forged admin token": ([tk.insert().values(**forged)],
                               [tk.delete().where(tk.c.id == forged["id"])],
                               [("tokens", forged["id"], None, "no audit record behind this row")]),
        "token hash swapped": ([tk.update().where(tk.c.id == ids["toyota_token"]).values(token_hash=FORGED_HASH)],
                               None,  # undone with the hash read before
                               [("tokens", ids["toyota_token"], "token_hash", f'stored "{FORGED_HASH}"')]),
        "token scopes widened": ([tk.update().where(tk.c.id == ids["toyota_token"]).values(scopes="admin read")],
                                 [tk.update().where(tk.c.id == ids["toyota_token"]).values(scopes="read trade")],
                                 [("tokens", ids["toyota_token"], "scopes", 'implies "read trade"')]),
        "budget restored": ([p.update().where(p.c.id == "dod-floor").values(budget="1000000000")],
                            [p.update().where(p.c.id == "dod-floor").values(budget="6000")],
                            [("programmes", "dod-floor", "budget", 'stored "1000000000", the audit log implies "6000"')]),
        "balance edited": ([b.update().where(b.c.owner == "toyota", b.c.asset == "USD").values(amount="1")],
                           None,
                           [("account_balances", "toyota/USD", "amount", 'stored "1"')]),
        "trade deleted": ([t.delete().where(t.c.id == sid)], None,
                          [("trades", str(sid), None, "row missing: the audit log implies it")]),
    }


CASES = ["trade price", "support_paid reset", "levy removed", "open lot raised", "cancelled order reopened",
         "forged admin token", "token hash swapped", "token scopes widened", "budget restored", "balance edited",
         "trade deleted"]


@pytest.mark.parametrize("case", CASES)
def test_each_tampered_row_is_reported(market, case):
    url, m, ids = market
    tamper, undo, expected = _tampers(ids)[case]
    engine = db.make_engine(url)
    try:
        with engine.connect() as c:  # what the undo restores, for the cases that change a value read here
            toyota_hash = c.execute(sa.select(db.tokens.c.token_hash)
                                    .where(db.tokens.c.id == ids["toyota_token"])).scalar_one()
            balance = c.execute(sa.select(db.account_balances.c.amount).where(
                db.account_balances.c.owner == "toyota", db.account_balances.c.asset == "USD")).scalar_one()
            trade = c.execute(sa.select(db.trades).where(db.trades.c.id == ids["levy_trade"])).mappings().one()
        if undo is None:
            undo = {"token hash swapped": [db.tokens.update().where(db.tokens.c.id == ids["toyota_token"])
                                           .values(token_hash=toyota_hash)],
                    "balance edited": [db.account_balances.update().where(
                        db.account_balances.c.owner == "toyota", db.account_balances.c.asset == "USD")
                        .values(amount=balance)],
                    "trade deleted": [db.trades.insert().values(**trade)]}[case]
        with engine.begin() as c:
            for stmt in tamper:
                c.execute(stmt)
        try:
            res = verify_cli(url)
            assert res.exit_code == 1, res.output
            lines = res.output.strip().splitlines()
            assert re.match(r"database: \d+ audit records, chain intact; \d+ disagreements? with the log", lines[-1])
            rep = ok(m.get("gao", "/v1/audit/verify"))
            assert rep["ok"] is False and rep["chain_ok"] is True
            for table, key, column, words in expected:
                prefix = f"{table} {key} {column}:" if column else f"{table} {key}:"
                hits = [ln for ln in lines if ln.startswith(prefix)]
                assert hits and words in hits[0], (prefix, words, res.output)
                assert any(f["table"] == table and f["key"] == key and f["column"] == column
                           for f in rep["findings"]), rep["findings"]
            assert rep["disagreements"] == len(lines) - 1
        finally:
            with engine.begin() as c:
                for stmt in undo:
                    c.execute(stmt)
    finally:
        engine.dispose()
    res = verify_cli(url)
    assert res.exit_code == 0, res.output


def test_bad_database_is_one_line_exit_2(tmp_path):
    not_db = tmp_path / "notes.txt"
    not_db.write_text("not a database\n" * 100)
    empty = tmp_path / "empty.sqlite3"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    for url, words in ((f"sqlite:///{tmp_path / 'absent.sqlite3'}", "no database file"),
                       ("nosuchdriver://x/y", "not a database URL"),
                       (f"sqlite:///{not_db}", "cannot read the marketplace database"),
                       (f"sqlite:///{empty}", "cannot read the marketplace database")):
        res = verify_cli(url)
        assert res.exit_code == 2, (url, res.output)
        assert words in res.output and len(res.output.strip().splitlines()) == 1, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "absent.sqlite3").exists()  # verifying never creates a database


def test_every_audit_kind_the_engine_writes_has_a_verifier_entry():
    """Adding a record kind to the engine without teaching the verifier fails here."""
    from critmin.server import engine, integrity

    src = Path(engine.__file__).read_text("utf-8")
    kinds = set(re.findall(r'_(?:append_)?audit\(\s*batch,\s*"([a-z_.]+)"', src))
    assert len(kinds) >= 11
    assert kinds <= integrity.KINDS.keys(), kinds - integrity.KINDS.keys()


def test_every_table_is_checked_or_declared_not_implied():
    from critmin.server import integrity

    checked = {spec.table.name for spec in integrity.TABLES}
    assert checked.isdisjoint(integrity.NOT_IMPLIED)
    assert set(db.metadata.tables) == checked | integrity.NOT_IMPLIED


@pytest.mark.parametrize("backend", BACKENDS)
def test_startup_refuses_a_database_changed_behind_its_back(backend, tmp_path):
    """A reset support_paid or a restored budget does not give a programme its money back after a restart, and a
    forged, widened or revived token is not served: the server refuses to start, naming the row; once undone, it
    starts, with the spending the journal shows."""
    from fastapi.testclient import TestClient

    from critmin.errors import DataError
    from critmin.server.app import create_app

    url = database_url(backend, tmp_path)
    with open_market(url, tmp_path, durable=False) as m:
        ok(m.post("dod", "/v1/programmes", {"id": "dod-floor", "commodity": "ndpr", "form": "oxide",
                                            "floor": "110", "budget": "5000"}), 201)
        ok(m.post("lynas", "/v1/programmes/dod-floor/enrolments", {}), 201)
        ok(m.post("admin", "/v1/deposits", {"owner": "lynas", "asset": "ndpr/oxide", "amount": "1000"}), 201)
        ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": "95", "source": "hand"}), 201)
        m.order("lynas", SELL)
        (t,) = m.order("toyota", BUY)["trades"]
        assert t["support_paid"] == "5000"
        toyota = ok(m.get("toyota", "/v1/me"))["token_id"]
        revoked = ok(m.post("admin", "/v1/participants/dla/tokens", {"label": "old"}), 201)["id"]
        ok(m.delete("admin", f"/v1/tokens/{revoked}"))
        tokens = dict(m.tokens)
    t_, p_, tk = db.trades, db.programmes, db.tokens
    forged = {"id": "tok_forged00000000", "participant_id": "admin", "token_hash": FORGED_HASH,
              "scopes": "admin audit read", "label": "bootstrap", "created_seq": 1, "revoked": False, "version": 1}
    cases = [
        ([t_.update().where(t_.c.id == t["id"]).values(support_paid="0")],
         [t_.update().where(t_.c.id == t["id"]).values(support_paid="5000")],
         "programme dod-floor: its trades' support_paid sums to 0 USD, the ledger shows 5000 USD paid"),
        ([p_.update().where(p_.c.id == "dod-floor").values(budget="1000000")],
         [p_.update().where(p_.c.id == "dod-floor").values(budget="5000")],
         'programmes dod-floor budget: stored "1000000", the audit log implies "5000"'),
        ([tk.insert().values(**forged)], [tk.delete().where(tk.c.id == forged["id"])],
         f"tokens {forged['id']}: no audit record behind this row"),
        ([tk.update().where(tk.c.id == toyota).values(scopes="admin read trade")],
         [tk.update().where(tk.c.id == toyota).values(scopes="read trade")],
         f'tokens {toyota} scopes: stored "admin read trade", the audit log implies "read trade"'),
        ([tk.update().where(tk.c.id == revoked).values(revoked=False)],
         [tk.update().where(tk.c.id == revoked).values(revoked=True)],
         f"tokens {revoked} revoked: stored false, the audit log implies true"),
    ]
    engine = db.make_engine(url)
    try:
        for tamper, undo, words in cases:
            with engine.begin() as c:
                for stmt in tamper:
                    c.execute(stmt)
            with pytest.raises(DataError, match="disagrees with its audit log") as exc:
                with TestClient(create_app(url, durable=False)):
                    pass
            assert words in str(exc.value)
            with engine.begin() as c:
                for stmt in undo:
                    c.execute(stmt)
    finally:
        engine.dispose()
    with TestClient(create_app(url, durable=False)) as client:
        h = {"Authorization": f"Bearer {tokens['dod']}"}
        prog = ok(client.get("/v1/programmes/dod-floor", headers=h))
        assert (prog["spent"], prog["remaining_budget"]) == ("5000", "0")

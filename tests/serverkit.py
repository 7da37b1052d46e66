"""Shared helpers for the marketplace service tests: backends, a client with idempotency keys, a populated market.

``BACKENDS`` parametrises a test over SQLite and PostgreSQL; ``database_url(backend, tmp_path)`` gives an empty
database (PostgreSQL is skipped when unavailable, and fails when CI requires it). ``Market`` wraps FastAPI's
TestClient (the real app, its lifespan and its sequencer thread) and creates the usual cast of participants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pgserver import fresh_database, postgres_url, require_pg, unavailable_reason

BACKENDS = ["sqlite", "postgresql"]

#: The cast: participant id → (role, country).
CAST = {
    "lynas": ("seller", "AUS"),        # allied seller (IRMA-audited)
    "mp": ("seller", "USA"),           # second allied seller
    "shenghe": ("seller", "CHN"),      # seller from an origin the policy flags non-market
    "toyota": ("buyer", "JPN"),
    "dla": ("buyer", "USA"),           # a stockpile agency
    "dod": ("programme", "USA"),
    "meti": ("programme", "JPN"),
    "gao": ("regulator", "USA"),
}

SELL = {"side": "sell", "commodity": "ndpr", "form": "oxide", "grade": "std", "quantity": "1000",
        "limit_price": "95", "delivery_start": "2026-12-01", "delivery_end": "2027-01-31", "location": "Long Beach",
        "origin": "AUS", "attestations": {"irma_level": 75, "oecd_ddg": True}}
BUY = {**SELL, "side": "buy", "quantity": "400", "limit_price": "100", "origin": None, "attestations": {},
       "requirements": {"allied_only": True, "min_irma": 50}}


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'market.sqlite3'}"
    url = postgres_url()
    if url is None:
        if require_pg():
            pytest.fail(f"PostgreSQL required (CRITMIN_REQUIRE_PG=1) but unavailable: {unavailable_reason()}")
        pytest.skip(f"PostgreSQL unavailable: {unavailable_reason()}")
    return fresh_database(url)


_keys = itertools.count()


@dataclass
class Market:
    """A running app (TestClient) with its admin token and one token per cast member."""

    client: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, key: str | None = None, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[who]}", "Idempotency-Key": key or f"test-{next(_keys)}"}
        h.update(extra)
        return h

    def get(self, who: str, path: str, **kw):
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(self, who: str, path: str, body: Any = None, key: str | None = None, **extra):
        return self.client.post(path, json=body if body is not None else {}, headers=self.headers(who, key, **extra))

    def put(self, who: str, path: str, body: Any, key: str | None = None, **extra):
        return self.client.put(path, json=body, headers=self.headers(who, key, **extra))

    def patch(self, who: str, path: str, body: Any, key: str | None = None, **extra):
        return self.client.patch(path, json=body, headers=self.headers(who, key, **extra))

    def delete(self, who: str, path: str, key: str | None = None, **extra):
        return self.client.delete(path, headers=self.headers(who, key, **extra))

    def order(self, who: str, body: dict, **overrides) -> dict:
        r = self.post(who, "/v1/orders", {**body, **overrides})
        assert r.status_code == 201, r.text
        return r.json()


def open_market(url: str, tmp_path: Path, cast: dict[str, tuple[str, str]] | None = None, **app_kw):
    """Context manager: start the app on ``url``, bootstrap the admin, create ``cast`` with one token each."""
    from contextlib import contextmanager

    from fastapi.testclient import TestClient

    from critmin.server.app import create_app

    @contextmanager
    def _cm():
        token_file = tmp_path / f"admin-{next(_keys)}.token"
        app = create_app(url, admin_token_file=token_file, **app_kw)
        with TestClient(app) as client:
            yield populate(client, token_file.read_text().strip() if token_file.exists() else None, cast)

    return _cm()


def populate(client: Any, admin_token: str | None, cast: dict[str, tuple[str, str]] | None = None) -> Market:
    """A Market on ``client`` (TestClient, or an httpx.Client on a running server) with ``cast`` created."""
    m = Market(client)
    if admin_token is not None:
        m.tokens["admin"] = admin_token
    for pid, (role, country) in (CAST if cast is None else cast).items():
        r = m.post("admin", "/v1/participants", {"id": pid, "name": pid.upper(), "role": role, "country": country})
        assert r.status_code == 201, r.text
        r = m.post("admin", f"/v1/participants/{pid}/tokens", {"label": "test"})
        assert r.status_code == 201, r.text
        m.tokens[pid] = r.json()["token"]
    return m

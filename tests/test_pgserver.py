"""The PostgreSQL server for the database tests: CI's (CRITMIN_TEST_PG_URL) or a throwaway local one."""

from __future__ import annotations

import pytest
from pgserver import fresh_database, postgres_url, require_pg, unavailable_reason


@pytest.fixture(scope="module")
def pg_url() -> str:
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as e:
        if require_pg():
            pytest.fail(f"PostgreSQL tests required (CRITMIN_REQUIRE_PG=1) but {e.name} is not installed")
        pytest.skip(f"{e.name} is not installed")
    url = postgres_url()
    if url is None:
        if require_pg():
            pytest.fail(f"PostgreSQL tests required (CRITMIN_REQUIRE_PG=1) but no server: {unavailable_reason()}")
        pytest.skip(f"no PostgreSQL server: {unavailable_reason()}")
    return url


def test_server_answers(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_fresh_database_is_new_and_empty(pg_url):
    import sqlalchemy as sa

    first, second = fresh_database(pg_url), fresh_database(pg_url)
    assert sa.make_url(first).database != sa.make_url(second).database
    engines = [sa.create_engine(first), sa.create_engine(second)]
    try:
        with engines[0].begin() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == sa.make_url(first).database
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE t (x int)"))
        assert sa.inspect(engines[0]).get_table_names() == ["t"]
        assert sa.inspect(engines[1]).get_table_names() == []
    finally:
        for engine in engines:
            engine.dispose()

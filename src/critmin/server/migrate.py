"""Schema migrations (alembic), run programmatically: ``critmin serve`` upgrades the database to head first.

Alembic is imported only when there is something to do: it takes ~0.2 s to import, on the path of every start
and of every restart after a crash, while a database is nearly always at head already. Whether it is, is read
from the migration files' own ``revision`` / ``down_revision`` lines (:func:`file_head`; a test checks it against
alembic's answer) and the database's ``alembic_version`` table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w]+)['\"]?\s*$", re.M)


def _config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent)."""
    if revision == "head" and (head_now := file_head()) is not None and current(engine) == head_now:
        return
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Take the database back to ``revision``."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)


def current(engine: sa.Engine) -> str | None:
    """The database's revision (None: no schema yet). Alembic's ``alembic_version`` table, read directly."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # branches: alembic's own answer (it raises for several heads)
        from alembic.migration import MigrationContext

        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return rows[0] if rows else None


def head() -> str | None:
    """The newest revision, as alembic computes it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def file_head() -> str | None:
    """The newest revision from the migration files' ``revision`` / ``down_revision`` lines: the one revision no
    other revises. None when that is not one (several heads, or a file it cannot read): ask alembic."""
    revised: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found or "down_revision" not in found:
            return None
        revised[found["revision"]] = None if found["down_revision"] == "None" else found["down_revision"]
    heads = set(revised) - set(revised.values())
    return heads.pop() if len(heads) == 1 else None

"""Alembic environment: the connection is passed in by :func:`critmin.server.migrate.upgrade`."""

from alembic import context

from critmin.server.db import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI use: build an engine from sqlalchemy.url
    from critmin.server.db import make_engine

    with make_engine(config.get_main_option("sqlalchemy.url")).connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

"""server lease: which server process owns the database

Revision ID: 0005
Revises: 0004

- ``server_lease``: one row (``name = 'server'``) with the owner id, host, pid, heartbeat and expiry of the server
  that runs on the database (see ``critmin.server.db.ServerLock``). A server creates the table itself, under its
  write lock, when it takes the lease before the migrations have run; this revision then finds it there.
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table('server_lease'):
        return
    op.create_table('server_lease',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.BigInteger(), nullable=False),
    sa.Column('acquired_ms', sa.BigInteger(), nullable=False),
    sa.Column('heartbeat_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('server_lease')

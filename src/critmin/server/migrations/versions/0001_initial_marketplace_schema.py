"""initial marketplace schema

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


APPEND_ONLY = ("audit_log", "postings", "ledger_entries")


def _append_only() -> None:
    """Refuse UPDATE and DELETE on the audit log and the ledger at the database level."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION critmin_append_only() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'critmin: % is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql")
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION critmin_append_only()")
    else:
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'critmin: {table} is append-only'); END")


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('books',
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('grade', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('commodity', 'form', 'grade')
    )
    op.create_table('idempotency',
    sa.Column('participant_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('participant_id', 'key')
    )
    op.create_table('participants',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('country', sa.String(length=3), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('policies',
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('cost_inputs', sa.JSON(), nullable=True),
    sa.Column('nonmarket_tariff_rate', sa.String(length=40), nullable=True),
    sa.Column('nonmarket_reference', sa.Boolean(), nullable=False),
    sa.Column('nonmarket_origins', sa.JSON(), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('commodity', 'form')
    )
    op.create_table('postings',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('memo', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('trades',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('buy_order_id', sa.String(length=32), nullable=False),
    sa.Column('sell_order_id', sa.String(length=32), nullable=False),
    sa.Column('buyer_id', sa.String(length=64), nullable=False),
    sa.Column('seller_id', sa.String(length=64), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('grade', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.String(length=40), nullable=False),
    sa.Column('price', sa.String(length=40), nullable=False),
    sa.Column('origin', sa.String(length=3), nullable=False),
    sa.Column('nonmarket', sa.Boolean(), nullable=False),
    sa.Column('mechanism', sa.String(length=16), nullable=False),
    sa.Column('programme_id', sa.String(length=64), nullable=True),
    sa.Column('support_due', sa.String(length=40), nullable=False),
    sa.Column('support_paid', sa.String(length=40), nullable=False),
    sa.Column('support_reason', sa.String(length=200), nullable=False),
    sa.Column('levy', sa.String(length=40), nullable=False),
    sa.Column('posting_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trades_buy_order_id'), ['buy_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_programme_id'), ['programme_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_sell_order_id'), ['sell_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_seller_id'), ['seller_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('posting_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('leg', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('asset', sa.String(length=130), nullable=False),
    sa.Column('amount', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['posting_seq'], ['postings.seq'], ),
    sa.PrimaryKeyConstraint('posting_seq', 'leg')
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_owner'), ['owner'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('participant_id', sa.String(length=64), nullable=False),
    sa.Column('client_order_id', sa.String(length=64), nullable=True),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('grade', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.String(length=40), nullable=False),
    sa.Column('limit_price', sa.String(length=40), nullable=False),
    sa.Column('book_price', sa.String(length=40), nullable=False),
    sa.Column('delivery_start', sa.Date(), nullable=False),
    sa.Column('delivery_end', sa.Date(), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('origin', sa.String(length=3), nullable=True),
    sa.Column('nonmarket', sa.Boolean(), nullable=False),
    sa.Column('attestations', sa.JSON(), nullable=False),
    sa.Column('requirements', sa.JSON(), nullable=False),
    sa.Column('remaining', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_participant_id'), ['participant_id'], unique=False)

    op.create_table('programmes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('participant_id', sa.String(length=64), nullable=False),
    sa.Column('country', sa.String(length=3), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('floor', sa.String(length=40), nullable=True),
    sa.Column('cfd_strike', sa.String(length=40), nullable=True),
    sa.Column('budget', sa.String(length=40), nullable=False),
    sa.Column('eligible_origins', sa.JSON(), nullable=True),
    sa.Column('allies_only', sa.Boolean(), nullable=False),
    sa.Column('exclude_nonmarket', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_programmes_participant_id'), ['participant_id'], unique=False)

    op.create_table('tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('participant_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.String(length=400), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_participant_id'), ['participant_id'], unique=False)


    _append_only()


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_participant_id'))

    op.drop_table('tokens')
    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_programmes_participant_id'))

    op.drop_table('programmes')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_participant_id'))

    op.drop_table('orders')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_owner'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trades_seller_id'))
        batch_op.drop_index(batch_op.f('ix_trades_sell_order_id'))
        batch_op.drop_index(batch_op.f('ix_trades_programme_id'))
        batch_op.drop_index(batch_op.f('ix_trades_buyer_id'))
        batch_op.drop_index(batch_op.f('ix_trades_buy_order_id'))

    op.drop_table('trades')
    op.drop_table('postings')
    op.drop_table('policies')
    op.drop_table('participants')
    op.drop_table('idempotency')
    op.drop_table('books')
    op.drop_table('audit_log')

"""support only for enrolled sellers, settled against published fixings; book ticks

Revision ID: 0003
Revises: 0002

- ``enrolments`` (programme, seller): a programme supports only the trades of sellers enrolled in it.
- ``fixings``: reference prices per commodity/form (the market's index or an operator's benchmark), append-only
  (UPDATE and DELETE refused by triggers, as for the audit log and the ledger).
- ``programmes.max_support_per_seller`` (NULL: no cap per seller) and ``max_payback_per_seller`` (CfDs: filled
  with 0, so a CfD created before enrolments existed can charge nobody; floors: NULL).
- ``trades.reference_price`` and ``trades.fixing_id``: what a trade's support was computed against (NULL before).
- ``books.price_tick`` and ``books.quantity_tick``: NULL = the market's default ticks.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enrolments',
    sa.Column('programme_id', sa.String(length=64), nullable=False),
    sa.Column('seller_id', sa.String(length=64), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], ),
    sa.ForeignKeyConstraint(['seller_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('programme_id', 'seller_id')
    )
    op.create_table('fixings',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('price', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=True),
    sa.Column('first_trade_id', sa.BigInteger(), nullable=True),
    sa.Column('last_trade_id', sa.BigInteger(), nullable=True),
    sa.Column('trades', sa.Integer(), nullable=False),
    sa.Column('sellers', sa.Integer(), nullable=False),
    sa.Column('buyers', sa.Integer(), nullable=False),
    sa.Column('volume', sa.String(length=40), nullable=False),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_support_per_seller', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('max_payback_per_seller', sa.String(length=40), nullable=True))
    op.execute("UPDATE programmes SET max_payback_per_seller = '0' WHERE cfd_strike IS NOT NULL")
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference_price', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('fixing_id', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('books', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_tick', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('quantity_tick', sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # critmin_append_only() comes from migration 0001
        op.execute("CREATE TRIGGER fixings_append_only BEFORE UPDATE OR DELETE ON fixings "
                   "FOR EACH ROW EXECUTE FUNCTION critmin_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER fixings_no_{action.lower()} BEFORE {action} ON fixings "
                       "BEGIN SELECT RAISE(ABORT, 'critmin: fixings is append-only'); END")


def downgrade() -> None:
    with op.batch_alter_table('books', schema=None) as batch_op:
        batch_op.drop_column('quantity_tick')
        batch_op.drop_column('price_tick')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_column('fixing_id')
        batch_op.drop_column('reference_price')
    with op.batch_alter_table('programmes', schema=None) as batch_op:
        batch_op.drop_column('max_payback_per_seller')
        batch_op.drop_column('max_support_per_seller')
    op.drop_table('fixings')  # its triggers go with it
    op.drop_table('enrolments')

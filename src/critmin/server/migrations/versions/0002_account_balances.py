"""account balances kept with the ledger; indexes no query uses dropped

Revision ID: 0002
Revises: 0001

- ``account_balances`` (owner, asset) → amount: written by the transaction that appends the account's ledger
  entries, so reading an account is one look-up instead of a sum over its history. Filled here from the entries.
- ``ix_ledger_entries_owner`` goes: it only served that sum. With the participants spread over it, every batch of
  orders rewrote ~20 of its pages.
- ``ix_trades_buy_order_id`` and ``ix_trades_sell_order_id`` go: no query looks trades up by order.
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_balances',
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('asset', sa.String(length=130), nullable=False),
    sa.Column('amount', sa.String(length=40), nullable=False),
    sa.Column('posting_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('owner', 'asset')
    )
    # Amounts are decimal text: summed here exactly, not by the database (SQLite would sum them as floats).
    conn = op.get_bind()
    sums: dict[tuple[str, str], list] = {}
    for owner, asset, amount, seq in conn.execute(sa.text(
            "SELECT owner, asset, amount, posting_seq FROM ledger_entries ORDER BY posting_seq, leg")):
        acc = sums.setdefault((owner, asset), [Decimal(0), seq])
        acc[0] += Decimal(amount)
        acc[1] = seq
    if sums:
        table = sa.table('account_balances', sa.column('owner'), sa.column('asset'), sa.column('amount'),
                         sa.column('posting_seq'))
        op.bulk_insert(table, [{"owner": o, "asset": a, "amount": format(v, "f"), "posting_seq": s}
                               for (o, a), (v, s) in sorted(sums.items())])
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_owner'))
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trades_buy_order_id'))
        batch_op.drop_index(batch_op.f('ix_trades_sell_order_id'))


def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trades_sell_order_id'), ['sell_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_buy_order_id'), ['buy_order_id'], unique=False)
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_owner'), ['owner'], unique=False)
    op.drop_table('account_balances')

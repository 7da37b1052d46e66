"""decimal columns 80 characters wide

Revision ID: 0004
Revises: 0003

Every money and quantity column (exact decimal text) widens from 40 to 80 characters: with exact money a trade value
at the API's limits has 48 digits, and sums (balances, budgets spent, index volumes) more, which PostgreSQL's
VARCHAR(40) refused at commit. SQLite does not enforce the length; its tables are rebuilt to declare it (and the
append-only triggers of the ledger and the fixings made again).
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = [
    ('programmes', 'floor'),
    ('programmes', 'cfd_strike'),
    ('programmes', 'budget'),
    ('programmes', 'max_support_per_seller'),
    ('programmes', 'max_payback_per_seller'),
    ('fixings', 'price'),
    ('fixings', 'volume'),
    ('policies', 'nonmarket_tariff_rate'),
    ('books', 'price_tick'),
    ('books', 'quantity_tick'),
    ('orders', 'quantity'),
    ('orders', 'limit_price'),
    ('orders', 'book_price'),
    ('orders', 'remaining'),
    ('trades', 'quantity'),
    ('trades', 'price'),
    ('trades', 'support_due'),
    ('trades', 'support_paid'),
    ('trades', 'levy'),
    ('trades', 'reference_price'),
    ('ledger_entries', 'amount'),
    ('account_balances', 'amount'),
]


#: Append-only tables among them: SQLite rebuilds a table to change a column's type, and its triggers with it.
APPEND_ONLY = ("ledger_entries", "fixings")


def _alter(width_from: int, width_to: int) -> None:
    if op.get_bind().dialect.name == "postgresql":   # widening a VARCHAR: a catalogue change, no rewrite
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.String(width_to), existing_type=sa.String(width_from))
        return
    # SQLite does not enforce the length, but the declared schema stays the models' (a rebuild per table)
    for table in dict.fromkeys(t for t, _ in COLUMNS):
        with op.batch_alter_table(table, recreate="always") as batch:
            for t, column in COLUMNS:
                if t == table:
                    batch.alter_column(column, type_=sa.String(width_to), existing_type=sa.String(width_from))
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'critmin: {table} is append-only'); END")


def upgrade() -> None:
    _alter(40, 80)


def downgrade() -> None:
    _alter(80, 40)

"""Charge ids up to 35 characters: a charge at the PSP (PIXLIVE_PSP=apipix) has the id of
its cob's txid, which the API Pix wants 26 to 35 characters long; static codes keep 25.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("charges", "id"),
    ("events", "payment_id"),
    ("received_pix", "payment_id"),
    ("idempotency_keys", "payment_id"),
)


def _resize(length_from: int, length_to: int) -> None:
    # batch mode: a plain ALTER on PostgreSQL; on SQLite (which keeps a VARCHAR's length
    # in the schema though it never enforces it) the table is rebuilt, so that the schema
    # stays the one adapters/schema.py declares.
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column, type_=sa.String(length_to), existing_type=sa.String(length_from)
            )


def upgrade() -> None:
    _resize(25, 35)


def downgrade() -> None:
    _resize(35, 25)

"""The charge's return_url: where the payment page sends the payer back to the shop.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("charges", sa.Column("return_url", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("return_url")

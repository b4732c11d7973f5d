"""The first schema: charges, events, received Pix, API keys, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "charges",
        sa.Column("id", sa.String(25), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("paid_at", sa.BigInteger),
        sa.Column("end_to_end_id", sa.String(32)),
        sa.Column("payer", sa.Text),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("brcode", sa.Text, nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_charges_created", "charges", ["created_at", "id"])
    op.create_index("ix_charges_status_created", "charges", ["status", "created_at", "id"])
    op.create_index("ix_charges_active_expiry", "charges", ["status", "expires_at"])

    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("payment_id", sa.String(25), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_events_payment", "events", ["payment_id", "id"])

    op.create_table(
        "received_pix",
        sa.Column("end_to_end_id", sa.String(32), primary_key=True),
        sa.Column("txid", sa.String(35)),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("horario", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(25)),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_received_pix_payment", "received_pix", ["payment_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index(
        "uq_api_keys_active_name",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.BigInteger, primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.String(25), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
    op.drop_table("received_pix")
    op.drop_table("events")
    op.drop_table("charges")

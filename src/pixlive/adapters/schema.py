"""The tables, as SQLAlchemy metadata: what Alembic migrates and what the repository's SQL reads.

Times are BIGINT milliseconds since the epoch (UTC) and JSON is TEXT, so that one set of
statements serves SQLite and PostgreSQL alike.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (and so autoincrementing).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

charges = sa.Table(
    "charges",
    metadata,
    sa.Column("id", sa.String(35), primary_key=True),
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
    sa.Column("return_url", sa.Text),
    sa.Index("ix_charges_created", "created_at", "id"),
    sa.Index("ix_charges_status_created", "status", "created_at", "id"),
    sa.Index("ix_charges_active_expiry", "status", "expires_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("payment_id", sa.String(35), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_events_payment", "payment_id", "id"),
)

received_pix = sa.Table(
    "received_pix",
    metadata,
    sa.Column("end_to_end_id", sa.String(32), primary_key=True),
    sa.Column("txid", sa.String(35)),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("horario", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("payment_id", sa.String(35)),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Index("ix_received_pix_payment", "payment_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
    # A revoked key's name may be given to a new key.
    sa.Index(
        "uq_api_keys_active_name",
        "name",
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("api_key_id", sa.BigInteger, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("payment_id", sa.String(35), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Merchant webhooks (migration 0002): endpoints, one delivery per (event, endpoint) and
# each attempt at it, and how far the events have been fanned out to deliveries.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("events", sa.Text),
    sa.Column("enabled", sa.Integer, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_until", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("start_event_id", sa.BigInteger, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("failing_since", sa.BigInteger),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(32), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("msg_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger),
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("lease_owner", sa.String(32)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    sa.Index("ix_webhook_deliveries_endpoint_due", "endpoint_id", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_event", "event_id"),
    # The fan-out may read an event twice (see services/webhook_dispatch.py); redeliveries
    # and replays are deliveries of their own.
    sa.Index(
        "uq_webhook_deliveries_event",
        "event_id",
        "endpoint_id",
        unique=True,
        sqlite_where=sa.text("kind = 'event'"),
        postgresql_where=sa.text("kind = 'event'"),
    ),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "number"),
)

webhook_cursor = sa.Table(
    "webhook_cursor",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),
)

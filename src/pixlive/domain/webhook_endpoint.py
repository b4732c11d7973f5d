"""A merchant's webhook endpoint: where events go, which ones, and the secrets that sign them."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar

from pixlive.domain.events import Event

ENDPOINT_ID_PREFIX = "we_"
ROTATION_OVERLAP = timedelta(hours=24)  # the old secret signs beside the new one this long

# The types an endpoint may ask for by name (and any `refund.*`, for the refunds' events);
# None (no list) means all of them.
EVENT_TYPES = (
    "payment.created",
    "payment.paid",
    "payment.expired",
    "payment.cancelled",
    "payment.mismatch",
    "webhook_endpoint.disabled",
)
DELIVERED_PREFIXES = ("payment.", "refund.", "webhook_endpoint.")


def new_endpoint_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return ENDPOINT_ID_PREFIX + "".join(secrets.choice(alphabet) for _ in range(24))


def is_delivered(event_type: str) -> bool:
    return event_type.startswith(DELIVERED_PREFIXES)


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    description: str | None
    events: tuple[str, ...] | None
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime
    # Only events after this one are delivered: an endpoint hears of what happens once it
    # exists, and a replay reaches further back on request.
    start_event_id: int
    disabled_reason: str | None = None
    failing_since: datetime | None = None

    def wants(self, event_type: str) -> bool:
        return is_delivered(event_type) and (self.events is None or event_type in self.events)

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        if (
            self.previous_secret is not None
            and self.previous_secret_until is not None
            and now < self.previous_secret_until
        ):
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def rotated(self, new_secret: str, now: datetime) -> Endpoint:
        return replace(
            self,
            secret=new_secret,
            previous_secret=self.secret,
            previous_secret_until=now + ROTATION_OVERLAP,
            updated_at=now,
        )

    def disabled(self, reason: str, now: datetime) -> Endpoint:
        return replace(self, enabled=False, disabled_reason=reason, updated_at=now)


@dataclass(frozen=True)
class WebhookEndpointDisabled(Event):
    """Recorded in the outbox like a charge's events (payment_id empty: it is no charge's),
    so that the merchant's other endpoints and its event stream hear of it."""

    type: ClassVar[str] = "webhook_endpoint.disabled"

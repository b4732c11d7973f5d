"""pixlive's Python client: charges, waiting for a payment, the merchant's event stream,
and verifying the webhooks pixlive sends (Standard Webhooks)."""

from pixlive_client.client import AsyncPixlive, Pixlive
from pixlive_client.errors import PaymentNotCompleted, PixliveError, WebhookVerificationError
from pixlive_client.models import Charge, ChargePage, Event
from pixlive_client.webhooks import verify_webhook

__all__ = [
    "AsyncPixlive",
    "Charge",
    "ChargePage",
    "Event",
    "PaymentNotCompleted",
    "Pixlive",
    "PixliveError",
    "WebhookVerificationError",
    "verify_webhook",
]

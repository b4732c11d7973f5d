"""What the client raises."""

from __future__ import annotations


class PixliveError(Exception):
    """The server answered with an error: its HTTP status and the error's code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PaymentNotCompleted(Exception):
    """The charge became final without being paid (expired or cancelled)."""

    def __init__(self, charge_id: str, status: str) -> None:
        super().__init__(f"charge {charge_id} is {status}")
        self.charge_id = charge_id
        self.status = status


class WebhookVerificationError(Exception):
    """A webhook that is not signed by the secret, or not within the time tolerance."""

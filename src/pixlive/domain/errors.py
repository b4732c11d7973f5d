"""Errors the domain raises; entry points translate them to HTTP."""


class DomainError(Exception):
    """Base of every error the domain or the services raise on purpose."""

    code = "domain_error"


class InvalidAmount(DomainError, ValueError):
    code = "invalid_value"


class IllegalTransition(DomainError):
    code = "illegal_transition"


class ChargeNotFound(DomainError):
    code = "not_found"


class ChargeFinal(DomainError):
    """The charge is already PAID, EXPIRED or CANCELLED."""

    code = "charge_final"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"

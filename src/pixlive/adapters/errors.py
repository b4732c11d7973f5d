"""The errors the adapters raise, which the service layer defines (services/errors.py)."""

from pixlive.services.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidData,
    TransientConflict,
)

__all__ = ["Conflict", "DatabaseUnavailable", "InvalidData", "TransientConflict"]

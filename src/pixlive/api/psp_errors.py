"""The PSP's failures as the merchant sees them: 503 when it is down (retry later, with the
same Idempotency-Key), 502 when it refused what we asked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pixlive.api.errors import ApiError
from pixlive.services.psp_port import PspError, PspUnavailable

log = logging.getLogger("pixlive.psp")


@contextmanager
def psp_errors() -> Iterator[None]:
    try:
        yield
    except PspUnavailable as exc:
        log.warning("PSP unavailable: %s", exc.message)
        raise ApiError(
            503,
            "psp_unavailable",
            "the PSP (the bank) is unreachable; retry later with the same Idempotency-Key",
            {"Retry-After": "5"},
        ) from exc
    except PspError as exc:
        log.warning("PSP refused: %s", exc.message)
        raise ApiError(502, "psp_refused", exc.message) from exc

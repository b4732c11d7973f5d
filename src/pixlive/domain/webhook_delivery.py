"""A delivery's life: its status machine, the retry schedule, and what one attempt's answer
decides.

A delivery is one event for one endpoint. It stays PENDING while attempts remain; each
failed attempt schedules the next on SCHEDULE (with jitter); a 2xx makes it SUCCEEDED, the
last failure EXHAUSTED; when its endpoint is disabled or deleted the rest is CANCELLED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from pixlive.domain.errors import IllegalTransition

# Seconds to wait before each attempt: the first at once, then 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h (as Svix's schedule): about 27.6 hours in all.
SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.1  # each wait is stretched or shrunk by up to this fraction
RETRY_AFTER_LIMIT = 36000.0  # a Retry-After longer than the longest wait is cut to it
FAILING_LIMIT = timedelta(days=5)  # an endpoint failing this long is disabled
RESPONSE_KEPT = 1024  # bytes of each answer kept in the delivery log


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]


TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(
        {
            DeliveryStatus.PENDING,
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.EXHAUSTED,
            DeliveryStatus.CANCELLED,
        }
    ),
    DeliveryStatus.SUCCEEDED: frozenset(),
    DeliveryStatus.EXHAUSTED: frozenset(),
    DeliveryStatus.CANCELLED: frozenset(),
}


def check_delivery_transition(current: DeliveryStatus, target: DeliveryStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a delivery cannot go from {current} to {target}")


def retry_wait(attempts_made: int, random: Callable[[], float], scale: float = 1.0) -> float | None:
    """Seconds from a failed attempt to the next, after `attempts_made` attempts; None when
    none is left. `random()` in [0, 1) gives the jitter; `scale` shrinks the whole schedule
    (tests and demos in the sandbox)."""
    if attempts_made >= len(SCHEDULE):
        return None
    wait = SCHEDULE[attempts_made] * (1 + JITTER * (2 * random() - 1))
    return wait * scale


def retry_after(header: str | None, now: datetime) -> float | None:
    """A Retry-After header's wait in seconds (delta-seconds or an HTTP date), capped."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        seconds = float(header)
    else:
        try:
            seconds = (parsedate_to_datetime(header) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, RETRY_AFTER_LIMIT))


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # 2xx
    FAILED = "failed"  # anything else: retried while attempts remain
    GONE = "gone"  # 410: the endpoint says it no longer exists; it is disabled


def outcome_of(status_code: int | None) -> Outcome:
    if status_code is not None and 200 <= status_code < 300:
        return Outcome.SUCCEEDED
    if status_code == 410:
        return Outcome.GONE
    return Outcome.FAILED


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code, or an error that stood for it."""

    status_code: int | None
    error: str | None
    latency_ms: float
    response: str
    retry_after: str | None = None


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    outcome: Outcome
    disable_endpoint: str | None  # the reason, when the endpoint is to be disabled
    failing_since: datetime | None  # the endpoint's, after this attempt


def decide(
    *,
    attempts_made: int,
    answer: Answer,
    now: datetime,
    failing_since: datetime | None,
    random: Callable[[], float],
    scale: float = 1.0,
) -> Decision:
    """The delivery's next state after its `attempts_made`-th attempt got `answer`."""
    outcome = outcome_of(answer.status_code)
    if outcome is Outcome.SUCCEEDED:
        return Decision(DeliveryStatus.SUCCEEDED, None, outcome, None, None)
    since = failing_since or now
    if outcome is Outcome.GONE:
        return Decision(DeliveryStatus.CANCELLED, None, outcome, "gone", since)
    disable = "failing" if now - since >= FAILING_LIMIT else None
    wait = retry_wait(attempts_made, random, scale)
    if wait is None or disable:
        status = DeliveryStatus.EXHAUSTED if wait is None else DeliveryStatus.CANCELLED
        return Decision(status, None, outcome, disable, since)
    if answer.status_code in (429, 503):
        asked = retry_after(answer.retry_after, now)
        if asked is not None:
            wait = max(wait, asked * scale)
    return Decision(DeliveryStatus.PENDING, now + timedelta(seconds=wait), outcome, None, since)

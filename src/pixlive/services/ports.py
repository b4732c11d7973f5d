"""The ports of the service layer: what the use cases need of the world, as Protocols.

The adapters implement them (adapters/repository.py, adapters/sqlite.py,
adapters/postgres.py, adapters/clock.py); tests implement them in memory
(tests/unit/fakes.py). Nothing here knows SQL, a driver or a transport.

- `Clock`: the time, injected so that tests never wait for it to pass.
- `Queries`: reads outside any transaction (a page, a stream's backlog, an API key).
- `Store`: one write transaction's view, handed to the use cases of one batch by the
  writer (services/writer.py): the set-wise confirmation part (lock the charges, find the
  known endToEndIds, write the decisions) and the row-at-a-time part the other use cases
  use so far.
- `Transactions`: how the writer opens, commits and rolls back those transactions.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from pixlive.domain.charge import Charge, Status
from pixlive.domain.events import Event, RecordedEvent
from pixlive.services.records import ApiKey, IdempotencyRecord, Writes


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class Queries(Protocol):
    """Reads, each on its own consistent view; nothing here locks or writes."""

    async def get_charge(self, charge_id: str) -> Charge | None: ...

    async def list_charges(
        self,
        *,
        status: Status | None,
        before: tuple[int, str] | None,
        limit: int,
        now: datetime | None = None,
    ) -> list[Charge]: ...

    async def events_after(self, payment_id: str, after: int, limit: int) -> list[RecordedEvent]:
        """A charge's events with an id above `after`, oldest first."""
        ...

    async def all_events_after(self, after: int, limit: int) -> list[RecordedEvent]:
        """Every charge's events with an id above `after`, oldest first."""
        ...

    async def last_event_id(self) -> int:
        """The newest event's id; 0 when there is none."""
        ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None: ...

    async def list_api_keys(self) -> list[ApiKey]: ...

    async def get_idempotency(self, api_key_id: int, key: str) -> IdempotencyRecord | None: ...


class ConfirmationStore(Protocol):
    """What confirming a batch of Pix needs, set-wise: a few statements per batch."""

    async def lock_charges(self, charge_ids: Collection[str]) -> dict[str, Charge]:
        """These charges as they are now, by id (the unknown ones absent), locked against
        every other writer until the transaction ends."""
        ...

    async def known_end_to_end_ids(self, end_to_end_ids: Collection[str]) -> set[str]:
        """Those of these endToEndIds the ledger already holds."""
        ...

    async def write(self, writes: Writes) -> list[RecordedEvent]:
        """Writes the ledger rows, the events and the status changes; the events come
        back in their order, with the ids the database gave them.

        Raises `TransientConflict` (services/errors.py) when another transaction added
        one of these endToEndIds since `known_end_to_end_ids`: the writer runs the batch
        again, and the decision then sees it."""
        ...


class Repository(Protocol):
    """Row-at-a-time writes inside one transaction (create, cancel, expiry, API keys)."""

    async def get_charge(self, charge_id: str, *, for_update: bool = False) -> Charge | None: ...

    async def add_charge(self, charge: Charge) -> None: ...

    async def save_status(self, charge: Charge, *, expected: Status) -> bool:
        """Writes the charge's status only over `expected`; False if it no longer has it."""
        ...

    async def expire_due(self, now: datetime, limit: int) -> list[str]:
        """ACTIVE charges past their expiry become EXPIRED; their ids."""
        ...

    async def add_event(self, event: Event) -> RecordedEvent:
        """The event row, and its charge's `last_event_id` set to its id."""
        ...

    async def get_idempotency(self, api_key_id: int, key: str) -> IdempotencyRecord | None: ...

    async def add_idempotency(
        self, api_key_id: int, key: str, request_hash: str, payment_id: str, now: datetime
    ) -> None: ...

    async def add_api_key(self, name: str, key_hash: str, prefix: str, now: datetime) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None: ...

    async def revoke_api_key(self, name: str, now: datetime) -> bool: ...


class Store(ConfirmationStore, Repository, Protocol):
    """One write transaction's view."""


class Transaction(Protocol):
    @property
    def store(self) -> Store: ...

    async def commit(self, *, alone: bool = False) -> None:
        """Returns once the transaction is durable. `alone`: the batch is one job and no
        other waits (SQLite may then commit without a thread hand-off)."""
        ...


class Transactions(Protocol):
    """The database as the writer sees it."""

    @property
    def writers(self) -> int:
        """How many transactions may usefully be open at once (1 for SQLite)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """BEGIN on entry; on leaving without a commit (an error), ROLLBACK."""
        ...

    async def tidy(self) -> None:
        """Called between batches, with no transaction open: upkeep the database would
        otherwise do inside a COMMIT (SQLite's WAL checkpoint)."""
        ...

"""Charges at the merchant's PSP (PIXLIVE_PSP=apipix): create and cancel go through the
cob first, and the charge is written only once the PSP has it.

The PSP is called outside any transaction (a network call must not hold the writer), so a
failure between the two steps must leave nothing that only one side knows:
- the PSP refuses or is down: nothing is written; the merchant gets 502 or 503;
- the database fails after the cob was made: with an Idempotency-Key, the id (hence the
  txid) is derived from the key, so the merchant's retry names the same cob, which the
  client adopts, and one cob and one charge remain; without a key, the cob is removed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TypeVar

from pixlive import metrics
from pixlive.domain.charge import Charge
from pixlive.domain.errors import ChargeFinal, ChargeNotFound, IdempotencyConflict
from pixlive.domain.ids import cob_id_from, new_cob_id
from pixlive.services import charges
from pixlive.services.charges import Idempotency, NewCharge, Receiver
from pixlive.services.errors import DatabaseUnavailable
from pixlive.services.ports import Queries
from pixlive.services.psp_port import CobRequest, Psp, PspError
from pixlive.services.unit_of_work import UnitOfWork

log = logging.getLogger("pixlive.psp")
T = TypeVar("T")
Run = Callable[[Callable[[UnitOfWork], Awaitable[T]]], Awaitable[T]]
Read = Callable[[], AbstractAsyncContextManager[Queries]]


def cob_id(secret: str, idempotency: Idempotency | None) -> str:
    if idempotency is None:
        return new_cob_id()
    seed = hmac.new(
        secret.encode(),
        f"cob:{idempotency.api_key_id}:{idempotency.key}".encode(),
        hashlib.sha256,
    ).digest()
    return cob_id_from(seed)


async def _replayed(queries: Queries, idempotency: Idempotency) -> Charge | None:
    seen = await queries.get_idempotency(idempotency.api_key_id, idempotency.key)
    if seen is None:
        return None
    if seen.request_hash != idempotency.request_hash:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return await queries.get_charge(seen.payment_id)


async def create_at_psp(
    run: Run[tuple[Charge, bool]],
    read: Read,
    psp: Psp,
    command: NewCharge,
    receiver: Receiver,
    now: datetime,
    *,
    secret: str,
    idempotency: Idempotency | None = None,
) -> tuple[Charge, bool]:
    """The charge and whether it is new, as `charges.create_charge`; raises PspError."""
    if idempotency is not None:
        async with read() as queries:
            replay = await _replayed(queries, idempotency)
        if replay is not None:
            return replay, False
    txid = cob_id(secret, idempotency)
    started = time.perf_counter()
    cob = await psp.create_cob(
        CobRequest(
            txid=txid,
            value=command.value,
            expires_in=command.expires_in,
            chave=receiver.pix_key,
            description=command.description,
            payer=command.payer,
        )
    )
    metrics.psp_latency.labels(operation="create_cob").observe(time.perf_counter() - started)
    try:
        return await run(
            lambda uow: charges.create_charge(
                uow, command, receiver, now, idempotency, at_psp=(txid, cob.pix_copia_e_cola)
            )
        )
    except DatabaseUnavailable:
        if idempotency is None:
            # No retry can name this cob again: take it back so that nobody pays a charge
            # that pixlive has no record of.
            try:
                await psp.cancel_cob(txid)
            except PspError as exc:
                log.error("cob %s made but not recorded, and not removed: %s", txid, exc)
        raise


async def cancel_at_psp(
    run: Run[Charge], read: Read, psp: Psp, charge_id: str, now: datetime
) -> Charge:
    """Removes the cob at the PSP, then cancels the charge. A charge already final is
    refused before the PSP is asked; a charge with a static code (made before the PSP was
    connected) has no cob and is cancelled here only."""
    async with read() as queries:
        charge = await queries.get_charge(charge_id)
    if charge is None:
        raise ChargeNotFound("no charge with this id")
    effective = charge.status_at(now)
    if effective.is_final:
        raise ChargeFinal(f"the charge is already {effective}")
    if len(charge_id) > 25:
        await psp.cancel_cob(charge_id)
    return await run(lambda uow: charges.cancel_charge(uow, charge_id, now))

"""Creates charges for a benchmark before the server starts, through pixlive's own
`create_charge` use case and group-commit writer (what `POST /payments/pix` runs), in
batches: creating tens of thousands through the HTTP API would make the setup longer than
the measurement. Prints the ids, one a line.

Run with the server's environment (PIXLIVE_DATABASE_URL, ...):
    python -m bench.seed COUNT [VALUE_CENTS] > ids.txt
"""

from __future__ import annotations

import asyncio
import sys

from pixlive.adapters.database import database_from_url
from pixlive.adapters.group_commit import GroupCommitWriter
from pixlive.runtime import utcnow
from pixlive.services.charges import NewCharge, Receiver, create_charge
from pixlive.services.unit_of_work import UnitOfWork
from pixlive.settings import Settings

BATCH = 500


async def seed(count: int, value: int) -> list[str]:
    settings = Settings()
    db = database_from_url(settings.database_url)
    await db.start()
    writer = GroupCommitWriter(db, lambda events: None)
    await writer.start()
    receiver = Receiver(
        pix_key=settings.receiver_pix_key,
        name=settings.receiver_name,
        city=settings.receiver_city,
    )
    command = NewCharge(value=value, expires_in=7200)

    async def job(uow: UnitOfWork) -> str:
        charge, _ = await create_charge(uow, command, receiver, utcnow())
        return charge.id

    ids: list[str] = []
    try:
        for start in range(0, count, BATCH):
            n = min(BATCH, count - start)
            ids.extend(await asyncio.gather(*(writer.run(job) for _ in range(n))))
    finally:
        await writer.close()
        await db.close()
    return ids


def main() -> None:
    count = int(sys.argv[1])
    value = int(sys.argv[2]) if len(sys.argv) > 2 else 1234
    ids = asyncio.run(seed(count, value))
    sys.stdout.write("\n".join(ids) + ("\n" if ids else ""))


if __name__ == "__main__":
    main()

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

from pixlive.runtime import Offline
from pixlive.services.charges import NewCharge, Receiver, create_charge
from pixlive.services.unit_of_work import UnitOfWork, jobs
from pixlive.settings import Settings

BATCH = 500


async def seed(count: int, value: int) -> list[str]:
    settings = Settings()
    receiver = Receiver(
        pix_key=settings.receiver_pix_key,
        name=settings.receiver_name,
        city=settings.receiver_city,
    )
    command = NewCharge(value=value, expires_in=7200)

    async def job(uow: UnitOfWork) -> str:
        charge, _ = await create_charge(uow, command, receiver, offline.clock.now())
        return charge.id

    ids: list[str] = []
    async with Offline(settings) as offline:
        for start in range(0, count, BATCH):
            n = min(BATCH, count - start)
            ids.extend(await asyncio.gather(*(offline.writer.run(jobs, job) for _ in range(n))))
    return ids


def main() -> None:
    count = int(sys.argv[1])
    value = int(sys.argv[2]) if len(sys.argv) > 2 else 1234
    ids = asyncio.run(seed(count, value))
    sys.stdout.write("\n".join(ids) + ("\n" if ids else ""))


if __name__ == "__main__":
    main()

"""The sweep over GET /pix, with a fake PSP and a fake confirmation use case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pixlive.services.confirmation import IncomingPix, Outcome
from pixlive.services.psp_port import PixPage, PixReceived
from pixlive.services.reconcile import reconcile, window

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


class FakePsp:
    profile = "standard"

    def __init__(self, pages: list[list[PixReceived]]) -> None:
        self.pages = pages
        self.asked: list[tuple[datetime, datetime, int]] = []

    async def list_pix(self, start: datetime, end: datetime, page: int) -> PixPage:
        self.asked.append((start, end, page))
        return PixPage(self.pages[page], page, len(self.pages))


def pix(n: int) -> PixReceived:
    return PixReceived(f"E{n:031d}", f"tx{n:028d}", 100 + n, T0, {"n": n})


async def test_every_page_goes_through_the_confirmation_use_case_marked_as_reconciliation() -> None:
    psp = FakePsp([[pix(1), pix(2)], [pix(3)], [pix(4)]])
    batches: list[list[IncomingPix]] = []

    async def confirm(items: list[IncomingPix]) -> list[Outcome]:
        batches.append(items)
        return [Outcome.DUPLICATE if item.value == 102 else Outcome.PAID for item in items]

    sweep = await reconcile(psp, confirm, T0, T0 + timedelta(hours=1))  # type: ignore[arg-type]
    assert [p for _, _, p in psp.asked] == [0, 1, 2]
    assert [[i.end_to_end_id for i in b] for b in batches] == [
        [pix(1).end_to_end_id, pix(2).end_to_end_id],
        [pix(3).end_to_end_id],
        [pix(4).end_to_end_id],
    ]
    assert all(i.source == "reconciliation" for b in batches for i in b)
    assert sweep.seen == 4 and sweep.found == 3 and sweep.pages == 3


async def test_an_empty_window_asks_one_page() -> None:
    psp = FakePsp([[]])

    async def confirm(items: list[IncomingPix]) -> list[Outcome]:
        raise AssertionError("nothing to confirm")

    sweep = await reconcile(psp, confirm, T0, T0)  # type: ignore[arg-type]
    assert sweep.seen == 0 and len(psp.asked) == 1


def test_windows_overlap_and_the_first_looks_back() -> None:
    overlap, first = timedelta(minutes=2), timedelta(hours=24)
    assert window(None, T0, overlap, first) == (T0 - first, T0)
    later = T0 + timedelta(minutes=1)
    assert window(T0, later, overlap, first) == (T0 - overlap, later)

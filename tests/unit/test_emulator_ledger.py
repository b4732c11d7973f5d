"""The emulated PSP's rules, with an injected clock: expiry, payment, devolução limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pixlive.emulator.brcode import dynamic_brcode, read_brcode
from pixlive.emulator.state import CobStatus, Ledger, Pix, Problem

TXID = "a" * 26


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def ledger(clock: Clock) -> tuple[Ledger, list[Pix]]:
    notified: list[Pix] = []
    books = Ledger(
        chave="key@example.com",
        name="Loja",
        city="Recife",
        location_base="psp.example:1/x",
        brcode=lambda cob: dynamic_brcode(
            location=cob.location, name="Loja", city="Recife", amount_cents=cob.valor
        ),
        clock=clock,
    )
    books.notify = notified.append
    return books, notified


def cob_body(valor: str = "10.00", expiracao: int = 60) -> dict[str, object]:
    return {
        "calendario": {"expiracao": expiracao},
        "valor": {"original": valor},
        "chave": "key@example.com",
    }


def test_a_cob_past_its_expiry_is_removed_by_the_psp_and_cannot_be_paid() -> None:
    clock = Clock()
    books, notified = ledger(clock)
    books.put_cob(TXID, cob_body(expiracao=60))
    clock.now += timedelta(seconds=59)
    assert books.get_cob(TXID).status is CobStatus.ATIVA
    clock.now += timedelta(seconds=1)
    assert books.get_cob(TXID).status is CobStatus.REMOVIDA_PELO_PSP
    with pytest.raises(Problem) as refused:
        books.receive(valor=1000, txid=TXID)
    assert refused.value.kind == "CobOperacaoInvalida"
    assert notified == [] and books.pix == {}


def test_paying_concludes_the_cob_and_notifies_once() -> None:
    books, notified = ledger(Clock())
    books.put_cob(TXID, cob_body())
    with pytest.raises(Problem):
        books.receive(valor=999, txid=TXID)  # not the cob's value
    pix = books.receive(valor=1000, txid=TXID)
    assert books.get_cob(TXID).status is CobStatus.CONCLUIDA
    assert notified == [pix] and len(pix.end_to_end_id) == 32
    with pytest.raises(Problem):
        books.receive(valor=1000, txid=TXID)  # a concluded cob takes no second Pix


def test_a_pix_without_txid_is_kept_but_not_notified() -> None:
    books, notified = ledger(Clock())
    pix = books.receive(valor=500, txid=None)
    assert books.get_pix(pix.end_to_end_id) is pix and notified == []


def test_devolucoes_never_exceed_the_pix() -> None:
    books, notified = ledger(Clock())
    books.put_cob(TXID, cob_body())
    pix = books.receive(valor=1000, txid=TXID)
    books.put_devolucao(pix.end_to_end_id, "r1", {"valor": "7.00"})
    with pytest.raises(Problem) as over:
        books.put_devolucao(pix.end_to_end_id, "r2", {"valor": "3.01"})
    assert over.value.kind == "PixDevolucaoInvalida"
    books.settle_devolucao(pix.end_to_end_id, "r1", success=False)
    books.put_devolucao(pix.end_to_end_id, "r2", {"valor": "10.00"})  # the failed one freed it
    assert notified[-1] is pix


def test_the_dynamic_code_reads_back_with_its_location() -> None:
    code = dynamic_brcode(
        location="psp.example/qr/v2/abc", name="Padaria São João", city="Recife", amount_cents=1234
    )
    read = read_brcode(code)
    assert read.dynamic and read.location == "psp.example/qr/v2/abc"
    assert read.txid is None and read.key is None and read.amount == 1234
    assert read.name == "Padaria Sao Joao"
    with pytest.raises(ValueError, match="CRC"):
        read_brcode(code[:-1] + ("A" if code[-1] != "A" else "B"))

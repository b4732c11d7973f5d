"""The Redis bus's packing of several messages in one PUBLISH: whatever the messages, they
come out as they went in, and a damaged payload is refused rather than misread."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixlive.adapters.bus.redis import pack, unpack


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40))
def test_what_is_packed_unpacks_the_same(messages: list[bytes]) -> None:
    assert [m for payload in pack(messages) for m in unpack(payload)] == messages


def test_a_lone_message_goes_as_it_is() -> None:
    assert pack([b"p1 7 payment.paid {}"]) == [b"p1 7 payment.paid {}"]
    assert unpack(b"p1 7 payment.paid {}") == [b"p1 7 payment.paid {}"]


def test_a_long_backlog_is_split_in_order() -> None:
    messages = [bytes([65 + i % 26]) * 50_000 for i in range(20)]
    payloads = pack(messages)
    assert len(payloads) > 1
    assert all(len(p) <= 256 * 1024 + 50_010 for p in payloads)
    assert [m for p in payloads for m in unpack(p)] == messages


@pytest.mark.parametrize(
    "payload", [b"\x005:abc", b"\x00x:abc", b"\x00abc", b"\x00" + b"9" * 20 + b":a"]
)
def test_a_damaged_payload_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        unpack(payload)

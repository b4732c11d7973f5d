"""The webhook as an attacker or a broken PSP sees it, beyond tests/e2e/test_webhook.py:
replays, generated garbage that is correctly signed (so the parser is reached), a huge
delivery, odd headers; and odd path ids on every public route of a charge.

The ledger is read straight from the server's SQLite file, so "nothing recorded" means
nothing reached the table, not only that the API says so.
"""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pixlive.services.psp import new_end_to_end_id, signed_headers
from pixlive.services.signature import HEADER, sign
from tests.e2e.conftest import Server, assert_error, start_server

HORARIO = "2026-11-28T01:02:03.456Z"


@pytest.fixture(scope="module")
def sec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("security") / "server")
    try:
        yield running
    finally:
        running.stop()


def ledger(server: Server, sql: str = "SELECT count(*) FROM received_pix", *args: Any) -> Any:
    """One value read from the server's SQLite file, on a connection of our own."""
    conn = sqlite3.connect(f"file:{server.workdir / 'pixlive.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def ledger_rows(server: Server, e2e: str) -> int:
    return int(ledger(server, "SELECT count(*) FROM received_pix WHERE end_to_end_id = ?", e2e))


def paid_events(server: Server, payment_id: str) -> int:
    return int(
        ledger(
            server,
            "SELECT count(*) FROM events WHERE payment_id = ? AND type = 'payment.paid'",
            payment_id,
        )
    )


def delivery(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"pix": list(items)})


def pix(txid: str, valor: str = "12.34", e2e: str | None = None) -> dict[str, Any]:
    return {
        "endToEndId": e2e or new_end_to_end_id(),
        "txid": txid,
        "valor": valor,
        "horario": HORARIO,
    }


# Replays ---------------------------------------------------------------------------------


def test_a_delivery_replayed_within_the_tolerance_is_recorded_once(sec_server: Server) -> None:
    charge = sec_server.create_charge("12.34")
    item = pix(charge["id"])
    body = delivery(item)
    headers = signed_headers(sec_server.secret, body)  # captured once, replayed as is

    first = sec_server.webhook(body, headers)
    assert first.json()["results"][0]["outcome"] == "paid", first.text
    paid = sec_server.charge(charge["id"])
    for _ in range(3):
        again = sec_server.webhook(body, headers)
        assert again.status_code == 200, again.text
        assert again.json()["results"] == [
            {"endToEndId": item["endToEndId"], "outcome": "duplicate", "payment_id": None}
        ]
    assert sec_server.charge(charge["id"]) == paid  # no event, no change
    assert ledger_rows(sec_server, item["endToEndId"]) == 1
    assert paid_events(sec_server, charge["id"]) == 1


def test_concurrent_replays_are_recorded_once(sec_server: Server) -> None:
    charge = sec_server.create_charge("12.34")
    item = pix(charge["id"])
    body = delivery(item)
    headers = signed_headers(sec_server.secret, body)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            start.wait()
            answer = client.post(
                sec_server.url + "/payments/pix/confirmation", content=body, headers=headers
            )
        outcomes.append(answer.json()["results"][0]["outcome"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["duplicate"] * 7 + ["paid"]
    assert ledger_rows(sec_server, item["endToEndId"]) == 1
    assert paid_events(sec_server, charge["id"]) == 1


def test_a_replay_with_another_timestamp_needs_the_secret(sec_server: Server) -> None:
    """Moving a captured delivery's `t` forward (to replay it past the tolerance) breaks
    its MAC."""
    charge = sec_server.create_charge("12.34")
    body = delivery(pix(charge["id"]))
    old = int(time.time()) - 400
    captured = sign(sec_server.secret, body, old)
    moved = captured.replace(f"t={old}", f"t={int(time.time())}")
    answer = sec_server.webhook(body, {"Content-Type": "application/json", HEADER: moved})
    assert_error(answer, 401, "invalid_signature")
    assert sec_server.charge(charge["id"])["status"] == "ACTIVE"


@pytest.mark.parametrize(
    "t",
    [b"\xb2" * 10, b"\xb9\xb2\xb3", "١٧٦٤٢٩١٧٢٣".encode(), b"\xef\xbc\x91" * 10],
    ids=["superscript (latin-1)", "superscripts", "arabic-indic (utf-8)", "fullwidth (utf-8)"],
)
def test_a_timestamp_of_non_ascii_digits_is_a_401(sec_server: Server, t: bytes) -> None:
    body = delivery(pix("A" * 25))
    header: Any = b"t=" + t + b",v1=" + b"0" * 64  # raw bytes: httpx sends them as they are
    answer = sec_server.webhook(body, {"Content-Type": "application/json", HEADER: header})
    assert_error(answer, 401, "invalid_signature")


def test_a_hundred_v1_values_are_checked_without_harm(sec_server: Server) -> None:
    charge = sec_server.create_charge("12.34")
    body = delivery(pix(charge["id"]))
    right = sign(sec_server.secret, body, int(time.time()))
    wrong = ",".join(f"v1={n:064x}" for n in range(100))
    json_type = {"Content-Type": "application/json"}
    refused = sec_server.webhook(body, {**json_type, HEADER: f"{right.split(',')[0]},{wrong}"})
    assert_error(refused, 401, "invalid_signature")
    answer = sec_server.webhook(body, {**json_type, HEADER: f"{wrong},{right}"})
    assert answer.json()["results"][0]["outcome"] == "paid", answer.text


# Generated bodies, correctly signed ------------------------------------------------------

# What JSON cannot carry but a body can: bare tokens (NaN, Infinity, numbers no double
# holds) and strings that are not UTF-8. They travel as marked strings, which take their
# place once the document is written.
_MARKED = re.compile(rb'"\\u0000(raw|hex):([^"\\]*)\\u0000"')
RAW_TOKENS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "9" * 400, "-0", "0x10", "+1"]
).map(lambda token: f"\x00raw:{token}\x00")
BAD_UTF8 = st.sampled_from(["ff", "feff", "61c3", "eda080", "c0af", "f8888080"]).map(
    lambda hexed: f"\x00hex:{hexed}\x00"
)


def _unmark(match: re.Match[bytes]) -> bytes:
    kind, value = match.groups()
    return value if kind == b"raw" else b'"' + bytes.fromhex(value.decode()) + b'"'


TEXT = st.text(max_size=30)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**60), max_value=10**60),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
GARBAGE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=8,
)
VALOR = st.one_of(
    st.decimals(min_value=-(10**12), max_value=10**12, places=3).map(str),
    st.decimals(min_value=-(10**12), max_value="-0.01", places=2).map(str),
    st.integers(min_value=0, max_value=10**40).map(lambda n: f"{n}.00"),
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "1e400", "0.00", "-0.00", "1.2", "1.", ".12", "12,34"]
    ),
    st.sampled_from(["12.34\n", " 12.34", "12.34 ", "١٢.٣٤", "12.3４", "12.34\x00"]),
    RAW_TOKENS,
    NUMBERS,
    GARBAGE,
)
E2E = st.one_of(
    st.from_regex(r"[A-Za-z0-9]{0,40}", fullmatch=True),
    st.from_regex(r"E[A-Za-z0-9]{30}[^A-Za-z0-9]", fullmatch=True),
    BAD_UTF8,
    GARBAGE,
)
HORARIOS = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01T00:00:00Z"]
    ),
    TEXT,
    GARBAGE,
)


_DROP = object()


@st.composite
def pix_items(draw: st.DrawFn, txids: list[str]) -> dict[str, Any]:
    """A Pix that is right but for a few fields: each changed, dropped or left alone."""
    item: dict[str, Any] = {
        "endToEndId": draw(st.from_regex(r"E[A-Za-z0-9]{31}", fullmatch=True)),
        "txid": draw(st.sampled_from(txids)),
        "valor": "12.34",
        "horario": HORARIO,
    }
    wrong = {
        "endToEndId": E2E,
        "txid": st.one_of(TEXT, BAD_UTF8, GARBAGE),
        "valor": VALOR,
        "horario": HORARIOS,
        "infoPagador": st.one_of(TEXT, BAD_UTF8, GARBAGE),
        "componentesValor": st.one_of(GARBAGE, RAW_TOKENS),
    }
    for name in draw(st.lists(st.sampled_from(sorted(wrong)), max_size=3, unique=True)):
        value = draw(st.one_of(st.just(_DROP), wrong[name]))
        if value is _DROP:
            item.pop(name, None)
        else:
            item[name] = value
    return item


@st.composite
def bodies(draw: st.DrawFn, txids: list[str]) -> bytes:
    items = pix_items(txids)
    document = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"pix": st.one_of(items, st.lists(items, max_size=3), GARBAGE)},
                optional={"parametros": GARBAGE},
            ),
            GARBAGE,
        )
    )
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    return _MARKED.sub(_unmark, text.encode())


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=1000, max_value=5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1000, max_value=5000).map(
        lambda depth: b'{"pix":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    ),
    st.sampled_from(
        [
            b'{"pix": [{"valor": NaN}]}',
            b'{"pix": [{"valor": Infinity}]}',
            b'{"pix": [{"valor": -Infinity}]}',
            b'{"pix": [{"valor": 1e99999}]}',
            b'{"pix": [{"valor": ' + b"9" * 5000 + b"}]}",
            b'{"pix": {"endToEndId": "E' + b"\xff" * 31 + b'"}}',
            b'{"pix": [], "pix": [{}]}',
            b"\xef\xbb\xbf{}",
            b'{"pix": [{"endToEndId": "E\\u0000' + b"a" * 30 + b'"}]}',
        ]
    ),
)


@pytest.fixture(scope="module")
def txids(sec_server: Server) -> list[str]:
    return [sec_server.create_charge("12.34")["id"] for _ in range(5)] + ["Q" * 25]


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_signed_garbage_is_a_4xx_or_a_200_never_a_5xx(
    sec_server: Server, txids: list[str], data: st.DataObject
) -> None:
    body = data.draw(st.one_of(bodies(txids), RAW_BODIES), label="body")
    before = ledger(sec_server)
    answer = sec_server.webhook(body)
    after = ledger(sec_server)
    event(f"HTTP {answer.status_code}")
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        results = answer.json()["results"]
        assert results and all(
            r["outcome"] in {"paid", "duplicate", "mismatch", "unknown_txid"} for r in results
        ), results
        assert after - before == sum(r["outcome"] != "duplicate" for r in results)
    else:
        assert 400 <= answer.status_code < 500
        assert_error(answer, answer.status_code)
        assert after == before, "a refused delivery reached the ledger"


def test_ten_thousand_pix_in_one_delivery(sec_server: Server, txids: list[str]) -> None:
    items = [
        {"endToEndId": new_end_to_end_id(), "valor": "1.00", "horario": HORARIO}
        for _ in range(10_000)
    ]
    items[0] = pix(txids[0])
    body = orjson.dumps({"pix": items})
    assert len(body) < 1024 * 1024  # under the body limit: the parser itself says no
    before, charges = ledger(sec_server), sec_server.charges()
    answer = sec_server.webhook(body)
    assert_error(answer, 422, "invalid_pix")
    assert ledger(sec_server) == before
    assert sec_server.charges() == charges


# Path ids on every public route -----------------------------------------------------------

ODD_IDS = [
    "a" * 24,
    "a" * 26,
    "a" * 5000,
    "a",
    "..",
    "../..",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "a" * 24 + "%00",
    "a" * 25 + "%00",
    "a" * 25 + "%0A",
    "a" * 24 + "%C3%A9",
    "%FF" * 25,
    "a" * 12 + "%20" + "a" * 12,
]
PUBLIC_ROUTES = ["", "/qrcode.svg", "/qrcode.png", "/events", "/poll?timeout=0"]


def raw_get(server: Server, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A GET with the path sent byte for byte (httpx would resolve the dot segments)."""
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=15)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def _is_error_404(
    status: int, headers: dict[str, str], body: bytes, accept: str = "application/json"
) -> None:
    assert status == 404, (status, body[:200])
    content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
    if accept == "text/html" and content_type.startswith("text/html"):
        # A browser gets the pt-BR error page (issue 14), never the charge or a traceback.
        assert b'lang="pt-BR"' in body and b"Traceback" not in body, body[:200]
        return
    assert content_type.startswith("application/json")
    document = json.loads(body)
    assert document["error"]["code"] == "not_found", document


@pytest.mark.parametrize("payment_id", ODD_IDS, ids=lambda p: p[:30])
def test_odd_ids_are_404_on_every_public_route(sec_server: Server, payment_id: str) -> None:
    charges = sec_server.charges()
    for route in PUBLIC_ROUTES:
        for accept in ("application/json", "text/html"):
            path = f"/payments/pix/{payment_id}{route}"
            _is_error_404(*raw_get(sec_server, path, Accept=accept), accept=accept)
    # The WebSocket is answered with the same 404 before the upgrade.
    _is_error_404(*raw_get(sec_server, f"/payments/pix/{payment_id}/ws"))
    assert sec_server.charges() == charges


@pytest.mark.parametrize("payment_id", ["a" * 24, "a" * 26, "..", "%00", "a" * 25 + "%0A"])
async def test_odd_ids_are_refused_before_the_websocket_upgrade(
    sec_server: Server, payment_id: str
) -> None:
    url = sec_server.url.replace("http://", "ws://") + f"/payments/pix/{payment_id}/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=10):
            pass
    response = refused.value.response
    assert response.status_code == 404
    assert json.loads(response.body or b"{}")["error"]["code"] == "not_found"


def test_the_ledger_file_is_where_the_tests_read_it(sec_server: Server) -> None:
    """Guards the helpers above: a Pix that pays shows up in the file they read."""
    charge = sec_server.create_charge("12.34")
    e2e = new_end_to_end_id()
    assert sec_server.pay(charge["id"], "12.34", e2e).json()["results"][0]["outcome"] == "paid"
    assert ledger_rows(sec_server, e2e) == 1
    assert Path(sec_server.workdir / "pixlive.db").exists()

"""Every integer a client can send, fuzzed at and beyond the database's 64-bit edge: a list
cursor holding a 30-digit time, `?after=2**63`, `Last-Event-ID: 9223372036854775808` once
raised OverflowError in the driver (a 500). Now each is accepted when in range and refused
with a 422 and the error JSON when not, on every route, on every transport, and nothing
changes; a guard test fails when a route gains an integer parameter this file does not fuzz.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Server, assert_error
from tests.e2e.streams import ws_messages

T = TypeVar("T", bound=Callable[..., Any])
EVENT_ID_MAX = 2**63 - 1
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Integers around every edge a driver or a parser has: 0, 2**31, 2**53, 2**63, 2**64, and far.
EDGES = [0, 1, 2**31 - 1, 2**31, 2**53, 2**53 + 1, EVENT_ID_MAX, 2**63, 2**64 - 1, 2**64]
numbers = st.one_of(
    st.sampled_from(EDGES).flatmap(lambda n: st.integers(n - 2, n + 2)),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=10**29, max_value=10**30),
    st.integers(min_value=0, max_value=10_000),
)
# The texts that once overflowed, and their neighbours: tried on every parameter, every run.
EDGE_TEXTS = [
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "9" * 20,
    "1" + "0" * 29,
    "-1",
    "-9223372036854775809",
]


def edges(name: str, convert: Callable[[str], Any] = str, **others: Any) -> Callable[[T], T]:
    """Each of EDGE_TEXTS as an explicit example of the parameter `name`."""

    def apply(test: T) -> T:
        for text in EDGE_TEXTS:
            test = example(**{name: convert(text)}, **others)(test)
        return test

    return apply


# What a client may write for a number in a URL or a header, right or wrong.
texts = st.one_of(
    st.sampled_from(EDGE_TEXTS),
    numbers.map(str),
    st.sampled_from(
        ["", " 5", "5 ", "+5", "5.0", "1_000", "1e3", "0x10", "-0", "00", "٣", "²", "NaN", "inf"]
    ),
    st.text(alphabet="0123456789+-._ e", max_size=25),
)


def is_event_id(text: str) -> bool:
    """What an event id is, as docs/api.md writes it: ASCII digits, at most 2**63 - 1."""
    return bool(re.fullmatch(r"[0-9]{1,19}", text)) and int(text) <= EVENT_ID_MAX


def expect(answer: httpx.Response, valid: bool, what: str) -> None:
    if valid:
        assert answer.status_code == 200, (what, answer.status_code, answer.text)
    else:
        answer.read()
        assert_error(answer, 422)


@pytest.fixture(scope="module")
def paid(shared_server: Server) -> dict[str, Any]:
    """A paid charge: its streams answer at once (snapshot, then the end), whatever `after`."""
    charge = shared_server.create_charge("12.34")
    assert shared_server.pay(charge["id"]).status_code == 200
    return shared_server.charge(charge["id"])


@pytest.fixture
def unchanged(shared_server: Server) -> Iterator[None]:
    before = shared_server.charges()
    yield
    assert shared_server.charges() == before


# The charge's streams ------------------------------------------------------------------


@FUZZ
@edges("after")
@given(after=texts)
@pytest.mark.usefixtures("unchanged")
def test_poll_after(shared_server: Server, paid: dict[str, Any], after: str) -> None:
    answer = shared_server.http.get(
        f"/payments/pix/{paid['id']}/poll", params={"after": after, "timeout": "0"}
    )
    expect(answer, is_event_id(after), after)
    if answer.status_code == 200:
        events = answer.json()["events"]
        assert all(event["id"] > int(after) for event in events)


@FUZZ
@edges("timeout")
@given(timeout=texts | st.floats().map(str))
@pytest.mark.usefixtures("unchanged")
def test_poll_timeout(shared_server: Server, paid: dict[str, Any], timeout: str) -> None:
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = math.nan
    # Python's float() also reads "1_000" and " 5": which of those FastAPI takes is its own
    # choice; what is checked is that a number out of 0..30 never gets through, nor a 500.
    answer = shared_server.http.get(
        f"/payments/pix/{paid['id']}/poll", params={"after": "0", "timeout": timeout}
    )
    if not 0 <= seconds <= 30:
        assert_error(answer, 422)
    else:
        assert answer.status_code in (200, 422), answer.text
        if answer.status_code == 422:
            assert_error(answer, 422)


@FUZZ
@edges("after", header=True)
@edges("after", header=False)
@given(after=texts, header=st.booleans())
@pytest.mark.usefixtures("unchanged")
def test_sse_after_and_last_event_id(
    shared_server: Server, paid: dict[str, Any], after: str, header: bool
) -> None:
    url = f"{shared_server.url}/payments/pix/{paid['id']}/events"
    if header and after != after.strip():
        return  # a header's value loses its outer spaces on the wire: it is another case
    headers = {"Last-Event-ID": after.encode()} if header else {}
    params = {} if header else {"after": after}
    with shared_server.http.stream("GET", url, params=params, headers=headers) as answer:
        expect(answer, is_event_id(after), after)
        if answer.status_code == 200:
            # The paid charge's stream ends after its snapshot (and what came after `after`).
            body = answer.read().decode()
            assert body.startswith("retry:") or "event: snapshot" in body, body


@FUZZ
@edges("after")
@given(after=texts)
@pytest.mark.usefixtures("unchanged")
def test_websocket_after(shared_server: Server, paid: dict[str, Any], after: str) -> None:
    url = shared_server.url.replace("http://", "ws://") + f"/payments/pix/{paid['id']}/ws"
    query = httpx.QueryParams({"after": after})

    async def run() -> None:
        try:
            async with connect(f"{url}?{query}", open_timeout=10) as conn:
                (snapshot,) = await ws_messages(conn, 1)
                assert snapshot["type"] == "snapshot"
        except InvalidStatus as refused:
            assert not is_event_id(after) or after == "", after
            assert refused.response.status_code == 422, after
            assert b'"error"' in refused.response.body
        else:
            # An empty `after=` is dropped as a blank parameter: no resume point at all.
            assert is_event_id(after) or after == "", after

    asyncio.run(run())


# The merchant's streams and lists --------------------------------------------------------


@FUZZ
@edges("after", header=True)
@edges("after", header=False)
@given(after=texts, header=st.booleans())
@pytest.mark.usefixtures("unchanged")
def test_merchant_events_after_and_last_event_id(
    shared_server: Server, after: str, header: bool
) -> None:
    if header and after != after.strip():
        return
    headers = {**shared_server.auth, **({"Last-Event-ID": after.encode()} if header else {})}
    params = {} if header else {"after": after}
    # The merchant's stream never ends by itself: only its status and first bytes are read.
    with shared_server.http.stream("GET", "/events", params=params, headers=headers) as answer:
        expect(answer, is_event_id(after), after)


@FUZZ
@edges("cursor", limit=None)
@edges("limit", cursor=None)
@given(cursor=st.none() | texts, limit=st.none() | texts)
@pytest.mark.usefixtures("unchanged")
def test_merchant_event_list_cursor_and_limit(
    shared_server: Server, cursor: str | None, limit: str | None
) -> None:
    """`GET /events` as JSON (the list, not the stream): its cursor is an event id."""
    params = {"cursor": cursor, "limit": limit}
    answer = shared_server.http.get(
        "/events",
        params={k: v for k, v in params.items() if v is not None},
        headers={**shared_server.auth, "Accept": "application/json"},
    )
    cursor_ok = cursor is None or (is_event_id(cursor) and int(cursor) >= 1)
    limit_ok = limit is None or (re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= 200)
    if cursor_ok and limit_ok:
        assert answer.status_code == 200, answer.text
    elif not cursor_ok:
        assert_error(answer, 422)
    else:
        assert answer.status_code in (200, 422), answer.text
        if answer.status_code == 422:
            assert_error(answer, 422)


def cursor_of(created: str, charge_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created}:{charge_id}".encode()).decode().rstrip("=")


@FUZZ
@edges("created")
@given(created=texts)
@pytest.mark.usefixtures("unchanged")
def test_list_cursor(shared_server: Server, paid: dict[str, Any], created: str) -> None:
    """A cursor is ours, but base64 is no lock: one rewritten to name any time is checked."""
    answer = shared_server.http.get(
        "/payments/pix",
        params={"cursor": cursor_of(created, paid["id"])},
        headers=shared_server.auth,
    )
    in_range = bool(re.fullmatch(r"[0-9]{1,15}", created)) and int(created) <= 253402300799999
    if in_range:
        assert answer.status_code == 200, answer.text
    else:
        assert_error(answer, 422, "invalid_cursor")


@FUZZ
@edges("limit")
@given(limit=texts)
@pytest.mark.usefixtures("unchanged")
def test_list_limit(shared_server: Server, limit: str) -> None:
    answer = shared_server.http.get(
        "/payments/pix", params={"limit": limit}, headers=shared_server.auth
    )
    if re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= 100:
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) <= int(limit)
    else:
        assert answer.status_code in (200, 422), answer.text
        if answer.status_code == 422:
            assert_error(answer, 422)
        else:  # pydantic's own leniency (" 5", "5.0"): still a number from 1 to 100
            assert 1 <= float(limit) <= 100


@FUZZ
@edges("expires_in", int)
@given(expires_in=numbers | st.floats(allow_nan=False, allow_infinity=False))
def test_create_expires_in(shared_server: Server, expires_in: int | float) -> None:
    before = len(shared_server.charges())
    answer = shared_server.http.post(
        "/payments/pix",
        json={"value": "1.00", "expires_in": expires_in},
        headers=shared_server.auth,
    )
    valid = isinstance(expires_in, int) and 60 <= expires_in <= 30 * 24 * 3600
    if valid:
        assert answer.status_code == 201, answer.text
        assert len(shared_server.charges()) == before + 1
    else:
        assert_error(answer, 422)
        assert len(shared_server.charges()) == before


@pytest.fixture(scope="module")
def endpoint(shared_server: Server) -> dict[str, Any]:
    answer = shared_server.http.post(
        "/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=shared_server.auth
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


@FUZZ
@edges("cursor", limit=None)
@edges("limit", cursor="1")
@given(cursor=texts, limit=st.sampled_from([None, "1", "100"]) | texts)
def test_webhook_deliveries_cursor_and_limit(
    shared_server: Server, endpoint: dict[str, Any], cursor: str, limit: str | None
) -> None:
    params = {"cursor": cursor, **({} if limit is None else {"limit": limit})}
    answer = shared_server.http.get(
        f"/webhook-endpoints/{endpoint['id']}/deliveries", params=params, headers=shared_server.auth
    )
    cursor_ok = is_event_id(cursor)
    limit_ok = limit is None or (re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= 100)
    if cursor_ok and limit_ok:
        assert answer.status_code == 200, answer.text
    elif not cursor_ok:
        assert_error(answer, 422)
    else:
        assert answer.status_code in (200, 422), answer.text
        if answer.status_code == 422:
            assert_error(answer, 422)


@FUZZ
@edges("event_id")
@given(event_id=texts)
@pytest.mark.usefixtures("unchanged")
def test_redeliver_event_id(
    shared_server: Server, endpoint: dict[str, Any], paid: dict[str, Any], event_id: str
) -> None:
    url = f"{shared_server.url}/events/{quote(event_id, safe='')}/redeliver"
    answer = shared_server.http.post(url, headers=shared_server.auth)
    if event_id == "":
        assert_error(answer, 404)  # "/events//redeliver" is no route
    elif is_event_id(event_id):
        # The paid charge's events are there to send again; a larger id names no event.
        assert answer.status_code in (202, 404), answer.text
    else:
        assert_error(answer, 422)


# Coverage ------------------------------------------------------------------------------

# (method, path, where, name) of every integer the API reads, and where this file fuzzes it:
# a new integer parameter fails the guard below until a test here sends it its edges.
FUZZED = {
    ("get", "/payments/pix/{payment_id}/poll", "query", "after"): test_poll_after,
    ("get", "/payments/pix/{payment_id}/ws", "query", "after"): test_websocket_after,
    ("get", "/payments/pix/{payment_id}/poll", "query", "timeout"): test_poll_timeout,
    (
        "get",
        "/payments/pix/{payment_id}/events",
        "query",
        "after",
    ): test_sse_after_and_last_event_id,
    ("get", "/payments/pix/{payment_id}/events", "header", "Last-Event-ID"): (
        test_sse_after_and_last_event_id
    ),
    ("get", "/events", "query", "after"): test_merchant_events_after_and_last_event_id,
    ("get", "/events", "header", "Last-Event-ID"): test_merchant_events_after_and_last_event_id,
    ("get", "/payments/pix", "query", "limit"): test_list_limit,
    ("get", "/payments/pix", "query", "cursor"): test_list_cursor,
    ("post", "/payments/pix", "body", "expires_in"): test_create_expires_in,
    ("get", "/webhook-endpoints/{endpoint_id}/deliveries", "query", "limit"): (
        test_webhook_deliveries_cursor_and_limit
    ),
    ("get", "/webhook-endpoints/{endpoint_id}/deliveries", "query", "cursor"): (
        test_webhook_deliveries_cursor_and_limit
    ),
    ("post", "/events/{event_id}/redeliver", "path", "event_id"): test_redeliver_event_id,
}


def _numeric(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _numeric(document["components"]["schemas"][name], document)
    if schema.get("type") in ("integer", "number"):
        return True
    return any(_numeric(part, document) for part in schema.get("anyOf", []))


def _body_numbers(
    schema: dict[str, Any], document: dict[str, Any], seen: frozenset[str] = frozenset()
) -> set[str]:
    """The dotted names of the numeric fields of a request body's schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return set()
        return _body_numbers(document["components"]["schemas"][name], document, seen | {name})
    found: set[str] = set()
    for part in schema.get("anyOf", []):
        found |= _body_numbers(part, document, seen)
    for name, field in schema.get("properties", {}).items():
        if _numeric(field, document):
            found.add(name)
        found |= {f"{name}.{inner}" for inner in _body_numbers(field, document, seen)}
    return found


def test_every_integer_of_the_document_is_fuzzed_here(shared_server: Server) -> None:
    document = shared_server.http.get("/openapi.json").json()
    numeric = set()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                if _numeric(parameter.get("schema", {}), document) or "cursor" in parameter["name"]:
                    numeric.add((method, path, parameter["in"], parameter["name"]))
            for content in operation.get("requestBody", {}).get("content", {}).values():
                for name in _body_numbers(content.get("schema", {}), document):
                    numeric.add((method, path, "body", name))
    # The PSP's webhook body has no integer; `valor` is text, fuzzed in test_webhook_security.
    missing = numeric - set(FUZZED)
    assert not missing, f"integer parameters no test here fuzzes: {sorted(missing)}"

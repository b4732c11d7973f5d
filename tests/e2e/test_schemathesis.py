"""Property-based fuzzing of every operation of the OpenAPI schema, on a real server, with
the API key set, and the webhook's bodies correctly signed so that its parser is reached:
no 5xx anywhere, every JSON 4xx has the error shape, and every answer matches the schema
(documented status, content type and body). Operation by operation first, then statefully:
following the document's OpenAPI links from a created charge to what takes its id."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.strategies._internal.featureflags import FeatureFlags
from schemathesis import DataGenerationMethod
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.stateful.state_machine import _normalize_name

from pixlive.domain.charge import iso
from pixlive.services.psp import new_end_to_end_id
from pixlive.services.signature import HEADER, sign
from tests.e2e.conftest import Server

WEBHOOK = "/payments/pix/confirmation"
# Streams answer for as long as the client listens: fuzzing them would only wait.
ENDLESS = r"(/events|/ws)$"
STREAMS = r"/(events|ws|poll)$"
CREATE = "POST /payments/pix"
LINKED_FROM_CREATE = {
    "GET /payments/pix/{payment_id}",
    "POST /payments/pix/{payment_id}/cancel",
    "GET /payments/pix/{payment_id}/qrcode.svg",
    "GET /payments/pix/{payment_id}/qrcode.png",
    "GET /payments/pix/{payment_id}/poll",
}


# FastAPI writes OpenAPI 3.1, which schemathesis 3.x reads behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()


@pytest.fixture(scope="module")
def known_ids(shared_server: Server) -> list[str]:
    """A paid and an active charge, so that some cases name a charge that exists."""
    paid = shared_server.create_charge("12.34")
    assert shared_server.pay(paid["id"]).status_code == 200
    return [paid["id"], shared_server.create_charge("1.00")["id"]]


@pytest.fixture(scope="module")
def api_schema(shared_server: Server) -> Any:
    schema = schemathesis.from_uri(
        shared_server.url + "/openapi.json",
        base_url=shared_server.url,
        data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
    )
    return schema.exclude(path_regex=ENDLESS)


schema = schemathesis.from_pytest_fixture("api_schema")


def error_shape(response: requests.Response, case: Any) -> None:
    """A JSON error answer is `{"error": {"code", "message"}}`, whatever went wrong."""
    if response.status_code < 400:
        return
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}, body


def checks_for(response: requests.Response) -> tuple[Any, ...]:
    checks: tuple[Any, ...] = (not_a_server_error, error_shape)
    # uvicorn's HTTP parser refuses some generated requests (a header httptools will not
    # take) with a plain-text 400 before the application sees them; every answer of the
    # application itself must match the schema: status, content type and body.
    if not (response.status_code == 400 and response.text == "Invalid HTTP request received."):
        checks += (response_schema_conformance, content_type_conformance, status_code_conformance)
    return checks


def send(case: Any, server: Server, headers: dict[str, str]) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=server.url, headers=headers)
    if case.operation.path == WEBHOOK and "json" in kwargs:
        # Sign exactly the bytes that go out, as a PSP would: the parser is what is tested.
        body = json.dumps(kwargs.pop("json")).encode()
        kwargs["data"] = body
        kwargs["headers"] = {
            **(kwargs.get("headers") or {}),
            "Content-Type": "application/json",
            HEADER: sign(server.secret, body, int(time.time())),
        }
    return requests.request(**kwargs, timeout=30)


def test_hypothesis_can_drive_hypothesis_jsonschema() -> None:
    """hypothesis 6.170.10 dropped `many.more()`, which hypothesis-jsonschema 0.23 calls for
    every object schema: with it, every case below fails before a request is sent."""
    from hypothesis.internal.conjecture import utils

    assert hasattr(utils.many, "more"), "pin hypothesis<6.170.10 (see pyproject.toml)"


def test_the_schema_lists_the_contract(shared_server: Server) -> None:
    paths = shared_server.http.get("/openapi.json").json()["paths"]
    assert {"/payments/pix", "/payments/pix/{payment_id}", WEBHOOK} <= set(paths)
    assert "post" in paths["/payments/pix"] and "get" in paths["/payments/pix"]
    assert "post" in paths["/payments/pix/{payment_id}/cancel"]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case: Any, shared_server: Server, known_ids: list[str]) -> None:
    payment_id = (case.path_parameters or {}).get("payment_id")
    if isinstance(payment_id, str) and not re.search(STREAMS, case.operation.path):
        # Random ids are all unknown: a third of the cases name a paid, a third an active
        # charge (streams excepted: on a live charge they wait, which is not a failure).
        pick = len(payment_id) % 3
        if pick:
            case.path_parameters["payment_id"] = known_ids[pick - 1]
    response = send(case, shared_server, dict(shared_server.auth))
    case.validate_response(response, checks=checks_for(response))


def test_the_schema_links_a_created_charge_to_what_takes_its_id(shared_server: Server) -> None:
    paths = shared_server.http.get("/openapi.json").json()["paths"]
    operations = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    by_id = {"payment_id": "$response.body#/id"}
    expected = dict.fromkeys(LINKED_FROM_CREATE - {"GET /payments/pix/{payment_id}/poll"}, by_id)
    # What the charge's state already holds is no news to wait for.
    after = {**by_id, "after": "$response.body#/last_event_id"}
    expected["GET /payments/pix/{payment_id}/poll"] = after
    expected["GET /payments/pix/{payment_id}/events"] = after
    for status in ("201", "200"):
        links = paths["/payments/pix"]["post"]["responses"][status]["links"]
        found = {operations[link["operationId"]]: link["parameters"] for link in links.values()}
        assert found == expected, status
    listed = paths["/payments/pix"]["get"]["responses"]["200"]["links"]
    assert {operations[link["operationId"]] for link in listed.values()} == {
        "GET /payments/pix/{payment_id}",
        "POST /payments/pix/{payment_id}/cancel",
    }
    assert {link["parameters"]["payment_id"] for link in listed.values()} == {
        "$response.body#/data/0/id"
    }
    # The expressions point at what the answers really hold: the charge, its newest event.
    created = shared_server.create_charge("3.21")
    assert shared_server.charge(created["id"])["value"] == "3.21"
    assert isinstance(created["last_event_id"], int)
    page = shared_server.http.get("/payments/pix", headers=shared_server.auth).json()
    assert page["data"][0]["id"] == created["id"]


@pytest.fixture(scope="module")
def linked_schema(shared_server: Server) -> Any:
    """The served document, its links included, without what leads to an endless stream."""
    document = shared_server.http.get("/openapi.json").json()
    endless = {
        operation["operationId"]
        for path, methods in document["paths"].items()
        if re.search(ENDLESS, path)
        for operation in methods.values()
    }
    for methods in document["paths"].values():
        for operation in methods.values():
            for response in operation.get("responses", {}).values():
                links = response.get("links", {})
                for name in [n for n, link in links.items() if link["operationId"] in endless]:
                    del links[name]
    # The link below writes the webhook's whole body: generating one to the schema (the first
    # test's job) only costs time, and rejections that discard the chain, its calls made.
    webhook_body = document["paths"][WEBHOOK]["post"]["requestBody"]["content"]["application/json"]
    webhook_body["schema"] = {"type": "object", "maxProperties": 0}
    linked = schemathesis.from_dict(
        document,
        base_url=shared_server.url,
        # Negative data is the operation-by-operation test's: here a mutation that fails to
        # apply (hypothesis `reject()`s it) discards the whole chain, its calls already made.
        data_generation_methods=[DataGenerationMethod.positive],
    ).exclude(path_regex=ENDLESS)
    # A merchant never calls the webhook, so the served document has no such link; here it
    # is the PSP paying the charge just created, so that the chains also cross paid charges.
    for status in ("201", "200"):
        linked.add_link(
            source=linked["/payments/pix"]["POST"],
            target=linked[WEBHOOK]["POST"],
            status_code=status,
            request_body={
                "pix": [{"txid": "$response.body#/id", "valor": "$response.body#/value"}]
            },
            name="PayCharge",
        )
    return linked


def test_stateful_links_from_a_created_charge(linked_schema: Any, shared_server: Server) -> None:
    """Chains of calls that follow the links: create (or list), then read, cancel, pay, poll
    or fetch the QR codes of that very charge, with the same checks as above at each step."""
    linked: Counter[tuple[str, int]] = Counter()
    outcomes: Counter[str] = Counter()
    base: Any = linked_schema.as_state_machine()
    # schemathesis runs the operations no link leads to (create, list) only while no link can
    # be followed: one charge per chain. Creating at any step makes chains that mix charges
    # (pay one, cancel another); the list, which links to the newest charge only, stays at
    # most a chain's first step.
    entry = _normalize_name(f"{CREATE} -> X")
    (create,) = [rule for rule in base.setup_state().rules if rule.function.__name__ == entry]
    create.preconditions = ()

    class Workflow(base):
        def __init__(self) -> None:
            super().__init__()
            # Swarm testing turns rules off at random for a whole chain: with few rules valid
            # at a time, most chains then miss some link, or are rejected, their calls made,
            # when every valid rule is off. All on: each step picks among the valid rules.
            self._rules_strategy.enabled_rules_strategy = st.just(FeatureFlags())

        def setup(self) -> None:
            self.reads = 0
            # Idempotency keys are per chain: replayed by hypothesis, a chain must get the
            # same answers (a key already used answers 200 or 409 instead of 201), or its
            # valid rules differ and hypothesis stops: "inconsistent data generation".
            self.chain = uuid.uuid4().hex[:12] + "-"

        def _add_results_to_targets(self, targets: tuple[str, ...], results: list[Any]) -> None:
            # hypothesis 6.170 renamed the hook (`_add_result_to_targets`) that schemathesis
            # 3.39 overrides to put an answer only in the bundle of the links its status
            # opens: without this, every answer (a 422 too) lands in the catch-all bundle,
            # which turns the entry rules off while no link has anything to follow, and
            # hypothesis stops: "no progress can be made".
            for result in results:
                target = None if result is None else self._get_target_for_result(result)
                if target is not None:
                    super()._add_results_to_targets((target,), [result])

        def before_call(self, case: Any) -> None:
            path = case.operation.path
            for name, value in list((case.headers or {}).items()):
                if name.lower() == "idempotency-key" and isinstance(value, str):
                    case.headers[name] = (self.chain + value)[:255]
            if path.endswith("/poll"):
                # On a live charge the poll waits `timeout` (25 s unless given) for news.
                timeout = (case.query or {}).get("timeout", 25)
                if isinstance(timeout, int | float) and not isinstance(timeout, bool):
                    case.query = {**(case.query or {}), "timeout": min(timeout, 0.1)}
            if path == WEBHOOK and case.source is not None:
                # The link names the charge and its value; the PSP adds its own fields.
                now = datetime.now(UTC)
                for pix in case.body["pix"]:
                    pix.update(endToEndId=new_end_to_end_id(now), horario=iso(now))

        def call(self, case: Any, **kwargs: Any) -> requests.Response:
            headers = dict(shared_server.auth)
            if case.operation.verbose_name == "GET /payments/pix/{payment_id}":
                # Every other read without the key: the public view must match the schema too.
                self.reads += 1
                if self.reads % 2 == 0:
                    headers = {}
            return send(case, shared_server, headers)

        def after_call(self, response: requests.Response, case: Any) -> None:
            source = case.source
            if source is None or source.case.operation.verbose_name != CREATE:
                return
            charge_id = source.response.json()["id"]
            if case.operation.path == WEBHOOK:
                assert [pix["txid"] for pix in case.body["pix"]] == [charge_id]
                if response.status_code == 200:
                    outcomes.update(item["outcome"] for item in response.json()["results"])
            else:
                assert case.path_parameters["payment_id"] == charge_id
            linked[(case.operation.verbose_name, response.status_code)] += 1

        def validate_response(
            self, response: requests.Response, case: Any, additional_checks: tuple[Any, ...] = ()
        ) -> None:
            case.validate_response(
                response, checks=checks_for(response), additional_checks=additional_checks
            )

    Workflow.run(
        settings=settings(
            max_examples=60,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    print(f"{linked.total()} steps linked from a created charge: {dict(linked)}, {outcomes}")
    # The links were followed for real: each operation found the charge just created.
    found = {operation for (operation, status), count in linked.items() if status < 300}
    assert {*LINKED_FROM_CREATE, f"POST {WEBHOOK}"} <= found, linked
    # Paid, or refused as the charge was no longer ACTIVE: never an unknown charge.
    assert outcomes and set(outcomes) <= {"paid", "mismatch"}, outcomes

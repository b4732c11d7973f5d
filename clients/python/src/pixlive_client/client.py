"""The pixlive API, sync (`Pixlive`) and async (`AsyncPixlive`), on httpx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

import httpx

from pixlive_client.errors import PaymentNotCompleted, PixliveError
from pixlive_client.models import Charge, ChargePage, Event
from pixlive_client.sse import async_frames, frames

FINAL = {"PAID", "EXPIRED", "CANCELLED"}
RECONNECT_WAIT = 1.0


def _raise_for(answer: httpx.Response) -> None:
    if answer.is_success:
        return
    try:
        error = answer.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", answer.text[:200]
    raise PixliveError(answer.status_code, code, message)


def _create_body(
    value: str,
    description: str | None,
    expires_in: int | None,
    payer: dict[str, str] | None,
    metadata: dict[str, str] | None,
    return_url: str | None,
) -> dict[str, Any]:
    if not isinstance(value, str):
        raise TypeError('value is a string with two decimals, e.g. "12.34"')
    body: dict[str, Any] = {"value": value}
    for name, field in (
        ("description", description),
        ("expires_in", expires_in),
        ("payer", payer),
        ("metadata", metadata),
        ("return_url", return_url),
    ):
        if field is not None:
            body[name] = field
    return body


def _list_params(status: str | None, limit: int | None, cursor: str | None) -> dict[str, str]:
    params = {}
    if status:
        params["status"] = status
    if limit:
        params["limit"] = str(limit)
    if cursor:
        params["cursor"] = cursor
    return params


def _page(data: dict[str, Any]) -> ChargePage:
    return ChargePage([Charge.from_json(c) for c in data["data"]], data.get("next_cursor"))


def _outcome(charge_id: str, frame_event: str | None, data: dict[str, Any]) -> str | None:
    """The charge's final status if this frame says it is final."""
    if frame_event == "snapshot":
        status = str(data["payment"]["status"])
    else:
        status = str(data.get("status", ""))
    return status if status in FINAL else None


class Pixlive:
    """`Pixlive("https://pix.example.com", api_key="...")`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._auth = {"Authorization": f"Bearer {api_key}"}

    def __enter__(self) -> Pixlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_charge(
        self,
        value: str,
        *,
        description: str | None = None,
        expires_in: int | None = None,
        payer: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        return_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Charge:
        headers = dict(self._auth)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = _create_body(value, description, expires_in, payer, metadata, return_url)
        answer = self._http.post("/payments/pix", json=body, headers=headers)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    def get_charge(self, charge_id: str) -> Charge:
        answer = self._http.get(f"/payments/pix/{charge_id}", headers=self._auth)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    def list_charges(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> ChargePage:
        params = _list_params(status, limit, cursor)
        answer = self._http.get("/payments/pix", params=params, headers=self._auth)
        _raise_for(answer)
        return _page(answer.json())

    def cancel_charge(self, charge_id: str) -> Charge:
        answer = self._http.post(f"/payments/pix/{charge_id}/cancel", headers=self._auth)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    def wait_for_payment(self, charge_id: str, timeout: float) -> Charge:
        """Follows the charge's event stream until it is paid, resuming after a drop;
        PaymentNotCompleted if it expires or is cancelled, TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        last_id: str | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"charge {charge_id} not paid within {timeout:g} s")
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                with self._http.stream(
                    "GET",
                    f"/payments/pix/{charge_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(15, read=min(left, 30)),
                ) as stream:
                    if stream.status_code != 200:
                        stream.read()
                        _raise_for(stream)
                    for frame in frames(stream.iter_lines()):
                        last_id = frame.id or last_id
                        status = _outcome(charge_id, frame.event, json.loads(frame.data))
                        if status == "PAID":
                            return self.get_charge(charge_id)
                        if status is not None:
                            raise PaymentNotCompleted(charge_id, status)
                        if time.monotonic() >= deadline:
                            break
            except httpx.TransportError:
                time.sleep(min(RECONNECT_WAIT, max(0.0, deadline - time.monotonic())))


class AsyncPixlive:
    """The same API for asyncio, and the merchant's event stream as an async iterator."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self._auth = {"Authorization": f"Bearer {api_key}"}

    async def __aenter__(self) -> AsyncPixlive:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def create_charge(
        self,
        value: str,
        *,
        description: str | None = None,
        expires_in: int | None = None,
        payer: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        return_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Charge:
        headers = dict(self._auth)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = _create_body(value, description, expires_in, payer, metadata, return_url)
        answer = await self._http.post("/payments/pix", json=body, headers=headers)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    async def get_charge(self, charge_id: str) -> Charge:
        answer = await self._http.get(f"/payments/pix/{charge_id}", headers=self._auth)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    async def list_charges(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> ChargePage:
        params = _list_params(status, limit, cursor)
        answer = await self._http.get("/payments/pix", params=params, headers=self._auth)
        _raise_for(answer)
        return _page(answer.json())

    async def cancel_charge(self, charge_id: str) -> Charge:
        answer = await self._http.post(f"/payments/pix/{charge_id}/cancel", headers=self._auth)
        _raise_for(answer)
        return Charge.from_json(answer.json())

    async def wait_for_payment(self, charge_id: str, timeout: float) -> Charge:  # noqa: ASYNC109
        """As `Pixlive.wait_for_payment` (a timeout argument, as the sync one has)."""
        try:
            return await asyncio.wait_for(self._follow_until_final(charge_id), timeout)
        except TimeoutError:
            raise TimeoutError(f"charge {charge_id} not paid within {timeout:g} s") from None

    async def _follow_until_final(self, charge_id: str) -> Charge:
        last_id: str | None = None
        while True:
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                async with self._http.stream(
                    "GET",
                    f"/payments/pix/{charge_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(15, read=60),
                ) as stream:
                    if stream.status_code != 200:
                        await stream.aread()
                        _raise_for(stream)
                    async for frame in async_frames(stream.aiter_lines()):
                        last_id = frame.id or last_id
                        status = _outcome(charge_id, frame.event, json.loads(frame.data))
                        if status == "PAID":
                            return await self.get_charge(charge_id)
                        if status is not None:
                            raise PaymentNotCompleted(charge_id, status)
            except httpx.TransportError:
                await asyncio.sleep(RECONNECT_WAIT)

    async def events(
        self, *, after: int | None = None, types: Collection[str] | None = None
    ) -> AsyncIterator[Event]:
        """Every event of the merchant's charges from now (or after event `after`), live,
        reconnecting and resuming where it stopped; `types` filters them."""
        last_id = str(after) if after is not None else None
        while True:
            headers = {**self._auth, "accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                async with self._http.stream(
                    "GET", "/events", headers=headers, timeout=httpx.Timeout(15, read=60)
                ) as stream:
                    if stream.status_code != 200:
                        await stream.aread()
                        _raise_for(stream)
                    async for frame in async_frames(stream.aiter_lines()):
                        if frame.id is None:
                            continue
                        last_id = frame.id
                        event = Event.from_json(json.loads(frame.data))
                        if types is None or event.type in types:
                            yield event
            except httpx.TransportError:
                await asyncio.sleep(RECONNECT_WAIT)

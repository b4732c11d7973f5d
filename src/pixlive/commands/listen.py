"""`pixlive listen --forward-to URL`: a merchant's handler, in development, gets the events
of a pixlive server as webhooks, without a public URL: this follows the merchant's event
stream (SSE, resuming from the last event id after a drop) and posts each event to the local
URL, signed as the server's webhooks are, with a secret printed at the start."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import orjson

from pixlive.domain.webhook_signing import new_secret, signed_headers
from pixlive.services.webhook_payload import msg_id, payload
from pixlive.services.webhook_ports import OutboxEvent


def register(commands: Any) -> None:
    listen = commands.add_parser(
        "listen", help="forward the merchant's events, signed, to a local URL"
    )
    listen.add_argument("--forward-to", required=True, help="e.g. http://localhost:3000/hooks")
    listen.add_argument("--events", help="only these types, comma-separated")
    listen.add_argument("--url", help="the pixlive server (default: PIXLIVE_PUBLIC_URL)")
    listen.add_argument("--api-key", required=True, help="a merchant API key")
    listen.add_argument("--secret", help="sign with this whsec_ secret (default: a new one)")
    listen.set_defaults(run=run)


def _event(frame: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        id=int(frame["id"]),
        type=str(frame["type"]),
        payment_id=str(frame.get("payment_id") or ""),
        status=str(frame.get("status") or ""),
        at=datetime.fromisoformat(str(frame["at"]).replace("Z", "+00:00")),
        data=dict(frame.get("data") or {}),
    )


def run(args: argparse.Namespace, settings: Any) -> int:
    key: str = args.api_key
    base = (args.url or settings.base_url).rstrip("/")
    wanted = {t.strip() for t in args.events.split(",") if t.strip()} if args.events else None
    secret = args.secret or new_secret()
    print(f"Your webhook signing secret is {secret}", flush=True)
    auth = {"Authorization": f"Bearer {key}"}
    last_id: str | None = None
    with httpx.Client(timeout=httpx.Timeout(15, read=60), trust_env=False) as client:
        while True:
            headers = {**auth, "accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                with client.stream("GET", f"{base}/events", headers=headers) as stream:
                    if stream.status_code != 200:
                        stream.read()
                        print(f"pixlive: {base}/events: {stream.status_code} {stream.text}")
                        return 1
                    print(f"Ready: forwarding {base}'s events to {args.forward_to}", flush=True)
                    for frame in _frames(stream.iter_lines()):
                        last_id = str(frame["id"])
                        if wanted is None or frame["type"] in wanted:
                            _forward(client, base, auth, args.forward_to, secret, frame)
            except httpx.HTTPError as exc:
                print(f"pixlive: stream lost ({exc}); reconnecting", file=sys.stderr, flush=True)
                time.sleep(1)
            except KeyboardInterrupt:
                return 0


def _frames(lines: Any) -> Any:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            yield orjson.loads("\n".join(data))
            data = []


def _forward(
    client: httpx.Client,
    base: str,
    auth: dict[str, str],
    target: str,
    secret: str,
    frame: dict[str, Any],
) -> None:
    event = _event(frame)
    charge = None
    if event.payment_id:
        answer = client.get(f"{base}/payments/pix/{event.payment_id}", headers=auth)
        charge = answer.json() if answer.status_code == 200 else None
    body = payload(event, charge)
    headers = signed_headers([secret], msg_id(event.id), int(time.time()), body)
    try:
        answer = client.post(target, content=body, headers=headers)
        outcome = str(answer.status_code)
    except httpx.HTTPError as exc:
        outcome = f"failed: {exc}"
    print(f"{frame['at']}  {event.type:<26} {msg_id(event.id)}  → {outcome}", flush=True)

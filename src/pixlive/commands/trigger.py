"""`pixlive trigger payment.paid`: a sandbox charge that goes through the event asked for,
so that a merchant's webhook handler (or `pixlive listen`) gets a real one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from pixlive.services.psp import signed_headers, webhook_body

TRIGGERS = ("payment.created", "payment.paid", "payment.cancelled", "payment.mismatch")


def register(commands: Any) -> None:
    trigger = commands.add_parser(
        "trigger", help="make a sandbox charge go through an event (e.g. payment.paid)"
    )
    trigger.add_argument("event", choices=TRIGGERS)
    trigger.add_argument("--url", help="the pixlive server (default: PIXLIVE_PUBLIC_URL)")
    trigger.add_argument("--api-key", required=True, help="a merchant API key")
    trigger.add_argument("--value", default="1.00", help="the charge's value (default 1.00)")
    trigger.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Any) -> int:
    key: str = args.api_key
    base = (args.url or settings.base_url).rstrip("/")
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base, timeout=15, trust_env=False) as client:
            created = client.post(
                "/payments/pix",
                json={"value": args.value, "description": f"pixlive trigger {args.event}"},
                headers=auth,
            )
            if created.status_code != 201:
                print(f"pixlive: {created.status_code} {created.text}", file=sys.stderr)
                return 1
            charge_id = created.json()["id"]
            answer: httpx.Response | None = None
            if args.event == "payment.cancelled":
                answer = client.post(f"/payments/pix/{charge_id}/cancel", headers=auth)
            elif args.event in ("payment.paid", "payment.mismatch"):
                valor = args.value if args.event == "payment.paid" else _other(args.value)
                body = webhook_body(charge_id, valor)
                params = {"hmac": settings.secret} if settings.webhook_auth == "token" else {}
                answer = client.post(
                    "/payments/pix/confirmation",
                    content=body,
                    headers=signed_headers(settings.secret, body),
                    params=params,
                )
    except httpx.HTTPError as exc:
        print(f"pixlive: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    if answer is not None and answer.status_code != 200:
        print(f"pixlive: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    print(f"{args.event}: charge {charge_id}")
    return 0


def _other(value: str) -> str:
    """A value one centavo off: money that does not settle the charge."""
    reais, _, cents = value.partition(".")
    total = int(reais or "0") * 100 + int((cents or "0").ljust(2, "0")[:2]) + 1
    return f"{total // 100}.{total % 100:02d}"

"""`pixlive psp`: the merchant's PSP through the API Pix (PIXLIVE_PSP=apipix).

webhook register|show|delete   PUT|GET|DELETE /webhook/{chave} with our confirmation URL
reconcile --since T --until T  sweep GET /pix for the Pix that no webhook brought
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pixlive.settings import Settings


def confirmation_url(settings: Settings) -> str:
    """Where the PSP must deliver: our public URL; in token mode with the `hmac` token and
    Efí's `ignorar=` suffix, which keeps the `/pix` that PSPs append out of the path."""
    url = settings.base_url + "/payments/pix/confirmation"
    if settings.webhook_auth == "token":
        url += f"?hmac={settings.secret}&ignorar="
    return url


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _webhook(args: argparse.Namespace, settings: Settings) -> int:
    from pixlive.adapters.apipix.factory import psp_from_settings
    from pixlive.services.psp_port import PspError

    psp = psp_from_settings(settings)
    if psp is None:
        print("pixlive: set PIXLIVE_PSP=apipix and its PIXLIVE_PSP_* settings", file=sys.stderr)
        return 2
    chave = settings.receiver_pix_key
    try:
        if args.action == "register":
            url = confirmation_url(settings)
            await psp.put_webhook(chave, url)
            shown = url.split("?hmac=")[0] + ("?hmac=…" if "?hmac=" in url else "")
            print(f"registered {shown} for the key {chave}")
        elif args.action == "show":
            found = await psp.get_webhook(chave)
            if found is None:
                print(f"no webhook registered for the key {chave}")
                return 1
            print(found.split("?hmac=")[0] + ("?hmac=…" if "?hmac=" in found else ""))
        else:
            await psp.delete_webhook(chave)
            print(f"deleted the webhook of the key {chave}")
    except PspError as exc:
        print(f"pixlive: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await psp.close()
    return 0


async def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from pixlive.adapters.apipix.factory import psp_from_settings
    from pixlive.psp_runtime import confirmer
    from pixlive.runtime import Offline
    from pixlive.services.psp_port import PspError
    from pixlive.services.reconcile import reconcile

    psp = psp_from_settings(settings)
    if psp is None:
        print("pixlive: set PIXLIVE_PSP=apipix and its PIXLIVE_PSP_* settings", file=sys.stderr)
        return 2
    until = _time(args.until) if args.until else datetime.now(UTC)
    since = _time(args.since) if args.since else until - timedelta(hours=24)
    try:
        async with Offline(settings) as offline:
            sweep = await reconcile(psp, confirmer(offline.writer), since, until)
    except PspError as exc:
        print(f"pixlive: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await psp.close()
    counts = ", ".join(f"{name} {count}" for name, count in sorted(sweep.outcomes.items()))
    print(
        f"swept {sweep.seen} Pix in {sweep.pages} page(s) from {since.isoformat()} to "
        f"{until.isoformat()} in {sweep.seconds:.2f} s: {counts or 'nothing'}; "
        f"{sweep.found} that no webhook had brought"
    )
    return 0


def register(commands: Any) -> None:
    psp = commands.add_parser("psp", help="the merchant's PSP (API Pix)")
    actions = psp.add_subparsers(dest="psp_command", required=True)
    webhook = actions.add_parser("webhook", help="the PSP's webhook for our Pix key")
    webhook.add_argument("action", choices=("register", "show", "delete"))
    webhook.set_defaults(run=lambda args, settings: asyncio.run(_webhook(args, settings)))
    sweep = actions.add_parser("reconcile", help="sweep GET /pix for what no webhook brought")
    sweep.add_argument("--since", help="RFC 3339 (default: 24 hours before --until)")
    sweep.add_argument("--until", help="RFC 3339 (default: now)")
    sweep.set_defaults(run=lambda args, settings: asyncio.run(_reconcile(args, settings)))

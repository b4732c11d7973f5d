"""`pixlive psp-emulator`: an API Pix server to develop and test against, and its payer."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pixlive.emulator.profiles import PROFILES

DEFAULT_DIR = ".psp-emulator"


def _run(args: argparse.Namespace, settings: Any) -> int:
    from pixlive.emulator import pki
    from pixlive.emulator.delivery import Knobs
    from pixlive.emulator.server import Options, serve, settings_text

    directory = Path(args.dir)
    options = Options(
        directory=directory,
        host=args.host,
        port=args.port,
        public_port=args.public_port or args.port + 1,
        profile=args.profile,
        token_ttl=args.token_ttl,
        knobs=Knobs(drop=args.drop, duplicate=args.duplicate, delay=args.delay),
    )
    if args.init:
        credentials = pki.init_dir(directory, chave=args.chave)
        print(f"wrote the certificates and an OAuth2 client to {directory}/; the settings:")
        print(settings_text(options, credentials))
        return 0
    if not (directory / pki.CREDENTIALS).exists():
        print(
            f"pixlive: no emulator set up in {directory}/: run `pixlive psp-emulator --init "
            f"--dir {directory}` first",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass
    return 0


def _pay(args: argparse.Namespace, settings: Any) -> int:
    from pixlive.emulator import pki
    from pixlive.emulator.payer import PayError, pay

    ca = Path(args.dir) / pki.CA
    try:
        done = pay(args.code, ca=ca if ca.exists() else None, value=args.value, url=args.url)
    except PayError as exc:
        print(f"pixlive: {exc}", file=sys.stderr)
        return 1
    print(f"paid {done.valor} (txid {done.txid or '-'}): endToEndId {done.pix['endToEndId']}")
    return 0


def register(commands: Any) -> None:
    emulator = commands.add_parser(
        "psp-emulator", help="an API Pix server (a PSP) for development and tests"
    )
    emulator.add_argument("--dir", default=DEFAULT_DIR, help="certificates and credentials")
    emulator.add_argument(
        "--init",
        action="store_true",
        help="write a CA, certificates and an OAuth2 client to --dir, print the settings",
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8443, help="the API Pix (mTLS)")
    emulator.add_argument(
        "--public-port", type=int, default=0, help="locations and payer (default --port + 1)"
    )
    emulator.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    emulator.add_argument("--chave", default="sandbox@pixlive.example", help="the Pix key")
    emulator.add_argument("--token-ttl", type=int, default=3600)
    emulator.add_argument("--drop", type=float, default=0.0, help="share of webhooks to drop")
    emulator.add_argument("--duplicate", type=float, default=0.0, help="share sent twice")
    emulator.add_argument("--delay", type=float, default=0.0, help="seconds before delivering")
    emulator.set_defaults(run=_run)
    actions = emulator.add_subparsers(dest="action")
    payer = actions.add_parser("pay", help="pay a Pix Copia e Cola as a bank app would")
    payer.add_argument("code")
    payer.add_argument("--value", help="amount to pay (default: the charge's)")
    payer.add_argument("--url", help="the PSP's payer endpoint, for a static code")
    payer.add_argument("--dir", default=DEFAULT_DIR, help="where the emulator's CA is")
    payer.set_defaults(run=_pay)

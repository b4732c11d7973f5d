"""The `pixlive` command: serve, migrate, apikey, simulate-payment."""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from pixlive import __version__, metrics
from pixlive.adapters.errors import Conflict, DatabaseUnavailable
from pixlive.adapters.preflight import check_database
from pixlive.commands import listen, psp, psp_emulator, sandbox, trigger
from pixlive.runtime import Offline
from pixlive.services import api_keys
from pixlive.services.psp import signed_headers, webhook_body
from pixlive.services.records import ApiKey
from pixlive.services.unit_of_work import jobs
from pixlive.settings import ConfigurationError, Settings, check_names

T = TypeVar("T")


async def _with_writer(settings: Settings, job: Callable[[Offline], Awaitable[T]]) -> T:
    async with Offline(settings) as offline:
        return await job(offline)


def _log_config(level: str) -> dict[str, object]:
    """uvicorn's logging, with pixlive's own loggers on its default handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    loggers = dict(config.get("loggers", {}))
    loggers["pixlive"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["loggers"] = loggers
    return config


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and settings.bus_url.startswith("memory"):
        print(
            "pixlive: --workers above 1 needs a shared bus: set PIXLIVE_BUS_URL to "
            "redis://… or postgresql://… (and PIXLIVE_DATABASE_URL to PostgreSQL)",
            file=sys.stderr,
        )
        return 2
    if settings.webhook_auth == "mtls" and not (args.tls_cert and args.client_ca):
        print(
            "pixlive: PIXLIVE_WEBHOOK_AUTH=mtls needs --tls-cert, --tls-key and --client-ca "
            "(the PSP's CA): the verified client certificate is the webhook's authentication",
            file=sys.stderr,
        )
        return 2
    base = sandbox.local_url("https" if args.tls_cert else "http", args.host, args.port)
    try:
        asyncio.run(check_database(settings.database_url))
    except DatabaseUnavailable as exc:
        if settings.sandbox:
            raise
        print(
            f"pixlive: database unavailable, answering 503 until it is back: {exc}", file=sys.stderr
        )
    if settings.sandbox:
        _sandbox_start(settings, base)
    tls: dict[str, object] = {}
    if args.tls_cert:
        tls = {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
        if args.client_ca:
            tls.update(ssl_ca_certs=args.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    with metrics.shared_across_workers(args.workers):
        _run_uvicorn(args, settings, tls)
    return 0


def _run_uvicorn(args: argparse.Namespace, settings: Settings, tls: dict[str, object]) -> None:
    import uvicorn

    from pixlive.server import redact

    uvicorn.run(
        "pixlive.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Every connection is pixlive's own (pixlive.server): the webhook, the charge
        # streams, the edge's limits; uvicorn runs the processes, TLS and the lifespan.
        http="pixlive.server.http:HttpProtocol",
        ws="none",
        proxy_headers=True,
        log_level=settings.log_level,
        log_config=redact.install(_log_config(settings.log_level)),
        timeout_graceful_shutdown=8,
        # A worker importing the app on a busy machine answered the supervisor's health
        # check too late (5 s by default) and was killed, again and again.
        timeout_worker_healthcheck=30,
        **tls,  # type: ignore[arg-type]
    )


def _sandbox_start(settings: Settings, base: str) -> None:
    """Keeps the sandbox's key across starts (a start that fails, on a busy port say, must
    not revoke the key of the server already running), and makes the payment links follow
    the port that `serve` was given, unless PIXLIVE_PUBLIC_URL says otherwise."""
    kept = sandbox.kept_key(settings)
    key = asyncio.run(
        _with_writer(
            settings,
            lambda o: o.writer.run(
                jobs,
                lambda uow: api_keys.keep_api_key(
                    uow, sandbox.SANDBOX_KEY_NAME, kept, o.clock.now()
                ),
            ),
        )
    )
    sandbox.keep_key(settings, key)
    sandbox.record_url(settings, base)
    if not sandbox.public_url_is_set(settings):
        # Read by the app's factory, in this process and in every worker.
        os.environ["PIXLIVE_PUBLIC_URL"] = base
    print("pixlive sandbox", flush=True)
    print(f"  open            {base}/", flush=True)
    print(f"  API key         {key}  (kept until `pixlive apikey revoke sandbox`)", flush=True)
    print(f"  webhook secret  {settings.secret}", flush=True)
    print(f"  kept in         {settings.secret_file.parent}", flush=True)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    # Alembic takes half a second to import: only the command that needs it pays that.
    from pixlive.adapters.migrate import upgrade

    asyncio.run(check_database(settings.database_url))
    before, after = upgrade(settings.database_url)
    if before is None:
        print(f"created the schema (revision {after})")
    elif before != after:
        print(f"upgraded the schema from revision {before} to {after}")
    else:
        print(f"the schema was already up to date (revision {after}); nothing to do")
    return 0


def _apikey(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "create":
        try:
            key = asyncio.run(
                _with_writer(
                    settings,
                    lambda o: o.writer.run(
                        jobs, lambda uow: api_keys.create_api_key(uow, args.name, o.clock.now())
                    ),
                )
            )
        except Conflict:
            print(f"an active key named {args.name!r} already exists", file=sys.stderr)
            return 1
        print(f"created API key {args.name!r}; it is shown only now:")
        print(key)
        return 0
    if args.action == "revoke":
        done = asyncio.run(
            _with_writer(
                settings,
                lambda o: o.writer.run(
                    jobs, lambda uow: api_keys.revoke_api_key(uow, args.name, o.clock.now())
                ),
            )
        )
        print(f"revoked {args.name!r}" if done else f"no active key named {args.name!r}")
        return 0 if done else 1

    async def listing(offline: Offline) -> list[ApiKey]:
        async with offline.db.read() as queries:
            return await api_keys.list_api_keys(queries)

    for item in asyncio.run(_with_writer(settings, listing)):
        state = "revoked" if item.revoked_at else "active"
        print(f"{item.name}\t{item.prefix}…\t{state}\t{item.created_at:%Y-%m-%d %H:%M:%S}Z")
    return 0


def _simulate_base(args: argparse.Namespace, settings: Settings) -> str:
    """--url; else PIXLIVE_PUBLIC_URL when set; else, in the sandbox, where the last
    `pixlive serve` of this database listens (its port may not be the default's)."""
    if args.url:
        return str(args.url).rstrip("/")
    if settings.sandbox and not sandbox.public_url_is_set(settings):
        recorded = sandbox.recorded_url(settings)
        if recorded:
            return recorded.rstrip("/")
    return settings.base_url


_FINAL = {"PAID": "already paid", "EXPIRED": "expired", "CANCELLED": "cancelled"}


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    base = _simulate_base(args, settings)
    try:
        with httpx.Client(timeout=10, trust_env=False) as client:
            answer = client.get(
                f"{base}/payments/pix/{args.id}", headers={"Accept": "application/json"}
            )
            if answer.status_code != 200:
                print(
                    f"pixlive: cannot read the charge at {base}: {answer.status_code} "
                    f"{answer.text}",
                    file=sys.stderr,
                )
                return 1
            charge = answer.json()
            if charge.get("status") in _FINAL:
                print(
                    f"pixlive: the charge {args.id} is {_FINAL[charge['status']]}; nothing sent",
                    file=sys.stderr,
                )
                return 1
            valor = args.value if args.value is not None else charge["value"]
            body = webhook_body(args.id, valor)
            params = {"hmac": settings.secret} if settings.webhook_auth == "token" else {}
            answer = client.post(
                f"{base}/payments/pix/confirmation",
                content=body,
                headers=signed_headers(settings.secret, body),
                params=params,
            )
    except httpx.HTTPError as exc:
        print(f"pixlive: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    print(answer.text)
    if answer.status_code == 401 and settings.webhook_secret is None:
        print(
            f"pixlive: the server refused the signature: this command signed with the sandbox "
            f"secret in {settings.secret_file}; run it with the server's PIXLIVE_DATABASE_URL "
            "(the secret lives beside the database) or set PIXLIVE_WEBHOOK_SECRET",
            file=sys.stderr,
        )
    if answer.status_code != 200:
        return 1
    # Delivered is not paid: a wrong value or a final charge gives a mismatch, and a
    # script that simulates a payment must be able to tell.
    outcomes = [item.get("outcome") for item in answer.json().get("results", [])]
    if outcomes != ["paid"]:
        print(
            f"pixlive: the charge was not paid (outcome: {', '.join(map(str, outcomes))})",
            file=sys.stderr,
        )
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pixlive",
        description="Self-hosted Pix checkout with live payment confirmation.",
        epilog="Settings come from PIXLIVE_* environment variables or a .env file "
        "(see .env.example). `pixlive COMMAND --help` tells more about each command.",
    )
    root.add_argument("--version", action="version", version=f"pixlive {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the HTTP server",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; above 1 needs PostgreSQL and a shared bus (PIXLIVE_BUS_URL)",
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument(
        "--client-ca", metavar="FILE", help="require client certificates signed by this CA"
    )
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="create or upgrade the schema").set_defaults(run=_migrate)

    apikey = commands.add_parser("apikey", help="manage merchant API keys")
    actions = apikey.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; printed alone on the last line")
    create.add_argument("name")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke the active key of that name")
    revoke.add_argument("name")
    apikey.set_defaults(run=_apikey)

    simulate = commands.add_parser(
        "simulate-payment", help="send a signed webhook for a charge, as a PSP would"
    )
    simulate.add_argument("id", help="the charge's id")
    simulate.add_argument(
        "--value", help="amount to send, e.g. 12.34 (default: the charge's own amount)"
    )
    simulate.add_argument(
        "--url",
        help="base URL of the server (default: PIXLIVE_PUBLIC_URL if set, else in the "
        "sandbox where `pixlive serve` last started with this database)",
    )
    simulate.set_defaults(run=_simulate)
    psp_emulator.register(commands)
    psp.register(commands)
    listen.register(commands)
    trigger.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    if args.command is None:
        root.print_help()
        return 0
    if args.command == "serve" and bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        if args.command in ("serve", "migrate"):
            check_names()
        settings = Settings.load()
        result: int = args.run(args, settings)
        return result
    except ConfigurationError as exc:
        print(f"pixlive: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"pixlive: database unavailable: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

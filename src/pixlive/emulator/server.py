"""`pixlive psp-emulator`: both faces of the emulated PSP in one process, one event loop,
sharing one in-memory ledger."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from pixlive.emulator import pki
from pixlive.emulator.app import Emulator, api_app, public_app
from pixlive.emulator.brcode import dynamic_brcode
from pixlive.emulator.delivery import Deliverer, Knobs
from pixlive.emulator.profiles import PROFILES, Profile
from pixlive.emulator.state import Cob, Ledger


@dataclass(frozen=True)
class Options:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8443
    public_port: int = 8444
    profile: str = "standard"
    token_ttl: int = 3600
    name: str = "Loja Emulada"
    city: str = "Sao Paulo"
    knobs: Knobs | None = None
    log_level: str = "warning"


def settings_text(options: Options, credentials: pki.Credentials) -> str:
    """The PIXLIVE_* settings that connect pixlive to this emulator, ready to paste."""
    profile = PROFILES[options.profile]
    d = options.directory.resolve()
    origin = f"https://{options.host}:{options.port}"
    lines = [
        "PIXLIVE_PSP=apipix",
        f"PIXLIVE_PSP_PROFILE={profile.name}",
        f"PIXLIVE_PSP_API_URL={origin}{profile.api_prefix}",
        f"PIXLIVE_PSP_TOKEN_URL={origin}{profile.token_path}",
        f"PIXLIVE_PSP_CLIENT_ID={credentials.client_id}",
        f"PIXLIVE_PSP_CLIENT_SECRET={credentials.client_secret}",
        f"PIXLIVE_PSP_CERT={d / (pki.MERCHANT_CLIENT + '.pem')}",
        f"PIXLIVE_PSP_KEY={d / (pki.MERCHANT_CLIENT + '.key')}",
        f"PIXLIVE_PSP_CA={d / pki.CA}",
        f"PIXLIVE_PIX_KEY={credentials.chave}",
        "PIXLIVE_WEBHOOK_AUTH=mtls",
        "# and serve TLS with client certificates of the same CA, for the PSP's webhook:",
        f"#   pixlive serve --tls-cert {d / (pki.MERCHANT_SERVER + '.pem')} "
        f"--tls-key {d / (pki.MERCHANT_SERVER + '.key')} --client-ca {d / pki.CA}",
    ]
    return "\n".join(lines)


def _client_tls(directory: Path) -> ssl.SSLContext:
    """How the emulator reaches the merchant's webhook: trusting the emulator's CA (which
    signed the merchant's server certificate) and presenting the PSP's client certificate."""
    context = ssl.create_default_context(cafile=str(directory / pki.CA))
    context.load_cert_chain(
        directory / f"{pki.PSP_CLIENT}.pem", directory / f"{pki.PSP_CLIENT}.key"
    )
    return context


def build(options: Options, profile: Profile) -> Emulator:
    credentials = pki.load_credentials(options.directory)
    public_origin = f"{options.host}:{options.public_port}"

    def brcode(cob: Cob) -> str:
        return dynamic_brcode(
            location=cob.location, name=options.name, city=options.city, amount_cents=cob.valor
        )

    ledger = Ledger(
        chave=credentials.chave,
        name=options.name,
        city=options.city,
        location_base=public_origin,
        brcode=brcode,
    )
    knobs = options.knobs or Knobs()
    deliverer = Deliverer(ledger, profile, knobs, _client_tls(options.directory))
    ledger.notify = deliverer.enqueue
    server_pem = options.directory / f"{pki.SERVER}.pem"
    server_key = options.directory / f"{pki.SERVER}.key"
    return Emulator(
        ledger=ledger,
        profile=profile,
        credentials=credentials,
        knobs=knobs,
        deliverer=deliverer,
        signing_key=server_key.read_bytes(),
        signing_cert=server_pem.read_bytes(),
        token_ttl=options.token_ttl,
    )


async def serve(options: Options) -> None:
    profile = PROFILES[options.profile]
    emulator = build(options, profile)
    d = options.directory
    tls = {
        "ssl_certfile": str(d / f"{pki.SERVER}.pem"),
        "ssl_keyfile": str(d / f"{pki.SERVER}.key"),
    }
    api = uvicorn.Server(
        uvicorn.Config(
            api_app(emulator),
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            ssl_ca_certs=str(d / pki.CA),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
            **tls,  # type: ignore[arg-type]
        )
    )
    public = uvicorn.Server(
        uvicorn.Config(
            public_app(emulator),
            host=options.host,
            port=options.public_port,
            log_level=options.log_level,
            **tls,  # type: ignore[arg-type]
        )
    )
    assert emulator.deliverer is not None
    await emulator.deliverer.start()
    print(
        f"psp-emulator ({profile.name}) API https://{options.host}:{options.port}"
        f"{profile.api_prefix}, locations and payer https://{options.host}:{options.public_port}",
        flush=True,
    )
    try:
        await asyncio.gather(api.serve(), public.serve())
    finally:
        await emulator.deliverer.close()

"""The PSP adapter that the settings ask for: none, or the API Pix client."""

from __future__ import annotations

from pixlive.adapters.apipix.client import ApiPixClient, ApiPixConfig
from pixlive.services.psp_port import Psp
from pixlive.settings import Settings


def psp_from_settings(settings: Settings) -> Psp | None:
    """None for PIXLIVE_PSP=none: static codes, the webhook only (nothing to call)."""
    if settings.psp != "apipix":
        return None
    assert settings.psp_api_url and settings.psp_client_id and settings.psp_client_secret
    return ApiPixClient(
        ApiPixConfig(
            api_url=settings.psp_api_url,
            token_url=settings.psp_token_url,
            client_id=settings.psp_client_id,
            client_secret=settings.psp_client_secret.get_secret_value(),
            cert=settings.psp_cert,
            key=settings.psp_key,
            ca=settings.psp_ca,
            profile=settings.psp_profile,
            timeout=settings.psp_timeout_seconds,
        )
    )

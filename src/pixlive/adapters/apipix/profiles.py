"""Each PSP's known departures from the API Pix specification, and where they are written.

`standard` is api-pix-openapi-2.9.0.yaml as published. The sources of the others are listed
with each field (and in docs/psp.md); a quirk with no public source is not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # Default token endpoint, joined to the API URL's origin when PIXLIVE_PSP_TOKEN_URL is
    # unset. The spec's securitySchemes give https://pix.example.com/oauth/token.
    oauth_path: str = "/oauth/token"
    # Scopes to ask for in the token request; None asks for none (the PSP grants the
    # client's). Inter's token endpoint requires the `scope` parameter.
    oauth_scopes: str | None = None
    # Efí: PUT /webhook carries `x-skip-mtls-checking: true` and the URL its `?hmac=` token
    # when the merchant's side cannot verify client certificates (Efí's docs, "Webhooks",
    # "skip-mTLS"); the `?ignorar=` suffix stops Efí's `/pix` from landing in the path.
    webhook_hmac: bool = False


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard"),
    # Efí (ex-Gerencianet) API Pix: https://pix.api.efipay.com.br/v2, token at
    # https://pix.api.efipay.com.br/oauth/token (dev.efipay.com.br/docs/api-pix/credenciais).
    "efi": Profile("efi", webhook_hmac=True),
    # Banco Inter: https://cdpj.partners.bancointer.com.br/pix/v2, token at /oauth/v2/token
    # with `scope` required (developers.inter.co/references/token).
    "inter": Profile(
        "inter",
        oauth_path="/oauth/v2/token",
        oauth_scopes="cob.write cob.read pix.read pix.write webhook.read webhook.write",
    ),
}

"""How each emulated PSP departs from the API Pix specification on the wire.

`standard` follows api-pix-openapi-2.9.0.yaml to the letter. The others serve the paths
those PSPs use and send the body shapes a receiver must cope with (docs/psp.md says which
of these were checked against the PSP's documents).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    api_prefix: str  # where the spec's paths start
    token_path: str
    webhook_root_array: bool = False  # the webhook body is `[...]`, not `{"pix": [...]}`
    devolucoes_object: bool = False  # a single devolução comes as an object, not a list


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", "/api/v2", "/oauth/token"),
    # Efí: API at https://pix.api.efipay.com.br/v2/..., token at /oauth/token of that host.
    "efi": Profile("efi", "/v2", "/oauth/token"),
    # Inter: API at https://cdpj.partners.bancointer.com.br/pix/v2/..., token at /oauth/v2/token.
    # The root array and single-object `devolucoes` are shapes a receiver must take (the
    # spec's own pixWebhook1 example has the object); that Inter sends them is not verified.
    "inter": Profile(
        "inter", "/pix/v2", "/oauth/v2/token", webhook_root_array=True, devolucoes_object=True
    ),
}


def webhook_body(profile: Profile, pix: list[dict[str, object]]) -> object:
    items = [dict(item) for item in pix]
    if profile.devolucoes_object:
        for item in items:
            devolucoes = item.get("devolucoes")
            if isinstance(devolucoes, list) and len(devolucoes) == 1:
                item["devolucoes"] = devolucoes[0]
    return items if profile.webhook_root_array else {"pix": items}

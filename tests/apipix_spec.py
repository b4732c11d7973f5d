"""The API Pix specification's schemas, to check answers against (jsonschema over the YAML).

Two errata of api-pix-openapi-2.9.0.yaml are corrected, or no answer could ever validate:
`PixConsultados` requires `cobs` (its property is `pix`, as every PSP answers), and the CPF
pattern is written with JavaScript's slashes (`/^\\d{11}$/`), which no CPF matches.
A third: `location` is `format: uri`, yet the spec's own examples (and every PSP) write it
without a scheme (`pix.example.com/qr/v2/...`), which is not even a URI reference once a
port follows the host: its format is not checked (the tests fetch it over https instead).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

# The Banco Central publishes it under Apache 2.0; kept here so that CI needs nothing else.
SPEC = Path(__file__).parent / "data" / "api-pix-openapi-2.9.0.yaml"


def _fix(node: Any) -> Any:
    if isinstance(node, dict):
        fixed = {key: _fix(value) for key, value in node.items()}
        if fixed.get("pattern") == "/^\\d{11}$/":
            fixed["pattern"] = "^\\d{11}$"
        example = fixed.get("example")
        if fixed.get("format") == "uri" and isinstance(example, str) and "://" not in example:
            del fixed["format"]
        return fixed
    if isinstance(node, list):
        return [_fix(item) for item in node]
    return node


@cache
def spec() -> dict[str, Any]:
    loaded = _fix(yaml.safe_load(SPEC.read_text()))
    schemas = loaded["components"]["schemas"]
    schemas["PixConsultados"]["required"] = ["parametros", "pix"]
    return loaded


def validate(instance: Any, schema_name: str) -> None:
    """Raises jsonschema.ValidationError when `instance` does not follow the named schema."""
    document = spec()
    registry: Registry[Any] = Registry().with_resource(
        "urn:apipix", Resource.from_contents(document, default_specification=DRAFT7)
    )
    schema = {"$ref": f"urn:apipix#/components/schemas/{schema_name}"}
    jsonschema.Draft7Validator(
        schema, registry=registry, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    ).validate(instance)

"""The JSON schemas of docs/webhooks.md, read from the page itself, so that what the tests
validate against is what a merchant reads."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DOC = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"
_BLOCK = re.compile(r"<!-- schema: ([a-z_.]+) -->\s*```json\n(.*?)```", re.S)


@cache
def schemas() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in _BLOCK.findall(DOC.read_text())}


def validate(body: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError unless `body` is a webhook body as documented."""
    found = schemas()
    jsonschema.validate(body, found["envelope"])
    data_schema = {**found[body["type"]], "$defs": {"charge": found["charge"]}}
    jsonschema.validate(body["data"], data_schema)

"""Credentials never reach a log line: the webhook's `?hmac=` token, an API key in
`Authorization`, a `Pixlive-Signature`. The access log writes request targets through
`target`; every handler of the server's logging runs `Redact` over whole lines too, for
what an exception or a library might print."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

# Query parameters that carry a credential somewhere a PSP or a client may put one.
SECRET_PARAMETERS = frozenset({"hmac", "token", "access_token", "api_key", "apikey", "secret"})
SECRET_HEADERS = ("authorization", "pixlive-signature", "proxy-authorization", "cookie")
MASK = "[redacted]"

_PARAMETER = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(" + "|".join(sorted(SECRET_PARAMETERS)) + r")=[^&\s\"']*"
)
_HEADER = re.compile(
    r"(?i)\b(" + "|".join(SECRET_HEADERS) + r")(['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\"]*"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")


def target(path: str, query: bytes) -> str:
    """The request target as the access log shows it: credentials in the query masked."""
    if not query:
        return quote(path, safe="/%:@!$&'()*+,;=")
    text = query.decode("latin-1")
    parts = []
    for pair in text.split("&"):
        name, sep, _ = pair.partition("=")
        parts.append(f"{name}={MASK}" if sep and name.lower() in SECRET_PARAMETERS else pair)
    return f"{quote(path, safe='/%:@!$&()*+,;=')}?{'&'.join(parts)}"


def line(text: str) -> str:
    """A whole log line with anything that looks like a credential masked."""
    text = _PARAMETER.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _BEARER.sub(f"Bearer {MASK}", text)


class Redact(logging.Filter):
    """A handler filter: the record's message (and traceback) with credentials masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = line(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = line(record.exc_text)
        return True


def install(config: dict[str, object]) -> dict[str, object]:
    """A `logging.config.dictConfig` dictionary with `Redact` on every handler."""
    filters = dict(config.get("filters", {}) or {})  # type: ignore[call-overload]
    filters["redact"] = {"()": f"{__name__}.Redact"}
    handlers = {}
    for name, handler in dict(config.get("handlers", {}) or {}).items():  # type: ignore[call-overload]
        handler = dict(handler)
        handler["filters"] = [*handler.get("filters", []), "redact"]
        handlers[name] = handler
    return {**config, "filters": filters, "handlers": handlers}

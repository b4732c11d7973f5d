"""Every error leaves as `{"error": {"code", "message"}}`; our exceptions become HTTP here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixlive.adapters.errors import DatabaseUnavailable, InvalidData
from pixlive.api.pages import render_error_page, wants_html
from pixlive.domain.errors import (
    ChargeFinal,
    ChargeNotFound,
    DomainError,
    IdempotencyConflict,
    IllegalTransition,
    InvalidAmount,
)
from pixlive.realtime.admission import Refused

log = logging.getLogger("pixlive.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


_DOMAIN_STATUS: dict[type[DomainError], int] = {
    ChargeNotFound: 404,
    ChargeFinal: 409,
    IllegalTransition: 409,
    IdempotencyConflict: 409,
    InvalidAmount: 422,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


_PLACES = {"header": "header", "query": "query parameter", "path": "path parameter"}


def _where(loc: tuple[object, ...]) -> str:
    """ "value", "payer.cpf", "the Idempotency-Key header", "the query parameter after"."""
    if len(loc) == 2 and loc[0] in _PLACES:
        place = _PLACES[str(loc[0])]
        return f"the {loc[1]} {place}" if place == "header" else f"the {place} {loc[1]}"
    return ".".join(str(p) for p in loc if p != "body") or ("body" if loc == ("body",) else "")


def _validation_message(
    exc: RequestValidationError, content_type: str | None = None
) -> tuple[int, str, str]:
    errors = exc.errors()
    for error in errors:
        if error.get("type") == "json_invalid":
            return 400, "invalid_json", "the body is not valid JSON"
    # A JSON body sent with another Content-Type (`curl -d` sends a form's) or with none is
    # not parsed at all; say so, rather than that "the input should be a valid dictionary".
    if not _is_json(content_type):
        for error in errors:
            if tuple(error.get("loc", ())) == ("body",) and error.get("type") in (
                "model_attributes_type",
                "dict_type",
            ):
                return (
                    415,
                    "unsupported_media_type",
                    "send the body as JSON, with the header Content-Type: application/json",
                )
    parts = []
    for error in errors[:5]:
        loc = tuple(error.get("loc", ()))
        where = _where(loc)
        message = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {message}" if where else message)
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


def _answer(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    # A browser that opened a mistyped link gets a page in Portuguese, not raw JSON.
    if wants_html(request):
        return render_error_page(request, status, headers)
    return error_response(status, code, message, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _answer(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return _answer(request, _DOMAIN_STATUS.get(type(exc), 400), exc.code, str(exc))

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return _answer(request, 429, exc.code, exc.message, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(InvalidData)
    async def _invalid_data(request: Request, exc: InvalidData) -> Response:
        return _answer(request, 422, "invalid_request", "a value cannot be stored as given")

    @app.exception_handler(DatabaseUnavailable)
    async def _database(request: Request, exc: DatabaseUnavailable) -> Response:
        log.warning("database unavailable: %s", exc)
        return _answer(
            request,
            503,
            "database_unavailable",
            "the database is unreachable; retry later",
            {"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        status, code, message = _validation_message(exc, request.headers.get("content-type"))
        return _answer(request, status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _answer(request, exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs the traceback after this answer; the client gets the usual shape.
        return _answer(request, 500, "internal_error", "an unexpected error occurred")

"""Named dependencies of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pixlive.api.errors import ApiError
from pixlive.domain.ids import is_charge_id
from pixlive.runtime import Runtime
from pixlive.services.api_keys import authenticate
from pixlive.services.records import ApiKey


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# dependency in a thread pool, a thread hop on every request of the hot path.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


bearer = HTTPBearer(auto_error=False, description="An API key from `pixlive apikey create`")


async def get_api_key(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "an API key is required", {"WWW-Authenticate": "Bearer"}
        )
    async with runtime.db.read() as conn:
        key = await authenticate(conn, credentials.credentials)
    if key is None:
        raise ApiError(
            401, "unauthorized", "the API key is not valid", {"WWW-Authenticate": "Bearer"}
        )
    return key


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]


async def optional_api_key(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey | None:
    if credentials is None:
        return None
    return await get_api_key(runtime, credentials)


OptionalApiKeyDep = Annotated[ApiKey | None, Depends(optional_api_key)]


async def charge_id(payment_id: str) -> str:
    """A path id that cannot be a charge's is answered like an unknown one, without a lookup."""
    if not is_charge_id(payment_id):
        raise ApiError(404, "not_found", "no charge with this id")
    return payment_id


ChargeIdDep = Annotated[str, Depends(charge_id)]


# An empty key is most likely a client's unset variable (`Idempotency-Key: $KEY`): taken as
# a key, every such request would share it, and all but the first would be refused or replayed.
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description=(
            "A key of your choosing (a UUID, say) that makes a retry safe: the same key with "
            "the same body answers the first result again; with another body, 409."
        ),
    ),
]

"""API keys: shown once at creation, kept only as a SHA-256 hash.

The keys are 256 random bits, so a plain fast hash is enough: there is nothing to
brute-force, unlike a password.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from pixlive.services.ports import Queries
from pixlive.services.records import ApiKey
from pixlive.services.unit_of_work import UnitOfWork

PREFIX = "pxl_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def create_api_key(uow: UnitOfWork, name: str, now: datetime, key: str | None = None) -> str:
    """Stores a new key under `name` and returns it: the only time it is ever seen."""
    key = key or new_key()
    await uow.repo.add_api_key(name, hash_key(key), key[:8], now)
    return key


async def replace_api_key(uow: UnitOfWork, name: str, now: datetime) -> str:
    """Revokes the active key of that name, if any, and creates a new one (sandbox start)."""
    await uow.repo.revoke_api_key(name, now)
    return await create_api_key(uow, name, now)


async def keep_api_key(uow: UnitOfWork, name: str, kept: str | None, now: datetime) -> str:
    """`kept` while it is still the active key of that name; otherwise a new one under that
    name (the sandbox's key, which survives restarts until someone revokes it)."""
    if kept is not None and kept.startswith(PREFIX):
        found = await uow.repo.find_api_key(hash_key(kept))
        if found is not None and found.name == name:
            return kept
    return await replace_api_key(uow, name, now)


async def revoke_api_key(uow: UnitOfWork, name: str, now: datetime) -> bool:
    return await uow.repo.revoke_api_key(name, now)


async def authenticate(queries: Queries, key: str) -> ApiKey | None:
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    return await queries.find_api_key(hash_key(key))


async def list_api_keys(queries: Queries) -> list[ApiKey]:
    return await queries.list_api_keys()

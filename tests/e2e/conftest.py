"""A real pixlive server on a free port, started as a user would start it (the launcher
lives in `pixlive.testing.launcher`, shared with the bench and the soak)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixlive.testing.launcher import (
    SECRET,
    Server,
    free_port,
    pixlive,
    server_env,
    start_server,
)

__all__ = ["SECRET", "Server", "assert_error", "free_port", "pixlive", "server_env", "start_server"]


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> None:
    """The answer is `status` with the error shape `{"error": {"code", "message"}}`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["error"]["code"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "server")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole test module, for tests that only add to what is there."""
    running = start_server(tmp_path_factory.mktemp("shared") / "server")
    try:
        yield running
    finally:
        running.stop()

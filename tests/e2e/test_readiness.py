"""/readyz says ready only when the database can commit: a full disk lets reads through,
and a load balancer must stop sending payments to a process that cannot write them."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import assert_error, start_server


@contextmanager
def disk_full(pid: int) -> Iterator[None]:
    """No write to any file of the process lands past its first byte: RLIMIT_FSIZE makes
    every such write fail (EFBIG, which Python does not turn into a signal), as a full disk
    fails them, and the database's reads still work."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def test_readyz_is_503_while_the_database_cannot_commit(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        assert server.process is not None
        ready = server.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "database": True, "bus": True}
        charge = server.create_charge("12.34")

        with disk_full(server.process.pid):
            # Reading still works: a check that only reads would say ready.
            assert server.charge(charge["id"])["status"] == "ACTIVE"
            down = server.http.get("/readyz")
            assert_error(down, 503, "not_ready")
            message = down.json()["error"]["message"]
            assert message.startswith("not ready: the database cannot commit"), message
            assert server.http.get("/healthz").status_code == 200  # alive all the same

        again = server.http.get("/readyz")
        assert again.status_code == 200, again.text
        assert server.pay(charge["id"], "12.34").json()["results"][0]["outcome"] == "paid"
    finally:
        server.stop()

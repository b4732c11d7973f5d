"""Faults a production server meets: the database goes down, the process is killed, the
bus goes down. What must hold: a 200 to the PSP means the Pix is in the ledger, once; an
outage answers 503 (so that the PSP retries) and writes nothing half; the retry counts
exactly once.

PostgreSQL outages use a private cluster (initdb + pg_ctl, as the `postgres` OS user when
the tests run as root) that the test stops with `pg_ctl stop -m immediate` and starts
again; the shared server on 5432 is never touched. Redis outages use a private
redis-server, as tests/e2e/test_scale.py does.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from pixlive.domain.charge import iso
from pixlive.services.psp import new_end_to_end_id, signed_headers, webhook_body
from tests.conftest import REQUIRE
from tests.e2e.conftest import Server, assert_error, free_port, start_server
from tests.e2e.streams import websocket, ws_messages
from tests.e2e.test_scale import RedisServer

HORARIO = "2026-11-28T01:02:03.456Z"
UNKNOWN_TXID = "Q" * 25  # no such charge


def _unavailable(message: str) -> None:
    if REQUIRE:
        pytest.fail(message + " and PIXLIVE_REQUIRE_SERVICES=1")
    pytest.skip(message)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready(server: Server) -> int:
    try:
        return server.http.get("/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


# A private PostgreSQL ---------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parents[1].name
        return tuple(int(p) for p in part.split(".") if p.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, trust auth, that a test may stop
    (as a crash would: `-m immediate`) and start again."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and initdb refuses to run
        # as root, so the cluster belongs to the `postgres` OS user.
        self.root = Path(tempfile.mkdtemp(prefix="pixlive-pg-"))
        self.data = self.root / "data"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.bindir / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{program} {args}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._run(
            "initdb",
            *("-D", str(self.data), "-A", "trust", "-U", "postgres"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=on -c max_connections=50"
        )
        self._run(
            "pg_ctl",
            *("-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30"),
            *("-o", options, "start"),
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        try:
            if self.running():
                self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable("initdb is not installed (looked in /usr/lib/postgresql/*/bin and PATH)")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no `postgres` OS user to run initdb")
        if shutil.which("runuser") is None:
            _unavailable("running as root and runuser is not installed")
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def pg_fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    """Rows read on a connection of our own, straight from the database."""

    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture(scope="module")
def pg_server(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("faults-pg") / "server", PIXLIVE_DATABASE_URL=private_pg.url
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def outage(private_pg: PrivatePostgres, pg_server: Server) -> Iterator[PrivatePostgres]:
    """The private PostgreSQL, started again (and the server ready) after the test."""
    try:
        yield private_pg
    finally:
        if not private_pg.running():
            private_pg.start()
        wait_until(lambda: ready(pg_server) == 200, "the server to see PostgreSQL again")


# PostgreSQL down -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_down_is_a_503_and_the_retry_counts_once(
    pg_server: Server, outage: PrivatePostgres
) -> None:
    charge = pg_server.create_charge("12.34")
    other = pg_server.create_charge("5.00")
    e2e = new_end_to_end_id()
    body = webhook_body(charge["id"], "12.34", e2e)
    headers = signed_headers(pg_server.secret, body)  # what the PSP will send again
    several = orjson.dumps(
        {
            "pix": [
                {
                    "endToEndId": new_end_to_end_id(),
                    "txid": other["id"],
                    "valor": "5.00",
                    "horario": HORARIO,
                },
                {
                    "endToEndId": new_end_to_end_id(),
                    "txid": UNKNOWN_TXID,
                    "valor": "1.00",
                    "horario": HORARIO,
                },
            ]
        }
    )
    several_headers = signed_headers(pg_server.secret, several)
    charge_before = pg_server.charge(charge["id"])
    rows_before = pg_fetch(outage.dsn, "SELECT count(*) FROM received_pix")[0][0]
    events_before = pg_fetch(outage.dsn, "SELECT count(*) FROM events")[0][0]

    outage.stop()
    for _ in range(3):  # the first meets the pool's dead connections, the next a refusal
        answer = pg_server.webhook(body, headers)
        assert_error(answer, 503, "database_unavailable")
        assert answer.headers.get("retry-after"), answer.headers
        assert_error(pg_server.webhook(several, several_headers), 503, "database_unavailable")
    # Reads say the same, in the same shape.
    assert_error(pg_server.http.get(f"/payments/pix/{charge['id']}"), 503, "database_unavailable")
    # Authentication and validation still come first: they need no database.
    assert_error(pg_server.webhook(body, {"Content-Type": "application/json"}), 401)
    assert_error(pg_server.webhook(b'{"pix": []}'), 422)

    outage.start()
    wait_until(lambda: ready(pg_server) == 200, "/readyz to say 200 again")

    # Nothing was half-written while it was down.
    assert pg_fetch(outage.dsn, "SELECT count(*) FROM received_pix")[0][0] == rows_before
    assert pg_fetch(outage.dsn, "SELECT count(*) FROM events")[0][0] == events_before
    assert pg_server.charge(charge["id"]) == charge_before

    # The PSP retries the very same signed delivery: it counts, once.
    again = pg_server.webhook(body, headers)
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["outcome"] == "paid"
    assert pg_server.webhook(body, headers).json()["results"][0]["outcome"] == "duplicate"
    resigned = webhook_body(charge["id"], "12.34", e2e)
    assert pg_server.webhook(resigned).json()["results"][0]["outcome"] == "duplicate"
    results = pg_server.webhook(several, several_headers).json()["results"]
    assert [r["outcome"] for r in results] == ["paid", "unknown_txid"]

    assert pg_server.charge(charge["id"])["status"] == "PAID"
    assert pg_server.charge(other["id"])["status"] == "PAID"
    ledger = pg_fetch(outage.dsn, "SELECT count(*) FROM received_pix WHERE end_to_end_id = $1", e2e)
    assert ledger[0][0] == 1
    for payment_id in (charge["id"], other["id"]):
        paid = pg_fetch(
            outage.dsn,
            "SELECT count(*) FROM events WHERE payment_id = $1 AND type = 'payment.paid'",
            payment_id,
        )
        assert paid[0][0] == 1


@pytest.mark.postgres
def test_readyz_follows_postgres(pg_server: Server, outage: PrivatePostgres) -> None:
    answer = pg_server.http.get("/readyz")
    assert answer.status_code == 200
    assert answer.json()["database"] is True
    for _ in range(2):
        outage.stop()
        down = pg_server.http.get("/readyz")
        assert_error(down, 503, "not_ready")
        assert "database cannot commit" in down.json()["error"]["message"]
        assert pg_server.http.get("/healthz").status_code == 200  # alive all the same
        outage.start()
        wait_until(lambda: ready(pg_server) == 200, "/readyz to say 200 again")
        assert pg_server.http.get("/readyz").json()["database"] is True


@pytest.mark.postgres
def test_a_server_started_while_postgres_is_down_comes_up_and_recovers(
    tmp_path: Path, pg_server: Server, outage: PrivatePostgres
) -> None:
    """In production mode `serve` needs no database to start (the sandbox does: it makes
    its API key first): it answers 503 until PostgreSQL is back, then works."""
    charge = pg_server.create_charge("12.34")
    outage.stop()
    late = start_server(
        tmp_path / "late",
        migrate=False,
        api_key=pg_server.api_key,
        PIXLIVE_ENV="production",
        PIXLIVE_DATABASE_URL=outage.url,
        PIXLIVE_WEBHOOK_SECRET=pg_server.secret,
        PIXLIVE_PIX_KEY="financeiro@loja.example",
        PIXLIVE_MERCHANT_NAME="Loja",
        PIXLIVE_MERCHANT_CITY="Recife",
    )
    try:
        assert late.http.get("/readyz").status_code == 503
        body = webhook_body(charge["id"], "12.34")
        headers = signed_headers(late.secret, body)
        assert_error(late.webhook(body, headers), 503, "database_unavailable")
        assert_error(late.http.get("/payments/pix", headers=late.auth), 503)
        outage.start()
        wait_until(lambda: ready(late) == 200, "/readyz to say 200 once PostgreSQL is up")
        answer = late.webhook(body, headers)
        assert answer.json()["results"][0]["outcome"] == "paid", answer.text
        assert late.charge(charge["id"])["status"] == "PAID"
    finally:
        late.stop()


def _cluster_processes(cluster: PrivatePostgres) -> list[int]:
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry))
    return [postmaster, *children]


@pytest.mark.postgres
def test_a_frozen_postgres_is_a_503_not_a_hang(pg_server: Server, outage: PrivatePostgres) -> None:
    """A database that stops answering (a network partition, a stuck disk) rather than
    refusing: the statement timeout turns it into a 503, and nothing is half-written."""
    charge = pg_server.create_charge("12.34")
    body = webhook_body(charge["id"], "12.34")
    headers = signed_headers(pg_server.secret, body)
    frozen = _cluster_processes(outage)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        answer = pg_server.http.post(
            "/payments/pix/confirmation", content=body, headers=headers, timeout=60
        )
        assert_error(answer, 503, "database_unavailable")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: ready(pg_server) == 200, "/readyz to say 200 again")
    assert pg_server.charge(charge["id"])["status"] == "ACTIVE"
    assert pg_server.webhook(body, headers).json()["results"][0]["outcome"] == "paid"
    assert pg_server.webhook(body, headers).json()["results"][0]["outcome"] == "duplicate"


# Deliveries in flight when something fails --------------------------------------------------


@dataclass
class Flight:
    """Signed deliveries sent from a few threads at once, one per charge, each of two Pix:
    the charge's, and one for a txid that does not exist (kept as `unknown_txid`). A
    delivery commits whole or not at all, so the ledger holds both or neither."""

    server: Server
    charges: list[str]
    e2e: dict[str, str] = field(default_factory=dict)  # charge id -> its Pix's endToEndId
    stray: dict[str, str] = field(default_factory=dict)  # charge id -> the other Pix's
    answers: dict[str, int | str] = field(default_factory=dict)  # status or exception
    acked: set[str] = field(default_factory=set)  # charges whose delivery got a 200
    outcomes: dict[str, list[str]] = field(default_factory=dict)  # the outcomes of each 200
    enough: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.e2e = {payment_id: new_end_to_end_id() for payment_id in self.charges}
        self.stray = {payment_id: new_end_to_end_id() for payment_id in self.charges}

    def body(self, payment_id: str) -> bytes:
        """The delivery of this charge, with a fresh `horario` (a PSP's retry may differ)."""
        return orjson.dumps(
            {
                "pix": [
                    {
                        "endToEndId": self.e2e[payment_id],
                        "txid": payment_id,
                        "valor": "12.34",
                        "horario": iso(datetime.now(UTC)),
                    },
                    {
                        "endToEndId": self.stray[payment_id],
                        "txid": UNKNOWN_TXID,
                        "valor": "1.00",
                        "horario": iso(datetime.now(UTC)),
                    },
                ]
            }
        )

    def send(self, threads: int = 4, signal_after: int = 40) -> list[threading.Thread]:
        lock = threading.Lock()
        todo = list(self.charges)

        def worker() -> None:
            with httpx.Client(base_url=self.server.url, timeout=15) as client:
                while True:
                    with lock:
                        if not todo:
                            return
                        payment_id = todo.pop(0)
                    body = self.body(payment_id)
                    try:
                        answer = client.post(
                            "/payments/pix/confirmation",
                            content=body,
                            headers=signed_headers(self.server.secret, body),
                        )
                    except httpx.HTTPError as exc:
                        self.answers[payment_id] = type(exc).__name__
                        continue
                    self.answers[payment_id] = answer.status_code
                    if answer.status_code == 200:
                        results = answer.json()["results"]
                        self.outcomes[payment_id] = [r["outcome"] for r in results]
                        with lock:
                            self.acked.add(payment_id)
                            if len(self.acked) >= signal_after:
                                self.enough.set()

        running = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for thread in running:
            thread.start()
        return running


def _fail_mid_flight(
    server: Server, fault: Callable[[], None], count: int, *, after: int
) -> Flight:
    """Sends `count` deliveries and brings `fault` about once `after` of them got a 200,
    while the others are in flight or still to be sent."""
    flight = Flight(server, [server.create_charge("12.34")["id"] for _ in range(count)])
    threads = flight.send(signal_after=after)
    assert flight.enough.wait(60), "the deliveries did not get going"
    fault()
    for thread in threads:
        thread.join(60)
    assert len(flight.answers) == count
    assert all(got == ["paid", "unknown_txid"] for got in flight.outcomes.values())
    assert len(flight.acked) < count, "the fault came after every delivery was answered"
    return flight


def _check_recovery(
    server: Server, flight: Flight, ledger: Callable[[], dict[str, tuple[str | None, str]]]
) -> None:
    """Every 200 is in the ledger, once; no delivery is in it by half; the PSP's retries
    complete the rest, once each.

    `ledger()` reads the received Pix straight from the database: endToEndId ->
    (payment_id, outcome)."""
    ours: dict[str, tuple[str | None, str]] = {}
    for payment_id in flight.charges:
        ours[flight.e2e[payment_id]] = (payment_id, "paid")
        ours[flight.stray[payment_id]] = (None, "unknown_txid")

    def read() -> dict[str, tuple[str | None, str]]:
        return {e2e: row for e2e, row in ledger().items() if e2e in ours}

    # Beyond the 200s, the ledger may hold deliveries that committed but whose answer the
    # fault cut off: the PSP's retry of those must be a duplicate.
    before = read()
    for e2e, row in before.items():
        assert row == ours[e2e], (e2e, row)
    for payment_id in flight.charges:
        whole = (flight.e2e[payment_id] in before, flight.stray[payment_id] in before)
        assert whole in ((True, True), (False, False)), (payment_id, whole)
    for payment_id in flight.acked:
        assert flight.e2e[payment_id] in before, payment_id
        now = server.charge(payment_id)
        assert (now["status"], now["end_to_end_id"]) == ("PAID", flight.e2e[payment_id])

    # The PSP resends every delivery (re-signed, the same endToEndIds).
    for payment_id in flight.charges:
        answer = server.webhook(flight.body(payment_id))
        assert answer.status_code == 200, answer.text
        got = [r["outcome"] for r in answer.json()["results"]]
        expected = (
            ["duplicate", "duplicate"]
            if flight.e2e[payment_id] in before
            else ["paid", "unknown_txid"]
        )
        assert got == expected, (payment_id, flight.answers[payment_id], got)

    assert read() == ours
    paid = {c["id"] for c in server.charges("PAID")}
    assert set(flight.charges) <= paid


def _sqlite_ledger(path: Path) -> Callable[[], dict[str, tuple[str | None, str]]]:
    def read() -> dict[str, tuple[str | None, str]]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT end_to_end_id, payment_id, outcome FROM received_pix")
            return {e2e: (payment_id, outcome) for e2e, payment_id, outcome in rows}
        finally:
            conn.close()

    return read


def _sqlite_paid_events(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT payment_id, count(*) FROM events WHERE type = 'payment.paid' "
            "GROUP BY payment_id"
        )
        return dict(rows.fetchall())
    finally:
        conn.close()


def _pg_ledger(dsn: str) -> Callable[[], dict[str, tuple[str | None, str]]]:
    def read() -> dict[str, tuple[str | None, str]]:
        rows = pg_fetch(dsn, "SELECT end_to_end_id, payment_id, outcome FROM received_pix")
        return {row[0]: (row[1], row[2]) for row in rows}

    return read


def _pg_paid_events(dsn: str) -> dict[str, int]:
    rows = pg_fetch(
        dsn,
        "SELECT payment_id, count(*) FROM events WHERE type = 'payment.paid' GROUP BY payment_id",
    )
    return {row[0]: row[1] for row in rows}


def _kill(server: Server) -> Callable[[], None]:
    def fault() -> None:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)

    return fault


@pytest.mark.postgres
def test_postgres_crash_mid_flight_loses_nothing_answered(
    pg_server: Server, outage: PrivatePostgres
) -> None:
    # `pg_ctl stop` takes a moment to act: the fault comes early, with plenty left to send.
    flight = _fail_mid_flight(pg_server, outage.stop, 250, after=20)
    statuses = {answer for answer in flight.answers.values()}
    assert statuses <= {200, 503}, statuses  # never a 500, never a dropped connection
    assert 503 in statuses
    outage.start()
    wait_until(lambda: ready(pg_server) == 200, "/readyz to say 200 again")
    _check_recovery(pg_server, flight, _pg_ledger(outage.dsn))
    paid = _pg_paid_events(outage.dsn)
    assert all(paid[payment_id] == 1 for payment_id in flight.charges)


def _restart_and_recover_on_sqlite(workdir: Path, server: Server, flight: Flight) -> None:
    """Starts the server again on the same file; the PSP's retries then complete, once."""
    restarted = start_server(workdir, migrate=False, api_key=server.api_key)
    flight.server = restarted
    try:
        database = workdir / "pixlive.db"
        _check_recovery(restarted, flight, _sqlite_ledger(database))
        paid = _sqlite_paid_events(database)
        assert all(paid[payment_id] == 1 for payment_id in flight.charges)
    finally:
        restarted.stop()


def test_kill_9_on_sqlite_loses_nothing_answered(tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    server = start_server(workdir)
    try:
        flight = _fail_mid_flight(server, _kill(server), 200, after=40)
        _restart_and_recover_on_sqlite(workdir, server, flight)
    finally:
        server.stop()


@pytest.mark.postgres
def test_kill_9_on_postgres_loses_nothing_answered(tmp_path: Path, pg_database: str) -> None:
    workdir = tmp_path / "server"
    server = start_server(workdir, PIXLIVE_DATABASE_URL=pg_database)
    try:
        flight = _fail_mid_flight(server, _kill(server), 200, after=40)
        restarted = start_server(
            workdir, migrate=False, api_key=server.api_key, PIXLIVE_DATABASE_URL=pg_database
        )
        flight.server = restarted
        try:
            _check_recovery(restarted, flight, _pg_ledger(pg_database))
            paid = _pg_paid_events(pg_database)
            assert all(paid[payment_id] == 1 for payment_id in flight.charges)
        finally:
            restarted.stop()
    finally:
        server.stop()


# Redis down -----------------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.redis
async def test_redis_down_webhooks_are_still_taken(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    server = await asyncio.to_thread(
        start_server, tmp_path / "server", PIXLIVE_BUS_URL=private_redis.url
    )
    try:
        charges = [server.create_charge("12.34") for _ in range(3)]
        async with asyncio.timeout(90):
            async with (
                websocket(server.url, charges[0]["id"]) as first,
                websocket(server.url, charges[1]["id"]) as second,
            ):
                await ws_messages(first, 1)
                await ws_messages(second, 1)
                private_redis.stop()

                for charge in charges:
                    answer = await asyncio.to_thread(server.pay, charge["id"], "12.34")
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["results"][0]["outcome"] == "paid"
                    assert server.charge(charge["id"])["status"] == "PAID"
                # A retry during the outage is still a duplicate: the ledger is in the
                # database, not on the bus.
                e2e = server.charge(charges[0]["id"])["end_to_end_id"]
                again = await asyncio.to_thread(server.pay, charges[0]["id"], "12.34", e2e)
                assert again.json()["results"][0]["outcome"] == "duplicate"
                ready_now = server.http.get("/readyz")
                assert_error(ready_now, 503, "not_ready")
                assert ready_now.json()["error"]["message"] == "not ready: the bus is unreachable"

                private_redis.start()
                for conn, charge in ((first, charges[0]), (second, charges[1])):
                    (event,) = await ws_messages(conn, 1, timeout=45)
                    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])
        await asyncio.to_thread(
            wait_until, lambda: ready(server) == 200, "/readyz to say 200 again"
        )
    finally:
        server.stop()


def test_sigterm_finishes_in_flight_webhooks(tmp_path: Path) -> None:
    """SIGTERM while the PSP is delivering: what the server took is answered (never a 5xx,
    never cut off half-way), it exits in time, and after a restart the retries of what it
    refused complete, once each."""
    workdir = tmp_path / "server"
    server = start_server(workdir)
    signalled: list[float] = []

    def terminate() -> None:
        assert server.process is not None
        signalled.append(time.monotonic())
        server.process.send_signal(signal.SIGTERM)

    try:
        flight = _fail_mid_flight(server, terminate, 200, after=40)
        assert server.process is not None
        server.process.wait(15)
        assert time.monotonic() - signalled[0] < 10
        answered = {got for got in flight.answers.values() if isinstance(got, int)}
        assert answered <= {200}, answered
        _restart_and_recover_on_sqlite(workdir, server, flight)
    finally:
        server.stop()

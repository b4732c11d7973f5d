"""The baseline: what a common Python stack does for the same flow, with nothing tuned.

python-socketio (ASGI) on uvicorn, with Starlette routes and aiosqlite:
- `POST /payments/pix` creates a charge (INSERT, committed) and answers its id;
- `GET /payments/pix/{id}` answers the charge as JSON (the plain-polling baseline);
- `POST /payments/pix/confirmation` checks the same `Pixlive-Signature` HMAC, records the
  Pix in a ledger (unique endToEndId) and marks the charge PAID in one committed
  transaction, then emits the event to the charge's socket.io room;
- a socket.io client connects with `auth={"payment_id": ...}`, joins that room and gets a
  `snapshot` event.

SQLite runs in WAL mode with `synchronous=FULL` by default (what pixlive promises: a 200
means on disk), `--synchronous NORMAL` for the usual, weaker setting. One aiosqlite
connection; each transaction holds an asyncio lock, as it must on a shared connection.

Run: python -m bench.baseline.server --db PATH --port P --secret S
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import secrets
import sqlite3
import string
import time
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import orjson
import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ALNUM = string.ascii_letters + string.digits
SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id TEXT PRIMARY KEY, value INTEGER NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, paid_at TEXT, end_to_end_id TEXT,
    last_event_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS received_pix (
    end_to_end_id TEXT PRIMARY KEY, txid TEXT, value INTEGER NOT NULL, raw TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def verify(secret: str, header: str | None, body: bytes) -> bool:
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def build(db_path: str, secret: str, synchronous: str) -> Any:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
    state: dict[str, Any] = {}
    lock = asyncio.Lock()
    event_ids = iter(range(1, 1 << 62))

    async def startup() -> None:
        db = await aiosqlite.connect(db_path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={synchronous}")
        await db.executescript(SCHEMA)
        db.row_factory = aiosqlite.Row
        state["db"] = db

    async def shutdown() -> None:
        await state["db"].close()

    def public(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "status": row["status"],
            "value": f"{row['value'] // 100}.{row['value'] % 100:02d}",
            "created_at": row["created_at"],
            "expires_at": row["expires_at"],
            "paid_at": row["paid_at"],
            "end_to_end_id": row["end_to_end_id"],
            "last_event_id": row["last_event_id"],
        }

    async def get_row(charge_id: str) -> Any:
        async with state["db"].execute("SELECT * FROM charges WHERE id = ?", (charge_id,)) as cur:
            return await cur.fetchone()

    async def create(request: Request) -> Response:
        doc = orjson.loads(await request.body())
        whole, _, cents = str(doc["value"]).partition(".")
        value = int(whole) * 100 + int((cents + "00")[:2])
        charge_id = "".join(secrets.choice(ALNUM) for _ in range(25))
        created = datetime.now(UTC)
        expires = datetime.fromtimestamp(
            created.timestamp() + int(doc.get("expires_in", 3600)), UTC
        )
        db = state["db"]
        async with lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.execute(
                    "INSERT INTO charges (id, value, status, created_at, expires_at, last_event_id)"
                    " VALUES (?, ?, 'ACTIVE', ?, ?, ?)",
                    (charge_id, value, created.isoformat(), expires.isoformat(), next(event_ids)),
                )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return json_response(public(await get_row(charge_id)), 201)

    async def read(request: Request) -> Response:
        row = await get_row(request.path_params["charge_id"])
        if row is None:
            return json_response({"error": {"code": "not_found", "message": "no charge"}}, 404)
        return json_response(public(row))

    async def confirmation(request: Request) -> Response:
        body = await request.body()
        if not verify(secret, request.headers.get("pixlive-signature"), body):
            return json_response({"error": {"code": "invalid_signature", "message": "no"}}, 401)
        doc = orjson.loads(body)
        items = doc["pix"] if isinstance(doc["pix"], list) else [doc["pix"]]
        db = state["db"]
        results = []
        emits = []
        for item in items:
            whole, _, cents = str(item["valor"]).partition(".")
            value = int(whole) * 100 + int((cents + "00")[:2])
            txid = item.get("txid")
            async with lock:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    cur = await db.execute(
                        "INSERT OR IGNORE INTO received_pix VALUES (?, ?, ?, ?, ?)",
                        (item["endToEndId"], txid, value, orjson.dumps(item).decode(), now_iso()),
                    )
                    if cur.rowcount == 0:
                        outcome = "duplicate"
                    else:
                        event_id = next(event_ids)
                        cur = await db.execute(
                            "UPDATE charges SET status = 'PAID', paid_at = ?, end_to_end_id = ?,"
                            " last_event_id = ? WHERE id = ? AND status = 'ACTIVE' AND value = ?",
                            (item["horario"], item["endToEndId"], event_id, txid, value),
                        )
                        outcome = "paid" if cur.rowcount == 1 else "mismatch"
                    await db.execute("COMMIT")
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
            if outcome == "paid":
                emits.append(
                    {
                        "id": event_id,
                        "type": "payment.paid",
                        "payment_id": txid,
                        "status": "PAID",
                        "at": now_iso(),
                        "data": {"end_to_end_id": item["endToEndId"], "value": item["valor"]},
                    }
                )
            results.append({"endToEndId": item["endToEndId"], "outcome": outcome})
        for event in emits:
            await sio.emit("payment", event, room=event["payment_id"])
        return json_response({"results": results})

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        payment_id = (auth or {}).get("payment_id") if isinstance(auth, dict) else None
        if not payment_id:
            return False
        row = await get_row(payment_id)
        if row is None:
            return False
        await sio.enter_room(sid, payment_id)
        await sio.emit(
            "snapshot",
            {"type": "snapshot", "last_event_id": row["last_event_id"], "payment": public(row)},
            to=sid,
        )
        return True

    app = Starlette(
        routes=[
            Route("/payments/pix", create, methods=["POST"]),
            Route("/payments/pix/confirmation", confirmation, methods=["POST"]),
            Route("/payments/pix/{charge_id}", read, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
    )
    return socketio.ASGIApp(sio, other_asgi_app=app, on_startup=startup, on_shutdown=shutdown)


def seed(db_path: str, count: int, value: int = 1234) -> list[str]:
    """Charges for the benchmark, made before the server starts (one transaction)."""
    created = datetime.now(UTC)
    expires = datetime.fromtimestamp(created.timestamp() + 7200, UTC).isoformat()
    ids = ["".join(secrets.choice(ALNUM) for _ in range(25)) for _ in range(count)]
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO charges (id, value, status, created_at, expires_at, last_event_id)"
        " VALUES (?, ?, 'ACTIVE', ?, ?, 0)",
        [(i, value, created.isoformat(), expires) for i in ids],
    )
    conn.execute("COMMIT")
    conn.close()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--seed", type=int, default=0, help="charges to create before serving")
    parser.add_argument("--seed-out", help="where to write their ids, one a line")
    args = parser.parse_args()
    if args.seed:
        ids = seed(args.db, args.seed)
        if args.seed_out:
            with open(args.seed_out, "w") as out:
                out.write("\n".join(ids) + "\n")
    uvicorn.run(
        build(args.db, args.secret, args.synchronous),
        host=args.host,
        port=args.port,
        log_level="warning",
        ws_per_message_deflate=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()

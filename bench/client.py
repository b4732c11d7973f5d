"""A load-generating client process, driven by the harness over stdin/stdout (one JSON
command a line in, one JSON answer a line out). It never runs inside a server's process.

Commands (the methods of `Client`): subscribe (hold live subscribers, idle or waiting for
a payment), stats, reset_meter, close; latency (webhook sent → subscriber notified,
perf_counter_ns); prepare_throughput and throughput (signed webhooks at a concurrency);
deliver (pay the charges this process's subscribers watch, counting bytes on them).
"""

from __future__ import annotations

import asyncio
import random
import resource
import sys
import time
from typing import Any

import orjson
import uvloop

from bench import proto


class KeepAlive:
    """A keep-alive connection that reopens itself when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn: proto.HttpConnection | None = None

    async def ensure(self) -> proto.HttpConnection:
        if self.conn is None or self.conn.transport is None or self.conn.transport.is_closing():
            self.conn = await proto.HttpConnection.open(self.host, self.port)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def addr(target: dict[str, Any]) -> tuple[str, int]:
    return target["host"], int(target["port"])


class Client:
    def __init__(self) -> None:
        self.meter = proto.Meter()
        self.subscribers: list[proto.Subscriber] = []
        self.prepared: list[list[tuple[str, bytes]]] = []
        self.conns: list[proto.HttpConnection] = []
        self.servers: list[asyncio.Server] = []
        self.arrivals: dict[str, list[int]] = {}
        self.notified = 0
        self.made = random.randrange(proto.SOURCES)

    async def subscribe(
        self,
        target: dict[str, Any],
        transport: str,
        ids: list[str],
        count: int,
        spread: float = 0.0,
    ) -> dict[str, Any]:
        kind, started = proto.SUBSCRIBERS[transport], time.perf_counter()
        gate = asyncio.Semaphore(64)
        failures: list[str] = []

        def on_event(event: dict[str, Any]) -> None:
            self.notified += 1

        async def one(i: int) -> None:
            if spread:
                await asyncio.sleep(max(0.0, started + spread * i / count - time.perf_counter()))
            async with gate:
                source = proto.source_address(self.made + i)
                phase = random.uniform(0, 2.0)  # polling: spread over the interval
                sub = kind(addr(target), ids[i % len(ids)], self.meter, source, phase)
                if spread:
                    sub.first_timeout = random.uniform(1, 25)
                sub.on_event = on_event
                sub.start()
                self.subscribers.append(sub)
                try:
                    await asyncio.wait_for(asyncio.shield(sub.ready), 60)
                except Exception as exc:
                    failures.append(repr(exc)[:200])

        await asyncio.gather(*(one(i) for i in range(count)))
        self.made += count
        return {"ready": count - len(failures), "failed": len(failures), "errors": failures[:3]}

    async def stats(self) -> dict[str, Any]:
        alive = sum(1 for s in self.subscribers if not s.done.done())
        return {"alive": alive, "notified": self.notified, "meter": self.meter.snapshot()}

    async def reset_meter(self) -> dict[str, Any]:
        self.meter.reset()
        return {}

    async def close(self) -> dict[str, Any]:
        subs, self.subscribers = self.subscribers, []
        for start in range(0, len(subs), 500):
            await asyncio.gather(*(s.stop() for s in subs[start : start + 500]))
        return {"closed": len(subs)}

    async def latency(
        self,
        target: dict[str, Any],
        hook_target: dict[str, Any],
        transport: str,
        ids: list[str],
        secret: str,
        valor: str,
    ) -> dict[str, Any]:
        """For each charge: subscribe, wait for the snapshot, send the signed webhook, and
        time (perf_counter_ns, in this process) until the `payment.paid` event arrives."""
        kind, (host, port) = proto.SUBSCRIBERS[transport], addr(hook_target)
        hook = KeepAlive(host, port)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        lost, bad = 0, []
        for payment_id in ids:
            sub = kind(addr(target), payment_id, proto.NULL_METER)
            got: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()
            sub.on_event = lambda event, got=got: (
                got.done() or got.set_result((time.perf_counter_ns(), event))
            )
            sub.start()
            try:
                await asyncio.wait_for(asyncio.shield(sub.ready), 30)
            except Exception as exc:
                bad.append(f"subscribe {payment_id}: {exc!r}"[:200])
                await sub.stop()
                continue
            await asyncio.sleep(0.002)
            raw = proto.webhook_request(f"{host}:{port}", secret, payment_id, valor)
            conn = await hook.ensure()
            t0 = time.perf_counter_ns()
            answer_future = conn.send(raw)
            try:
                t1, event = await asyncio.wait_for(asyncio.shield(got), 5)
                if event.get("type") != "payment.paid" or event.get("payment_id") != payment_id:
                    bad.append(f"unexpected event {str(event)[:120]}")
                latencies.append((t1 - t0) / 1e6)
            except TimeoutError:
                lost += 1
            answer = await answer_future
            if answer.status != 200 or b'"paid"' not in answer.body:
                bad.append(f"webhook {answer.status} {answer.body[:120]!r}")
            await asyncio.wait([sub.done], timeout=2)
            await sub.stop()
        hook.close()
        return {"latency_ms": latencies, "lost": lost, "errors": bad[:5], "error_count": len(bad)}

    async def prepare_throughput(
        self, target: dict[str, Any], ids: list[str], concurrency: int, secret: str, valor: str
    ) -> dict[str, Any]:
        host, port = addr(target)
        requests = [(i, proto.webhook_request(f"{host}:{port}", secret, i, valor)) for i in ids]
        # each connection its own share: no shared queue in the hot loop
        self.prepared = [requests[i::concurrency] for i in range(concurrency)]
        self.conns = [await proto.HttpConnection.open(host, port) for _ in range(concurrency)]
        return {"prepared": len(requests)}

    async def throughput(self, duration: float = 0) -> dict[str, Any]:
        latencies: list[float] = []
        outcomes: dict[str, int] = {}
        unused: list[str] = []
        perf = time.perf_counter_ns
        stop_at = perf() + int(duration * 1e9)

        async def worker(conn: proto.HttpConnection, batch: list[tuple[str, bytes]]) -> None:
            for n, (_, raw) in enumerate(batch):
                if duration and perf() > stop_at:
                    unused.extend(p for p, _ in batch[n:])
                    return
                t0 = perf()
                answer = await conn.send(raw)
                latencies.append((perf() - t0) / 1e6)
                outcome = str(answer.status)
                if answer.status == 200:
                    outcome = orjson.loads(answer.body)["results"][0]["outcome"]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(
            *(worker(c, b) for c, b in zip(self.conns, self.prepared, strict=True))
        )
        end, cpu = time.perf_counter(), time.process_time() - cpu
        for conn in self.conns:
            conn.close()
        self.prepared, self.conns = [], []
        return {
            "start": start,
            "end": end,
            "latency_ms": latencies,
            "outcomes": outcomes,
            "unused": unused,
            "cpu_seconds": cpu,
        }

    async def deliver(
        self, target: dict[str, Any], secret: str, valor: str, ids: list[str] | None = None
    ) -> dict[str, Any]:
        """Pays the charge of every held subscriber (or `ids`; webhooks at concurrency 10 on
        unmetered connections) and waits for each subscriber's notification and the end of
        its stream."""
        host, port = addr(target)
        subs = list(self.subscribers)
        queue = [s.payment_id for s in subs] if subs else list(ids or [])
        before = self.meter.snapshot()
        # a long poll's pending request carries the notification: count its bytes too
        before["bytes_out"] -= sum(s.inflight for s in subs)
        notified = self.notified

        async def worker() -> None:
            conn = KeepAlive(host, port)
            while queue:
                raw = proto.webhook_request(f"{host}:{port}", secret, queue.pop(), valor)
                await (await conn.ensure()).request(raw)
            conn.close()

        await asyncio.gather(*(worker() for _ in range(10)))
        if subs:
            await asyncio.wait([s.done for s in subs], timeout=10)
        after, delivered = self.meter.snapshot(), self.notified - notified
        meter = {k: after[k] - before[k] for k in after}
        return {"delivered": delivered, "lost": max(0, len(subs) - delivered), "meter": meter}

    # merchant webhooks --------------------------------------------------------------------

    async def receivers(self, ok: int, failing: int) -> dict[str, Any]:
        """Merchant endpoints on loopback: `ok` answering 200, `failing` answering 500; each
        arrival timed (perf_counter_ns, the same clock as the payments') by payment id."""
        for server in self.servers:
            server.close()
        self.servers, self.arrivals = [], {}

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: bytes
        ) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                    if status == b"200 OK":
                        payment_id = orjson.loads(body)["data"]["payment_id"]
                        self.arrivals.setdefault(payment_id, []).append(time.perf_counter_ns())
                    writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                writer.close()  # the sender went away, or this process is exiting

        ports = []
        for status in [b"200 OK"] * ok + [b"500 Internal Server Error"] * failing:
            server = await asyncio.start_server(
                lambda r, w, status=status: handle(r, w, status), "127.0.0.1", 0
            )
            self.servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        return {"ports": ports}

    async def paced(
        self,
        target: dict[str, Any],
        ids: list[str],
        rate: float,
        expect: int,
        secret: str,
        valor: str,
    ) -> dict[str, Any]:
        """Pays `ids` at `rate` a second (0: as fast as 10 connections go); a payment's
        commit is the moment its webhook is answered (after the fsync). Waits for `expect`
        deliveries of each: the latencies commit → delivered, and deliveries/s overall."""
        host, port = addr(target)
        committed: dict[str, int] = {}
        began = time.perf_counter()
        queue = list(enumerate(ids))

        async def worker() -> None:
            conn = KeepAlive(host, port)
            while queue:
                i, payment_id = queue.pop(0)
                if rate:
                    await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
                raw = proto.webhook_request(f"{host}:{port}", secret, payment_id, valor)
                await (await conn.ensure()).request(raw)
                committed[payment_id] = time.perf_counter_ns()
            conn.close()

        await asyncio.gather(*(worker() for _ in range(10)))
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            if all(len(self.arrivals.get(i, ())) >= expect for i in ids):
                break
            await asyncio.sleep(0.05)
        got = [(t, committed[i]) for i in ids for t in self.arrivals.get(i, ())[:expect]]
        first = min(committed.values())
        last = max((t for t, _ in got), default=first)
        return {
            "latency_ms": [(t - c) / 1e6 for t, c in got],
            "lost": len(ids) * expect - len(got),
            "deliveries_per_s": len(got) / max(1e-9, (last - first) / 1e9),
        }


async def serve() -> None:
    client = Client()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(data: dict[str, Any]) -> None:
        sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
        sys.stdout.buffer.flush()

    answer({"hello": True})
    while line := await reader.readline():
        args = orjson.loads(line)
        name = args.pop("cmd")
        if name == "exit":
            await client.close()
            return answer({"ok": True})
        try:
            answer({"ok": True, **await getattr(client, name)(**args)})
        except Exception as exc:  # reported to the harness, which fails the run
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]})


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve())

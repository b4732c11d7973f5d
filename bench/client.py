"""A load-generating client process, driven by the harness over stdin/stdout (one JSON
command a line in, one JSON answer a line out). It never runs inside a server's process.

Commands:
- subscribe: hold live subscribers (idle ones, or ones that wait for a payment)
- stats / reset_meter / close: what the held subscribers saw; the byte meter
- latency: the measured path, webhook sent -> subscriber notified (perf_counter_ns)
- prepare_throughput / throughput: signed webhooks at a given concurrency
- deliver: pay the charges that this process's subscribers watch; count bytes on them
"""

from __future__ import annotations

import asyncio
import random
import resource
import sys
import time
from typing import Any

import orjson

from bench import proto

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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


def _addr(target: dict[str, Any]) -> tuple[str, int]:
    return target["host"], int(target["port"])


class Client:
    def __init__(self) -> None:
        self.meter = proto.Meter()
        self.subscribers: list[proto.Subscriber] = []
        self.prepared: list[list[tuple[str, bytes]]] = []
        self.prepared_target: tuple[str, int] | None = None
        self.notified = 0
        self.made = random.randrange(proto.SOURCES)

    # holding subscribers -------------------------------------------------------------------

    async def subscribe(self, cmd: dict[str, Any]) -> dict[str, Any]:
        base = _addr(cmd["target"])
        transport = cmd["transport"]
        ids: list[str] = cmd["ids"]
        count = int(cmd["count"])
        spread = float(cmd.get("spread", 0.0))
        concurrency = int(cmd.get("concurrency", 64))
        kind = proto.SUBSCRIBERS[transport]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        made: list[proto.Subscriber] = []
        failures: list[str] = []

        def on_event(event: dict[str, Any]) -> None:
            self.notified += 1

        async def one(i: int) -> None:
            if spread:
                await asyncio.sleep(max(0.0, started + spread * i / count - time.perf_counter()))
            async with gate:
                source = proto.source_address(self.made + i)
                if kind is proto.PollingSubscriber:
                    sub: proto.Subscriber = proto.PollingSubscriber(
                        base, ids[i % len(ids)], self.meter, source, random.uniform(0, 2.0)
                    )
                else:
                    sub = kind(base, ids[i % len(ids)], self.meter, source)
                if isinstance(sub, proto.LongPollSubscriber) and spread:
                    sub.first_timeout = random.uniform(1, sub.poll_timeout)
                sub.on_event = on_event
                sub.start()
                made.append(sub)
                try:
                    await asyncio.wait_for(asyncio.shield(sub.ready), 60)
                except Exception as exc:
                    failures.append(repr(exc)[:200])

        await asyncio.gather(*(one(i) for i in range(count)))
        self.made += count
        self.subscribers.extend(made)
        del loop
        return {
            "ready": count - len(failures),
            "failed": len(failures),
            "errors": failures[:3],
            "seconds": time.perf_counter() - started,
            "held": len(self.subscribers),
        }

    def stats(self) -> dict[str, Any]:
        alive = sum(1 for s in self.subscribers if not s.done.done())
        errors = [repr(s.error)[:200] for s in self.subscribers if s.error is not None]
        return {
            "held": len(self.subscribers),
            "alive": alive,
            "errors": len(errors),
            "error_sample": errors[:3],
            "notified": self.notified,
            "meter": self.meter.snapshot(),
        }

    async def close(self) -> dict[str, Any]:
        subs, self.subscribers = self.subscribers, []
        for start in range(0, len(subs), 500):
            await asyncio.gather(*(s.stop() for s in subs[start : start + 500]))
        return {"closed": len(subs)}

    # the measured path --------------------------------------------------------------------

    async def latency(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """For each charge: subscribe, wait for the snapshot, send the signed webhook, and
        time (perf_counter_ns, in this process) until the `payment.paid` event arrives."""
        sub_base = _addr(cmd["target"])
        hook_host, hook_port = _addr(cmd.get("hook_target", cmd["target"]))
        transport = cmd["transport"]
        secret, valor = cmd["secret"], cmd["valor"]
        timeout = float(cmd.get("timeout", 5.0))
        gap = float(cmd.get("gap", 0.002))
        kind = proto.SUBSCRIBERS[transport]
        hook = KeepAlive(hook_host, hook_port)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        responses: list[float] = []
        lost: list[str] = []
        bad: list[str] = []
        for payment_id in cmd["ids"]:
            sub = kind(sub_base, payment_id, proto.NULL_METER)
            got: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()

            def on_event(event: dict[str, Any], got: Any = got) -> None:
                if not got.done():
                    got.set_result((time.perf_counter_ns(), event))

            sub.on_event = on_event
            sub.start()
            try:
                await asyncio.wait_for(asyncio.shield(sub.ready), 30)
            except Exception as exc:
                bad.append(f"subscribe {payment_id}: {exc!r}"[:200])
                await sub.stop()
                continue
            await asyncio.sleep(gap)
            raw = proto.webhook_request(f"{hook_host}:{hook_port}", secret, payment_id, valor)
            conn = await hook.ensure()
            t0 = time.perf_counter_ns()
            answer_future = conn.send(raw)
            try:
                t1, event = await asyncio.wait_for(asyncio.shield(got), timeout)
            except TimeoutError:
                lost.append(payment_id)
                t1, event = 0, {}
            answer = await answer_future
            t2 = time.perf_counter_ns()
            if answer.status != 200 or b'"paid"' not in answer.body:
                bad.append(f"webhook {answer.status} {answer.body[:120]!r}")
            if t1:
                if event.get("type") != "payment.paid" or event.get("payment_id") != payment_id:
                    bad.append(f"unexpected event {str(event)[:120]}")
                latencies.append((t1 - t0) / 1e6)
            responses.append((t2 - t0) / 1e6)
            try:
                await asyncio.wait_for(asyncio.shield(sub.done), 2)
            except TimeoutError:
                pass
            await sub.stop()
        hook.close()
        return {
            "latency_ms": latencies,
            "webhook_ms": responses,
            "lost": len(lost),
            "errors": bad[:5],
            "error_count": len(bad),
        }

    # throughput -----------------------------------------------------------------------------

    async def prepare_throughput(self, cmd: dict[str, Any]) -> dict[str, Any]:
        host, port = _addr(cmd["target"])
        concurrency = int(cmd["concurrency"])
        secret, valor = cmd["secret"], cmd["valor"]
        requests = [
            (i, proto.webhook_request(f"{host}:{port}", secret, i, valor)) for i in cmd["ids"]
        ]
        # each connection its own share: no shared queue in the hot loop
        self.prepared = [requests[i::concurrency] for i in range(concurrency)]
        self.prepared_target = (host, port)
        self.conns = [await proto.HttpConnection.open(host, port) for _ in range(concurrency)]
        return {"prepared": len(requests)}

    async def throughput(self, cmd: dict[str, Any]) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        perf = time.perf_counter_ns
        duration = float(cmd.get("duration", 0)) or None
        stop_at = 0

        unused: list[str] = []

        async def worker(conn: proto.HttpConnection, batch: list[tuple[str, bytes]]) -> None:
            for n, (_payment_id, raw) in enumerate(batch):
                if duration is not None and perf() > stop_at:
                    unused.extend(p for p, _ in batch[n:])
                    return
                t0 = perf()
                answer = await conn.send(raw)
                latencies.append((perf() - t0) / 1e6)
                key = str(answer.status)
                statuses[key] = statuses.get(key, 0) + 1
                if answer.status == 200:
                    outcome = orjson.loads(answer.body)["results"][0]["outcome"]
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

        start = time.perf_counter()
        cpu = time.process_time()
        stop_at = perf() + int((duration or 0) * 1e9)
        await asyncio.gather(
            *(worker(c, b) for c, b in zip(self.conns, self.prepared, strict=True))
        )
        end = time.perf_counter()
        cpu = time.process_time() - cpu
        for conn in self.conns:
            conn.close()
        self.prepared, self.conns = [], []
        return {
            "start": start,
            "end": end,
            "latency_ms": latencies,
            "statuses": statuses,
            "outcomes": outcomes,
            "unused": unused,
            "cpu_seconds": cpu,
        }

    # delivery cost --------------------------------------------------------------------------

    async def deliver(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Pays the charge of every held subscriber (webhooks on unmetered connections) and
        waits for each subscriber's notification and the end of its stream."""
        host, port = _addr(cmd["target"])
        secret, valor = cmd["secret"], cmd["valor"]
        concurrency = int(cmd.get("concurrency", 10))
        timeout = float(cmd.get("timeout", 10))
        subs = list(self.subscribers)
        ids = [s.payment_id for s in subs] if subs else list(cmd.get("ids", []))
        before = self.meter.snapshot()
        # a long poll's pending request carries the notification: count its bytes too
        before["bytes_out"] -= sum(getattr(s, "inflight", 0) for s in subs)
        notified_before = self.notified
        queue = list(ids)
        statuses: dict[str, int] = {}

        async def worker() -> None:
            conn = KeepAlive(host, port)
            while queue:
                payment_id = queue.pop()
                raw = proto.webhook_request(f"{host}:{port}", secret, payment_id, valor)
                answer = await (await conn.ensure()).request(raw)
                statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
            conn.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(ids)) or 1)))
        if subs:
            await asyncio.wait([s.done for s in subs], timeout=timeout)
        end = time.perf_counter()
        after = self.meter.snapshot()
        delivered = self.notified - notified_before
        return {
            "seconds": end - start,
            "webhooks": len(ids),
            "statuses": statuses,
            "delivered": delivered,
            "lost": max(0, len(subs) - delivered),
            "meter": {k: after[k] - before[k] for k in after},
        }


async def serve() -> None:
    client = Client()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def answer(data: dict[str, Any]) -> None:
        out.write(orjson.dumps(data) + b"\n")
        out.flush()

    answer({"hello": True, "nofile": raise_nofile()})
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = orjson.loads(line)
        name = cmd["cmd"]
        try:
            if name == "subscribe":
                result = await client.subscribe(cmd)
            elif name == "stats":
                result = client.stats()
            elif name == "reset_meter":
                client.meter.reset()
                result = {}
            elif name == "latency":
                result = await client.latency(cmd)
            elif name == "prepare_throughput":
                result = await client.prepare_throughput(cmd)
            elif name == "throughput":
                result = await client.throughput(cmd)
            elif name == "deliver":
                result = await client.deliver(cmd)
            elif name == "close":
                result = await client.close()
            elif name == "exit":
                await client.close()
                answer({"ok": True})
                return
            else:
                raise ValueError(f"unknown command {name}")
            answer({"ok": True, **result})
        except Exception as exc:  # reported to the harness, which fails the run
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]})


def main() -> None:
    raise_nofile()
    if uvloop is not None:
        uvloop.run(serve())
    else:  # pragma: no cover
        asyncio.run(serve())


if __name__ == "__main__":
    main()

"""Prometheus metrics: what an operator watches (GET /metrics).

With `serve --workers N` each worker counts in files of its own under
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode), and whichever worker
answers a scrape sums them all: without that, each scrape saw one worker's figures.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@contextlib.contextmanager
def shared_across_workers(workers: int) -> Iterator[None]:
    """For `serve --workers N` (N > 1): a fresh directory for the workers' metric files,
    set before they start (they read it on import) and removed after them, so that a
    restart does not add the last run's counts. An operator's own directory is kept."""
    if workers <= 1 or _multiprocess():
        yield
        return
    directory = tempfile.mkdtemp(prefix="pixlive-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def exposition() -> bytes:
    """The text of a scrape: this process's metrics, or every worker's summed."""
    if not _multiprocess():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


if _multiprocess():
    # A worker that stops takes its live gauges (subscribers) out of the sums.
    atexit.register(multiprocess.mark_process_dead, os.getpid())


subscribers = Gauge(
    "pixlive_subscribers", "Live subscribers", ["transport"], multiprocess_mode="livesum"
)
events_published = Counter("pixlive_events_published_total", "Events published after commit")
events_delivered = Counter(
    "pixlive_events_delivered_total", "Events handed to live subscribers", ["transport"]
)
subscribers_dropped = Counter(
    "pixlive_subscribers_dropped_total", "Subscribers disconnected for not keeping up"
)
bus_reconnects = Gauge(
    "pixlive_bus_reconnects",
    "Times the bus subscription was re-established",
    multiprocess_mode="livesum",
)
webhook_pix = Counter("pixlive_webhook_pix_total", "Pix received by the webhook", ["outcome"])
webhook_rejected = Counter(
    "pixlive_webhook_rejected_total", "Webhook deliveries refused", ["reason"]
)
webhook_attempts = Counter(
    "pixlive_webhook_attempts_total", "Merchant webhook attempts, by outcome", ["outcome"]
)
webhook_attempt_seconds = Histogram(
    "pixlive_webhook_attempt_seconds",
    "Merchant webhook attempt latency (request sent to answer read)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
# Read from the shared database by every worker: the largest reading is the current one.
webhook_queue_depth = Gauge(
    "pixlive_webhook_queue_depth", "Merchant webhook deliveries pending", multiprocess_mode="max"
)
webhook_oldest_pending = Gauge(
    "pixlive_webhook_oldest_pending_seconds",
    "How long the oldest due delivery has waited",
    multiprocess_mode="max",
)
psp_errors = Counter("pixlive_psp_errors_total", "Calls to the PSP (API Pix) that failed", ["kind"])
psp_latency = Histogram(
    "pixlive_psp_call_seconds", "Time of a call to the PSP (API Pix)", ["operation"]
)
reconcile_found = Counter(
    "pixlive_reconcile_found_total", "Pix found by the GET /pix sweep that no webhook had brought"
)
reconcile_lag = Gauge(
    "pixlive_reconcile_lag_seconds",
    "How far behind now the last completed sweep reached",
    multiprocess_mode="max",
)

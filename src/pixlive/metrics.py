"""Prometheus metrics: what an operator watches (GET /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

subscribers = Gauge("pixlive_subscribers", "Live subscribers", ["transport"])
events_published = Counter("pixlive_events_published_total", "Events published after commit")
events_delivered = Counter(
    "pixlive_events_delivered_total", "Events handed to live subscribers", ["transport"]
)
subscribers_dropped = Counter(
    "pixlive_subscribers_dropped_total", "Subscribers disconnected for not keeping up"
)
bus_reconnects = Gauge("pixlive_bus_reconnects", "Times the bus subscription was re-established")
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
webhook_queue_depth = Gauge("pixlive_webhook_queue_depth", "Merchant webhook deliveries pending")
webhook_oldest_pending = Gauge(
    "pixlive_webhook_oldest_pending_seconds", "How long the oldest due delivery has waited"
)
psp_errors = Counter("pixlive_psp_errors_total", "Calls to the PSP (API Pix) that failed", ["kind"])
psp_latency = Histogram(
    "pixlive_psp_call_seconds", "Time of a call to the PSP (API Pix)", ["operation"]
)
reconcile_found = Counter(
    "pixlive_reconcile_found_total", "Pix found by the GET /pix sweep that no webhook had brought"
)
reconcile_lag = Gauge(
    "pixlive_reconcile_lag_seconds", "How far behind now the last completed sweep reached"
)

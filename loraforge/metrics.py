"""The service's Prometheus metrics, defined once so every module records into the same objects.

They live in prometheus-client's default registry. `GET /metrics` renders that registry plus
collectors that read the database at scrape time (job counts per status, queue depth), so those
figures are true for the whole fleet rather than for one process. Counters and histograms here
are per process: each API or worker process exports what it did itself.
Names and units follow the Prometheus naming guide (https://prometheus.io/docs/practices/naming/):
seconds and bytes, `_total` on counters (added by prometheus-client).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRAIN_STEP_SECONDS = Histogram(
    "loraforge_train_step_seconds",
    "Wall time of one optimizer step of a training job, in seconds.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)

RUNNER_RESIDENT_BYTES = Gauge(
    "loraforge_runner_resident_bytes",
    "Bytes of parameters and buffers of the pipelines the inference runner holds, per device.",
    ["device"],
)

RUNNER_BUDGET_BYTES = Gauge(
    "loraforge_runner_budget_bytes",
    "The inference runner's memory budget in bytes (LORAFORGE_GPU_MEMORY_GB, or the device's total).",
    ["device"],
)

WEBHOOK_DELIVERIES = Counter(
    "loraforge_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, retry, failed, disabled, redirected).",
    ["outcome"],
)

"""The service's Prometheus metrics, defined once so every module records into the same objects.

They live in prometheus-client's default registry. `GET /metrics` renders that registry plus
collectors that read the database at scrape time (job counts per status, queue depth), so those
figures are true for the whole fleet rather than for one process. Counters and histograms here
are per process: each API or worker process exports what it did itself.
Names and units follow the Prometheus naming guide (https://prometheus.io/docs/practices/naming/):
seconds and bytes, `_total` on counters (added by prometheus-client).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

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

LEASE_RENEWAL_FAILURES = Counter(
    "loraforge_lease_renewal_failures",
    "Job lease renewals that failed (database unreachable) and were retried on the next heartbeat.",
)

JOB_CHILD_EXITS = Counter(
    "loraforge_job_child_exits",
    "Job child processes that ended, by how: ok, stopped, error (reported), crashed (signal or exit code), killed "
    "(time limit or lost lease).",
    ["outcome"],
)

GENERATION_QUEUE_DEPTH = Gauge(
    "loraforge_generation_queue_depth",
    "Generation requests waiting in this API process's generation queue (not counting the running one).",
)

GENERATIONS_IN_FLIGHT = Gauge(
    "loraforge_generations_in_flight",
    "Generation requests accepted by this API process and not finished (waiting plus running).",
)


@dataclass(frozen=True)
class FleetFigures:
    """What the database says at scrape time: jobs per status, REQUESTED jobs per machine type."""

    jobs: dict[str, int]
    queue_depth: dict[str, int]


class FleetCollector(Collector):
    """Reads FleetFigures through `read()` at scrape time, at most once per `ttl_s` seconds.

    The cache keeps a scraper (or a client hammering /metrics) from turning into a database load.
    When the database cannot be read the two families are exported without samples (and the
    failure logged), so the scrape still answers this process's own metrics.
    """

    clock = staticmethod(time.monotonic)  # the cache's clock, for tests to replace

    def __init__(self, read: Callable[[], FleetFigures], ttl_s: float = 5.0) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._cached: tuple[float, FleetFigures] | None = None
        self._lock = threading.Lock()

    def figures(self) -> FleetFigures:
        """The cached figures, read again when older than ttl_s; empty ones if the read fails."""
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] > self._ttl_s:
                try:
                    self._cached = (now, self._read())
                except Exception as exc:  # noqa: BLE001 -- a scrape still answers this process's metrics
                    logger.warning("metrics: could not read the job figures from the database: %s", exc)
                    return FleetFigures(jobs={}, queue_depth={})
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        jobs = GaugeMetricFamily("loraforge_jobs", "Jobs in the database per status.", labels=["status"])
        for status, count in sorted(figures.jobs.items()):
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily("loraforge_queue_depth", "Jobs waiting for a worker (REQUESTED) per machine type.",
                                  labels=["machine_type"])
        for machine_type, count in sorted(figures.queue_depth.items()):
            depth.add_metric([machine_type], count)
        yield depth

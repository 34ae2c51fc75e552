"""`loraforge worker [--machine-type NVIDIA_H100]`: one GPU worker of a fleet, fed by Celery.

It needs `LORAFORGE_BROKER_URL` (Redis or RabbitMQ), a shared database and an S3 store. It consumes
only the queue of its machine type, one job at a time (solo pool, prefetch 1, late acks), and at
start ends the job children a dead predecessor on this host left behind and requeues jobs whose
worker died, so a job killed mid-training resumes from its last stored checkpoint on whichever
worker takes it. Each job's GPU work runs in a child process that exits after the job, so the
worker itself never holds a model (nor imports torch). The runtime is built by
loraforge.runtime.run_worker, the composition root `serve` uses too.
"""

from __future__ import annotations

import argparse
from typing import Any

from loraforge.config import load_settings
from loraforge.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="run a GPU worker of a fleet (needs LORAFORGE_BROKER_URL)")
    parser.add_argument("--machine-type", default=None,
                        help="the machine_type whose jobs to take (default: LORAFORGE_MACHINE_TYPE)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loraforge.doctor import start_checks
    from loraforge.runtime import run_worker

    settings = load_settings()
    if not settings.uses_broker:
        raise ConfigError(
            "loraforge worker needs LORAFORGE_BROKER_URL=redis://... or amqp://...; without a broker, "
            "`loraforge serve` runs the worker inside the API process"
        )
    start_checks(settings, "worker")  # loraforge.doctor: refuse to start without weights, store, broker
    return run_worker(settings, args.machine_type or settings.machine_type)

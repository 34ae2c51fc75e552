"""Celery configuration for a worker fleet: one job per GPU, late acks, generous broker timeouts.

A training job runs for minutes to hours, so the broker must not hand its message to another
worker while the first is still busy: Redis's visibility timeout and RabbitMQ's consumer timeout
are set above `LORAFORGE_JOB_TIMEOUT_S`. Messages are acknowledged only after the task returns and
are rejected back to the queue if the worker process dies (acks_late + reject_on_worker_lost);
the DB lease stops the redelivered copy from training a second time. Each machine type has its own
queue, so `loraforge worker --machine-type NVIDIA_H100` only takes jobs submitted for that GPU.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from loraforge.config import Settings

RUN_JOB_TASK = "loraforge.run_job"
# Above the longest job so a running job's message is never handed to a second worker.
TIMEOUT_MARGIN_S = 3600


def queue_name(machine_type: str) -> str:
    return f"loraforge.{machine_type}"


def job_queue(settings: Settings, machine_type: str) -> Queue:
    """The queue of one machine type, declared identically by publishers and workers."""
    arguments = None
    if settings.broker_url.startswith(("amqp", "pyamqp")):
        # RabbitMQ closes a channel whose delivery stays unacked past its consumer timeout.
        arguments = {"x-consumer-timeout": broker_timeout_s(settings) * 1000}
    return Queue(queue_name(machine_type), queue_arguments=arguments)


def broker_timeout_s(settings: Settings) -> int:
    return settings.job_timeout_s + TIMEOUT_MARGIN_S


def make_celery(settings: Settings, machine_type: str | None = None) -> Celery:
    app = Celery("loraforge", broker=settings.broker_url, set_as_current=False)
    queue = job_queue(settings, machine_type or settings.machine_type)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queue.name,
        task_queues=[queue],
        # Redis: an unacked message is redelivered only after this long.
        broker_transport_options={"visibility_timeout": broker_timeout_s(settings)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app

"""The hand-off of one device between training and serving inside one process.

Where the embedded worker trains on the device that also serves `/v1` (the default), the
inference runner must hand its memory over before a job's GPU work starts and may load again
only once it is over. The worker wraps a job's GPU work in `gpu_work(settings)`: it marks the
training device busy, then releases every registered runner on that device (waiting for a
generation in flight to finish). Queued generations call `wait_until_free(deadline)` and hold off
while it is busy; a runner on another device (LORAFORGE_INFERENCE_DEVICE=cuda:1) is never held
(its `on_training_device` is false). In a fleet worker (LORAFORGE_BROKER_URL set) the runners of
the process are also released when the job's GPU work ends, so the worker keeps no inference
pipeline between jobs. Training always uses the default device, so this module never needs to
name it and never imports torch: the API process imports torch only if it serves `/v1` itself.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from loraforge.config import Settings

logger = logging.getLogger(__name__)


class Releasable(Protocol):
    on_training_device: bool

    def release(self) -> int: ...


_runners: weakref.WeakSet[Any] = weakref.WeakSet()
_training = 0  # jobs of this process whose GPU work holds the training device
_changed = threading.Condition()


def register(runner: Releasable) -> None:
    """Let `gpu_work` release `runner` when training needs its device (kept by weak reference)."""
    _runners.add(runner)


def busy() -> bool:
    """Whether a job of this process holds the training device now."""
    with _changed:
        return _training > 0


def wait_until_free(deadline: float) -> bool:
    """Block until no training holds the device or `deadline` (time.monotonic) passes; True if free."""
    with _changed:
        while _training > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _changed.wait(left)
        return True


def release_training_device() -> int:
    """Release every registered runner on the training device; the bytes freed."""
    return sum(runner.release() for runner in list(_runners) if runner.on_training_device)


@contextmanager
def gpu_work(settings: Settings) -> Iterator[None]:
    """Hold the training device for a job's GPU work (dataset preparation, training, deploy check)."""
    global _training
    with _changed:
        _training += 1
    try:
        freed = release_training_device()
        if freed:
            logger.info("released %.4g GB of inference pipelines for training", freed / 1e9)
        yield
    finally:
        with _changed:
            _training -= 1
            _changed.notify_all()
        if settings.uses_broker:
            for runner in list(_runners):
                runner.release()

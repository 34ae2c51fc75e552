"""The hand-off of one device between training and serving inside one process.

Where the embedded worker trains on the device that also serves `/v1` (the default), the
inference runner must hand its memory over before a job's GPU work starts and may load again
only once it is over. The worker wraps a job's GPU work in `gpu_work(settings)`: it marks the
training device busy, then releases every registered runner on that device (waiting for a
generation in flight to finish). Queued generations call `wait_until_free(device, deadline)`
and hold off while it is busy; a runner on another device (LORAFORGE_INFERENCE_DEVICE=cuda:1)
is never held. In a fleet worker (LORAFORGE_BROKER_URL set) the runners of the process are also
released when the job's GPU work ends, so the worker keeps no inference pipeline between jobs.
This module never imports torch itself: the device names are resolved by the caller's runner.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from loraforge.config import Settings

logger = logging.getLogger(__name__)


class Releasable(Protocol):
    device: str

    def release(self) -> int: ...


_runners: weakref.WeakSet[Any] = weakref.WeakSet()
_busy: Counter[str] = Counter()
_changed = threading.Condition()


def register(runner: Releasable) -> None:
    """Let `gpu_work` release `runner` when training needs its device (kept by weak reference)."""
    _runners.add(runner)


def busy(device: str) -> bool:
    with _changed:
        return _busy[device] > 0


def wait_until_free(device: str, deadline: float) -> bool:
    """Block until no training holds `device` or `deadline` (time.monotonic) passes; True if free."""
    with _changed:
        while _busy[device] > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _changed.wait(left)
        return True


def release_device(device: str) -> int:
    """Release every registered runner on `device`; the bytes freed."""
    return sum(runner.release() for runner in list(_runners) if runner.device == device)


@contextmanager
def gpu_work(settings: Settings) -> Iterator[None]:
    """Hold the training device for a job's GPU work (dataset preparation, training, deploy check)."""
    from loraforge.inference.memory import resolve_device

    device = resolve_device(None)
    with _changed:
        _busy[device] += 1
    try:
        freed = release_device(device)
        if freed:
            logger.info("released %.2f GB of inference pipelines on %s for training", freed / 1e9, device)
        yield
    finally:
        with _changed:
            _busy[device] -= 1
            _changed.notify_all()
        if settings.uses_broker:
            for runner in list(_runners):
                runner.release()

"""The generation queue: one worker thread runs generations in order, behind a bounded wait list.

Generations take seconds to minutes of the device each, so they never run in the shared thread
pool that authentication, the database and the other routes need: `submit(work)` puts the work on
this queue's own thread and answers a Future at once. When `size` generations already wait it
raises ServiceBusyError (503) with a Retry-After estimated from the mean time of recent
generations, so a burst is refused quickly instead of piling up. Each item carries a deadline
(`LORAFORGE_INFERENCE_WAIT_S` after it was queued): one still waiting then (say, behind a
training job that holds the device) ends with the same 503 rather than waiting forever. A Future
cancelled while it waits (the client went away) is skipped.
"""

from __future__ import annotations

import logging
import math
import queue as stdlib_queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from loraforge.errors import ServiceBusyError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[float], T]  # work(deadline) -> result; deadline is a time.monotonic() value

# Starting guess for one generation's duration before any has been timed (s), and how fast the
# running mean follows new timings (exponential moving average weight).
INITIAL_SECONDS = 5.0
SMOOTHING = 0.2
BUSY_RETRY_S = 30  # Retry-After when the device is held by training (its end is unknown)


class GenerationQueue:
    """A bounded FIFO of generations and the one thread that runs them."""

    def __init__(self, size: int, wait_s: float) -> None:
        self.size = size
        self.wait_s = wait_s
        self._items: stdlib_queue.Queue[tuple[Future[Any], Work[Any], float] | None] = stdlib_queue.Queue(size)
        self._mean_s = INITIAL_SECONDS
        self._in_flight = 0  # waiting + running
        self._count_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loraforge-generation", daemon=True)
        self._thread.start()

    def submit(self, work: Work[T]) -> Future[T]:
        """Queue `work(deadline)`; raises ServiceBusyError when the wait list is full or closed."""
        future: Future[T] = Future()
        if self._closed.is_set():
            raise ServiceBusyError("the service is shutting down; retry in a moment", BUSY_RETRY_S)
        try:
            self._items.put_nowait((future, work, time.monotonic() + self.wait_s))
            self._count(+1)
        except stdlib_queue.Full:
            raise ServiceBusyError(
                f"the generation queue is full ({self.size} requests waiting); retry after "
                f"{self.retry_after_s()} s", self.retry_after_s(),
            ) from None
        return future

    def depth(self) -> int:
        """Generations waiting (not counting the one running)."""
        return self._items.qsize()

    def in_flight(self) -> int:
        """Generations accepted and not finished: waiting plus running."""
        return self._in_flight

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._in_flight += delta

    def retry_after_s(self) -> int:
        """Seconds until the wait list has likely drained by one: waiting x mean generation time."""
        return max(1, math.ceil(self._mean_s * max(1, self.depth())))

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new work, fail what waits with 503, and stop after the generation running now."""
        self._closed.set()
        while True:
            try:
                item = self._items.get_nowait()
            except stdlib_queue.Empty:
                break
            if item is None:
                continue
            self._count(-1)
            if item[0].set_running_or_notify_cancel():
                item[0].set_exception(ServiceBusyError("the service is shutting down; retry in a moment",
                                                       BUSY_RETRY_S))
        self._items.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._items.get()
            if item is None:
                return
            try:
                self._run(*item)
            finally:
                self._count(-1)

    def _run(self, future: Future[Any], work: Work[Any], deadline: float) -> None:
        if not future.set_running_or_notify_cancel():
            return  # the client gave up while it waited
        if time.monotonic() > deadline:
            future.set_exception(ServiceBusyError(
                f"the request waited {self.wait_s:.0f} s for the device; retry later", BUSY_RETRY_S))
            return
        started = time.monotonic()
        try:
            future.set_result(work(deadline))
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting request, which renders it
            future.set_exception(exc)
        else:
            self._mean_s += SMOOTHING * (time.monotonic() - started - self._mean_s)

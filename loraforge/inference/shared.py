"""The one InferenceRunner of a process, made on first use and shared by deploys and generation.

`SharedRunner(settings).get()` returns the process's runner, creating it under a lock the first
time: the job pipeline (deploy warms the model) and `POST /v1/{slug}` both call it, so a deploy
and a first request arriving together still build a single runner and a single base pipeline.
`current` is the runner once made, else None. torch is imported only when the runner is first
made, so the API starts without it. The runner is registered with loraforge.inference.handoff,
so a job's GPU work in this process can release it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from loraforge.config import Settings

if TYPE_CHECKING:
    from loraforge.inference.runner import InferenceRunner


class SharedRunner:
    """Holds the process's InferenceRunner, built from `settings` the first time `get()` is called."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: InferenceRunner | None = None
        self._lock = threading.Lock()

    def get(self) -> InferenceRunner:
        runner = self.current
        if runner is not None:
            return runner
        with self._lock:
            if self.current is None:
                from loraforge.inference import handoff
                from loraforge.inference.runner import InferenceRunner

                runner = InferenceRunner(self.settings)
                handoff.register(runner)
                self.current = runner
            return self.current

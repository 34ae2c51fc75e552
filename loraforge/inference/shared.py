"""The one InferenceRunner of a process, made on first use and shared by deploys and generation.

`runner_for(state, settings)` returns `state.runner`, creating it under one lock the first time:
the job pipeline (deploy warms the model) and `POST /v1/{slug}` both call it, so a deploy and a
first request arriving together still build a single runner and a single base pipeline. `state`
is anything with attributes (the app's `app.state`, or a namespace in a worker process). torch is
imported only when the runner is first made, so the API starts without it. The runner is
registered with loraforge.inference.handoff, so a job's GPU work in this process can release it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from loraforge.config import Settings

if TYPE_CHECKING:
    from loraforge.inference.runner import InferenceRunner

# One lock for every holder: creation is rare and quick to check, and a lock kept on the state
# itself would have its own first-use race.
_creation_lock = threading.Lock()


def runner_for(state: Any, settings: Settings) -> InferenceRunner:
    """`state.runner`, created from `settings` the first time any caller asks."""
    runner: InferenceRunner | None = getattr(state, "runner", None)
    if runner is not None:
        return runner
    with _creation_lock:
        runner = getattr(state, "runner", None)
        if runner is None:
            from loraforge.inference import handoff
            from loraforge.inference.runner import InferenceRunner

            runner = InferenceRunner(settings)
            handoff.register(runner)
            state.runner = runner
        return runner

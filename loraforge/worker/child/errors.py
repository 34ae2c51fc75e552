"""What the job's child reports when a stage raises: the one place that sorts an exception into the
error kinds of the protocol's Error message.

"oom" when memory ran out (training.oom.is_oom, the message from training.oom.oom_message), "user"
for a LoraforgeError the user can act on (bad data, a diverged loss, a job that cannot fit), and
"internal" for anything else, which the worker retries from the newest checkpoint. The worker's side
of the same rule is `Error.user_can_act` (worker/child/protocol.py).
"""

from __future__ import annotations

import logging

from loraforge.errors import LoraforgeError
from loraforge.training.oom import chain_text, is_oom, oom_message
from loraforge.worker.child.protocol import Error

logger = logging.getLogger("loraforge.worker.child.main")  # the child's log lines keep its name


def error_for(exc: Exception, stage: str, device: str) -> Error:
    """The Error the child sends for `exc`, raised while in `stage` on `device`; logs it too (call it
    from the `except` block, so that an internal error's traceback is logged)."""
    if is_oom(exc):  # torch.OutOfMemoryError, MemoryError, or a RuntimeError saying so, raised as it is or wrapped
        logger.error("out of memory during %s: %s", stage, chain_text(exc))
        return Error(error_kind="oom", stage=stage, message=oom_message(stage, exc, device))
    if isinstance(exc, LoraforgeError):
        logger.error("%s failed: %s", stage, exc.message)
        return Error(error_kind="user", stage=stage, message=exc.message)
    logger.exception("unexpected error during %s", stage)
    return Error(error_kind="internal", stage=stage, message=f"{type(exc).__name__}: {exc}")

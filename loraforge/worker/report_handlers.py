"""What the worker does with each message of a job's child: the handler table.

The child (worker/child/main.py) reports in the messages of worker/child/protocol.py; the worker's
supervise loop (worker/job_run.py) looks the message's type up in `HANDLERS` and calls
`handler(job, message)` on its own thread, so handlers may write the database and the object store
(the child never does). Every write that matters is fenced by the worker's lease (`job.owner`). A
new message is one dataclass in the protocol, one function here and one line in the table; a kind
this worker does not know is logged and ignored (worker/processes.py), so an older worker survives
a newer child.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.exc import DBAPIError

from loraforge.db.job_models import JobRun
from loraforge.errors import StorageError
from loraforge.families.registry import lora_is_public
from loraforge.jobstate import lease
from loraforge.jobstate.events import ProgressWriter, move, record_event
from loraforge.jobstate.statuses import JobStatus
from loraforge.metrics import TRAIN_STEP_SECONDS
from loraforge.storage import keys
from loraforge.worker import artifacts, training_outputs
from loraforge.worker.child import protocol
from loraforge.worker.dataset_report import store_dataset_report
from loraforge.worker.processes import ChildProcess
from loraforge.worker.training_outputs import LossRecorder

if TYPE_CHECKING:
    from loraforge.worker.job_run import WorkerContext

logger = logging.getLogger(__name__)
S = JobStatus
# A managed PostgreSQL fails over in about 60-120 s (AWS RDS Multi-AZ documentation: "typically
# 60-120 seconds"); 90 s covers most. Past it the job ends FAILED naming the error, or, while the
# database stays away, its lease lapses and recovery resumes it from the newest checkpoint.
DB_RETRY_BUDGET_S = 90.0
DB_RETRY_WAIT_S = (0.25, 0.5, 1.0, 2.0)  # then 2 s between tries until the budget is spent
# SQLSTATEs of a connection the server ended: class 08 (connection exception) and 57P01-57P03
# (admin shutdown, crash shutdown, cannot connect now), PostgreSQL manual, appendix A.
_DISCONNECT_STATES = ("08", "57P01", "57P02", "57P03")


@dataclass
class JobContext:
    """One job on one worker, as the handlers see it: ids, the child, and what it reported so far."""

    worker: WorkerContext
    job_id: str
    slug: str
    base_model: str
    work_dir: Path
    child: ChildProcess
    writer: ProgressWriter
    recorder: LossRecorder
    status: JobStatus = S.REQUESTED
    step: int | None = None
    total_steps: int | None = None
    deployed: bool = False
    error: protocol.Error | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return self.worker.owner

    def move(self, new: JobStatus, **fields: Any) -> None:
        """A status move fenced by this worker's lease (LeaseLost if another worker holds the job);
        `move` writes the webhook message in the same transaction."""
        with self.worker.sessions() as session:
            move(session, self.job_id, new, owner=self.owner, **fields)
        self.status = new

    def record_run(self, **values: Any) -> None:
        """Update the job's run row while this worker holds the lease; LeaseLost otherwise."""
        with self.worker.sessions() as session:
            result = session.execute(
                update(JobRun).where(JobRun.job_id == self.job_id, JobRun.lease_owner == self.owner)
                .values(**values).execution_options(synchronize_session=False))
            session.commit()
            if cast(CursorResult[Any], result).rowcount != 1:  # an UPDATE's result is a CursorResult
                raise lease.LeaseLost(f"job {self.job_id}: the lease of {self.owner} was taken over")

    def check_lease(self) -> None:
        with self.worker.sessions() as session:
            lease.check_held(session, self.job_id, self.owner)


def on_progress(job: JobContext, msg: protocol.Progress) -> None:
    job.step, job.total_steps = msg.step, msg.total
    if msg.step_seconds:
        TRAIN_STEP_SECONDS.observe(msg.step_seconds)
    progress = SimpleNamespace(step=msg.step, total_steps=msg.total, loss=msg.loss, eta_seconds=msg.eta_seconds,
                               lr=msg.lr, step_seconds=msg.step_seconds)
    job.writer(progress)
    job.recorder(progress)


def on_checkpoint(job: JobContext, msg: protocol.Checkpoint) -> None:
    """Store the checkpoint, record it, drop the older one, then let the child go on."""
    step, path = msg.step, msg.path
    out_dir = job.work_dir / "train"
    job.check_lease()  # a stale worker must not overwrite the new holder's checkpoint keys
    artifacts.upload_checkpoint(job.worker.store, job.job_id, path, step)
    job.record_run(checkpoint_step=step, checkpoint_dir=path.relative_to(out_dir).as_posix())
    artifacts.prune_checkpoints(job.worker.store, job.job_id, step)
    logger.info("job %s: checkpoint step %d stored", job.job_id, step)
    job.child.send(protocol.Ack(step))


def on_dataset(job: JobContext, msg: protocol.Dataset) -> None:
    """Preparation wrote its report (also when it refused the dataset): store and summarise it."""
    job.check_lease()
    store_dataset_report(job.worker.store, job.worker.sessions, job.job_id, msg.report_path)


def on_stage(job: JobContext, msg: protocol.Stage) -> None:
    """The child finished preparing the data and starts training."""
    if msg.name == "train" and job.status is S.DATA_PROCESSING:
        job.move(S.TRAINING_INITIATED)


def on_sample(job: JobContext, msg: protocol.Sample) -> None:
    job.check_lease()
    training_outputs.store_sample(job.worker.store, job.worker.sessions, job.job_id, msg.step, msg.index,
                                  msg.prompt, msg.path)


def on_intermediate(job: JobContext, msg: protocol.Intermediate) -> None:
    job.check_lease()
    training_outputs.store_intermediate(job.worker.store, job.worker.sessions, job.job_id, job.slug, msg.step,
                                        msg.path)


def on_note(job: JobContext, msg: protocol.Note) -> None:
    """A fact the user should see in details (e.g. why the demo model trains small)."""
    text = msg.message[:2000]
    if text:
        job.notes.append(text)
        with job.worker.sessions() as session:
            record_event(session, job.job_id, S.DATA_PROCESSING.value, text)


def on_trained(job: JobContext, msg: protocol.Trained) -> None:
    """Store the LoRA, TRAINING_COMPLETED with its sha256 and size, then hand it to the deploy check."""
    job.check_lease()  # the LoRA key is fixed: a stale worker must not overwrite the holder's file
    stored, url = artifacts.upload_lora(job.worker.store, job.job_id, job.slug, msg.lora_path, msg.comfy_path,
                                        public=lora_is_public(job.base_model))
    loop = msg.loop_seconds
    job.move(S.TRAINING_COMPLETED, cloud_storage_url=url,
             model_information={"sha256": stored.sha256, "size": stored.size, "steps": msg.steps,
                                "final_loss": msg.final_loss,
                                "train_loop_seconds": round(loop, 3) if loop else None,
                                "sample_seconds": round(msg.sample_seconds, 3),
                                "sample_share": round(msg.sample_share, 4)})
    begin_deploy(job, S.TRAINING_COMPLETED)


def begin_deploy(job: JobContext, status: JobStatus) -> None:
    """INFERENCE_QUEUED, fetch the stored LoRA and tell the child to run the deploy check on it."""
    if status is S.TRAINING_COMPLETED:
        job.move(S.INFERENCE_QUEUED)
    local = job.work_dir / "deploy" / f"{job.slug}.safetensors"
    local.parent.mkdir(parents=True, exist_ok=True)
    # Deploy what storage holds, not the trainer's copy: that proves the stored file works.
    job.worker.store.get_file(keys.model_key(job.job_id, job.slug), local)
    if not job.child.send(protocol.Deploy(local)):
        raise StorageError("the job's process ended before the deploy check could start")


def on_deployed(job: JobContext, msg: protocol.Deployed) -> None:
    job.deployed = True


def on_error(job: JobContext, msg: protocol.Error) -> None:
    job.error = msg


def on_ready(job: JobContext, msg: protocol.Ready) -> None:
    """A spare's `ready` (its imports done, its code version) is read by SparePool.take before the
    spare gets a job; one read here has nothing left to say."""


# Each handler takes the message type it is listed under.
HANDLERS: dict[type[protocol.Message], Callable[[JobContext, Any], None]] = {
    protocol.Ready: on_ready,
    protocol.Dataset: on_dataset,
    protocol.Stage: on_stage,
    protocol.Progress: on_progress,
    protocol.Checkpoint: on_checkpoint,
    protocol.Note: on_note,
    protocol.Sample: on_sample,
    protocol.Intermediate: on_intermediate,
    protocol.Trained: on_trained,
    protocol.Deployed: on_deployed,
    protocol.Error: on_error,
}


def connection_dropped(exc: DBAPIError) -> bool:
    """Whether `exc` means the connection under it is gone (so the same work may simply run again).

    SQLAlchemy's psycopg dialect marks a disconnect only once psycopg has flagged the connection
    broken, which it may not have yet when the server's FATAL message (SQLSTATE 57P01,
    `pg_terminate_backend`) is what was read; the SQLSTATE says it too.
    """
    state = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or state.startswith(_DISCONNECT_STATES)


def retrying_db(job_id: str, what: str, work: Callable[[], None]) -> None:
    """Run `work`; while the database connection under it keeps dropping, run it again, for up to
    DB_RETRY_BUDGET_S seconds.

    A dropped connection (a database restart, a failover, a killed backend) is invalidated by
    SQLAlchemy and the pool reconnects. Our writes are idempotent (same keys, same rows,
    conditional status moves), so running `work` again is safe. Any other error is raised, and so
    is the last drop once the budget is spent.
    """
    deadline = time.monotonic() + DB_RETRY_BUDGET_S
    for retry in itertools.count():
        try:
            work()
            return
        except DBAPIError as exc:
            wait = DB_RETRY_WAIT_S[min(retry, len(DB_RETRY_WAIT_S) - 1)]
            if not connection_dropped(exc) or time.monotonic() + wait > deadline:
                raise
            logger.warning("job %s: the database connection dropped during %s; retrying", job_id, what)
            time.sleep(wait)


def dispatch(job: JobContext, msg: protocol.Message) -> None:
    """Run the message's handler (again if the database connection dropped under it)."""
    handler = HANDLERS[type(msg)]
    retrying_db(job.job_id, f"the {msg.KIND} message", lambda: handler(job, msg))

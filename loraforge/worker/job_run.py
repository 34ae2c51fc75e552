"""The worker task: one job from REQUESTED to AVAILABLE, or to FAILED / CANCELLED, never stuck.

`run_job(ctx, job_id)` is what both queues call. It re-reads the job, skips it if it is terminal,
and takes the DB lease (a second delivery finds the lease held, or the job done, and returns).
A heartbeat thread renews the lease and reads the cancel flag. The job's GPU work (dataset
preparation, training, the deploy check) runs in a child process (worker/child/main.py, started by
worker/processes.py); this process keeps the lease, the status, the cancel flag, the time limit,
every database write and every storage upload, driven by the child's messages (worker/child/protocol.py,
handled in worker/report_handlers.py).
A child that dies (a signal, a non-zero exit, an internal error) is started again from the newest
stored checkpoint, up to LORAFORGE_JOB_MAX_ATTEMPTS times, each attempt an event in details.
Errors the user can act on (bad data, out of memory, a job whose predicted memory does not fit the
device's budget, worker/preflight.py, a diverged LoRA) end the job FAILED at once.
Past LORAFORGE_JOB_TIMEOUT_S the child's process group is killed and the job ends FAILED. On every
way out the child is gone and the work dir removed before the lease is released.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.db.job_models import JobRun
from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, JobCancelled, LoraforgeError
from loraforge.inference.handoff import gpu_work
from loraforge.jobstate import lease
from loraforge.jobstate.events import ProgressWriter, move, record_event
from loraforge.jobstate.lease import LeaseLost
from loraforge.jobstate.statuses import JobStatus, is_terminal
from loraforge.metrics import JOB_CHILD_EXITS, LEASE_RENEWAL_FAILURES
from loraforge.storage.base import ObjectStore
from loraforge.textsafe import clip, escape
from loraforge.worker import artifacts
from loraforge.worker.child.main import EXIT_STOPPED
from loraforge.worker.processes import ChildProcess, SparePool, claim_work_dir, describe_exit
from loraforge.worker.report_handlers import JobContext, begin_deploy, dispatch, retrying_db
from loraforge.worker.training_outputs import LossRecorder

logger = logging.getLogger(__name__)

S = JobStatus
MAX_ERROR_CHARS = 4000  # an error_message longer than this is cut: it names at most a few files
POLL_S = 0.25  # how often the supervise loop checks cancel, lease and time limit while the child is quiet
TRAINING_STATUSES = (S.REQUESTED, S.DATA_PROCESSING, S.TRAINING_INITIATED)
# Settings the child never needs: it touches neither the database, the broker nor the store.
CHILD_EXCLUDED_SETTINGS = {"api_key", "secret_key", "s3_access_key_id", "s3_secret_access_key",
                           "database_url", "broker_url"}


@dataclass
class WorkerContext:
    """What a worker needs to run jobs; one per worker process (embedded or `loraforge worker`)."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    owner: str = field(default_factory=lease.new_owner)
    spares: SparePool | None = None  # a child started ahead of the next job, its imports done


class ChildDied(Exception):
    """The child ended without finishing and without an error the user can act on; retry it."""

    def __init__(self, cause: str, tail: str, detail: str = "") -> None:
        super().__init__(cause)
        # cause: what a user may read; detail (an internal error's text) and tail: the log only
        self.cause, self.tail, self.detail = cause, tail, detail


def new_reference() -> str:
    """A short random id that ties an `internal error (reference ...)` message to its log lines."""
    return uuid.uuid4().hex[:12]


class Heartbeat(threading.Thread):
    """Renews the lease every third of its length and reads the cancel flag twice a second.

    A renewal that fails (the database unreachable for a moment) is counted and retried on the next
    tick; only a renewal the database refuses (another worker holds the job) sets `lost`.
    """

    def __init__(self, ctx: WorkerContext, job_id: str) -> None:
        super().__init__(name=f"lease-{job_id[:8]}", daemon=True)
        self.ctx, self.job_id = ctx, job_id
        self.halt = threading.Event()
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.renew_failures = 0

    def run(self) -> None:
        seconds = self.ctx.settings.lease_seconds
        last_renew = time.monotonic()
        while not self.halt.wait(min(seconds / 3, 0.5)):
            try:
                with self.ctx.sessions() as session:
                    run = session.get(JobRun, self.job_id)
                    if run is not None and run.cancel_requested:
                        self.cancelled.set()
                    if time.monotonic() - last_renew >= seconds / 3:
                        if not lease.renew(session, self.job_id, self.ctx.owner, seconds):
                            logger.error("job %s: lease lost to another worker; stopping", self.job_id)
                            self.lost.set()
                            return
                        last_renew = time.monotonic()
            except SQLAlchemyError as exc:  # the database blinked: count it, try again next tick
                self.renew_failures += 1
                LEASE_RENEWAL_FAILURES.inc()
                logger.warning("job %s: lease renewal failed (%d so far): %s", self.job_id,
                               self.renew_failures, exc)


def run_job(ctx: WorkerContext, job_id: str) -> None:
    """Run `job_id` to a terminal status if it is ours to run; safe to call twice."""
    with ctx.sessions() as session:
        job = session.get(FineTuneJob, job_id)
        if job is None:
            logger.warning("job %s: not in the database; dropping the queue message", job_id)
            return
        if is_terminal(job.status):
            logger.info("job %s: already %s; nothing to do", job_id, job.status)
            return
        if not lease.acquire(session, job_id, ctx.owner, ctx.settings.lease_seconds):
            return
    heartbeat = Heartbeat(ctx, job_id)
    heartbeat.start()
    work_dir = claim_work_dir(ctx.settings.data_dir.resolve() / "work" / job_id)
    try:
        _attempts(ctx, job_id, work_dir, heartbeat, time.monotonic() + ctx.settings.job_timeout_s)
    except LeaseLost as exc:
        logger.warning("%s", exc.message)
    except JobCancelled:
        _end(ctx, job_id, S.CANCELLED, message="cancelled by request")
    except LoraforgeError as exc:
        logger.info("job %s failed: %s", job_id, exc.message)
        _end(ctx, job_id, S.FAILED, error_message=exc.message)
    except Exception:  # a job must never stay running; shutdown signals pass through
        reference = new_reference()
        logger.exception("job %s: unexpected error, reference %s", job_id, reference)
        _end(ctx, job_id, S.FAILED, error_message=(
            f"internal error (reference {reference}); the service log has the details under that reference. "
            "Submit the job again; if it fails the same way, report it with the reference"))
    finally:
        heartbeat.halt.set()
        heartbeat.join(5)
        shutil.rmtree(work_dir, ignore_errors=True)
        with ctx.sessions() as session:
            job = session.get(FineTuneJob, job_id)
            if job is not None and is_terminal(job.status) and lease.holds(session, job_id, ctx.owner):
                artifacts.prune_checkpoints(ctx.store, job_id, None)
            lease.release(session, job_id, ctx.owner)
        if ctx.spares is not None:
            ctx.spares.refill()  # on this worker thread, ready for the next job


def _attempts(ctx: WorkerContext, job_id: str, work_dir: Path, heartbeat: Heartbeat, deadline: float) -> None:
    """Run attempts until one finishes; a dead child is retried, up to LORAFORGE_JOB_MAX_ATTEMPTS."""
    limit = ctx.settings.job_max_attempts
    for attempt in range(1, limit + 1):
        try:
            _attempt(ctx, job_id, work_dir, heartbeat, deadline)
            return
        except ChildDied as died:
            logger.warning("job %s: attempt %d of %d: the job's process %s%s", job_id, attempt, limit, died.cause,
                           f" ({died.detail})" if died.detail else "")
            if attempt == limit:
                # The log's lines and an internal error's text hold tracebacks and server paths:
                # they go to the service log under a reference, never into error_message.
                reference = new_reference()
                logger.error("job %s: reference %s: the job's process %s%s; last lines of its log:\n%s",
                             job_id, reference, died.cause, f" ({died.detail})" if died.detail else "", died.tail)
                raise LoraforgeError(
                    f"the job's process failed on all {limit} attempts; the last one {died.cause} "
                    f"(internal error, reference {reference}: the service log has its last lines under that "
                    "reference). Submit the job again; if it fails the same way, report it with the reference") from None
            with ctx.sessions() as session:
                job = session.get(FineTuneJob, job_id)
                lease.check_held(session, job_id, ctx.owner)
                record_event(session, job_id, job.status if job else S.TRAINING_INITIATED.value,
                             f"attempt {attempt} of {limit} failed: the job's process {died.cause}; "
                             f"starting attempt {attempt + 1}")


def child_settings(settings: Settings) -> dict[str, Any]:
    """The settings the child is started with: no secrets, data_dir made absolute."""
    values = settings.model_dump(mode="json", exclude=CHILD_EXCLUDED_SETTINGS)
    values["data_dir"] = str(settings.data_dir.resolve())
    return values


def _attempt(ctx: WorkerContext, job_id: str, work_dir: Path, heartbeat: Heartbeat, deadline: float) -> None:
    from loraforge.training.presets import resolve_spec

    with ctx.sessions() as session:
        job = session.get(FineTuneJob, job_id, populate_existing=True)
        assert job is not None
        status = S(job.status)
        if is_terminal(status):
            return
        run = lease.ensure_run(session, job_id)
        spec = resolve_spec(job.base_model, job.advance_parameters, trigger_word=job.trigger_word,
                            instance_prompt=job.instance_prompt, checkpoint_every=ctx.settings.checkpoint_every,
                            base_weights=ctx.settings.base_weights)
        data_url, slug, base_model = job.data_source_path, job.slug, job.base_model
        checkpoint = (run.checkpoint_step, run.checkpoint_dir)
        expected_sha256 = run.dataset_sha256  # the upload's hash at submit: train on that file or fail
    _check_cancel(heartbeat)
    training = status in TRAINING_STATUSES
    task: dict[str, Any] = {
        "job_id": job_id, "work_dir": str(work_dir), "settings": child_settings(ctx.settings),
        "base_model": base_model, "slug": slug, "stages": ["train", "deploy"] if training else ["deploy"],
        "spec": spec.model_dump(mode="json"),
    }
    if status is S.REQUESTED:
        with ctx.sessions() as session:
            move(session, job_id, S.DATA_PROCESSING, owner=ctx.owner)
        status = S.DATA_PROCESSING
    if training:
        task["source"] = str(artifacts.fetch_data(ctx.store, ctx.settings, data_url, work_dir / "source",
                                                  expected_sha256))
        task["resume"] = _restore(ctx, job_id, work_dir, checkpoint)
    _check_cancel(heartbeat)
    writer = ProgressWriter(ctx.sessions, job_id, ctx.settings.progress_interval_s, owner=ctx.owner)
    recorder = LossRecorder(ctx.sessions, job_id, ctx.settings.progress_interval_s)
    # While the child lives, this process's inference runner has handed the device over (handoff).
    with gpu_work(ctx.settings), _child_for(ctx, task, work_dir) as child:
        job_ctx = JobContext(ctx, job_id, slug, base_model, work_dir, child, writer, recorder, status=status)
        try:
            if not training:
                begin_deploy(job_ctx, status)
            _supervise(ctx, job_ctx, heartbeat, deadline)
        finally:
            recorder.flush()


def _child_for(ctx: WorkerContext, task: dict[str, Any], work_dir: Path) -> ChildProcess:
    if ctx.spares is not None:
        return ctx.spares.take(task, work_dir)
    return ChildProcess.start(task, work_dir)


def _restore(ctx: WorkerContext, job_id: str, work_dir: Path, checkpoint: tuple[int | None, str | None]) -> bool:
    """Copy the newest stored checkpoint into the child's output folder; True when there is one."""
    step, rel = checkpoint
    if step is None or rel is None:
        return False
    if not artifacts.restore_checkpoint(ctx.store, job_id, step, work_dir / "train" / rel):
        return False
    with ctx.sessions() as session:
        record_event(session, job_id, S.TRAINING_INITIATED.value, f"resumed from the checkpoint of step {step}")
    return True


def _supervise(ctx: WorkerContext, job: JobContext, heartbeat: Heartbeat, deadline: float) -> None:
    """Dispatch the child's messages until it exits, enforcing cancel, lease and time limit."""
    child = job.child
    for message in child.messages(POLL_S):
        if heartbeat.lost.is_set():
            child.kill()
            JOB_CHILD_EXITS.labels("killed").inc()
            raise LeaseLost(f"job {job.job_id}: lease lost to another worker; its process was ended")
        if heartbeat.cancelled.is_set():
            child.stop()
            JOB_CHILD_EXITS.labels("stopped").inc()
            raise JobCancelled(f"job {job.job_id} was cancelled")
        if time.monotonic() > deadline:
            child.kill()
            JOB_CHILD_EXITS.labels("killed").inc()
            raise LoraforgeError(_timeout_message(ctx.settings.job_timeout_s, job))
        if message is not None:
            dispatch(job, message)
    code = child.wait(10)
    if code is None:  # it closed its pipe but lingers: it will not send anything more
        code = child.kill()
    if job.error is not None:
        JOB_CHILD_EXITS.labels("error").inc()
        _raise_reported(job)
    if code == 0 and job.deployed:
        JOB_CHILD_EXITS.labels("ok").inc()
        retrying_db(job.job_id, "the move to AVAILABLE", lambda: job.move(S.AVAILABLE))
        return
    if code == EXIT_STOPPED and heartbeat.cancelled.is_set():
        JOB_CHILD_EXITS.labels("stopped").inc()
        raise JobCancelled(f"job {job.job_id} was cancelled")
    JOB_CHILD_EXITS.labels("crashed").inc()
    raise ChildDied(describe_exit(code), child.log_tail())


def _raise_reported(job: JobContext) -> None:
    """The child said what went wrong: the user's problem ends the job, an internal one is retried."""
    error = job.error
    assert error is not None
    message = error.message or "no message"
    if error.user_can_act:
        raise LoraforgeError(message)
    raise ChildDied(f"failed with an internal error while in stage {error.stage}", job.child.log_tail(), message)


def _timeout_message(limit: int, job: JobContext) -> str:
    if job.step is not None and job.total_steps is not None and job.status is S.TRAINING_INITIATED:
        where = f"at step {job.step} of {job.total_steps}"
    else:
        where = {
            S.DATA_PROCESSING: "while preparing the dataset",
            S.TRAINING_INITIATED: "while loading the model, before the first training step",
        }.get(job.status, "during the deploy check")
    return f"exceeded the time limit of {limit} s {where}; raise LORAFORGE_JOB_TIMEOUT_S or lower steps"


def _check_cancel(heartbeat: Heartbeat) -> None:
    if heartbeat.lost.is_set():
        raise LeaseLost(f"job {heartbeat.job_id}: lease lost to another worker")
    if heartbeat.cancelled.is_set():
        raise JobCancelled(f"job {heartbeat.job_id} was cancelled")


def _end(ctx: WorkerContext, job_id: str, new: JobStatus, *, message: str | None = None,
         error_message: str | None = None) -> None:
    if error_message:  # one line, bounded: names in it are the user's (loraforge.textsafe)
        error_message = clip(escape(error_message), MAX_ERROR_CHARS)
    fields = {"error_message": error_message} if error_message else {}
    try:
        with ctx.sessions() as session:
            move(session, job_id, new, message=message or error_message, owner=ctx.owner, **fields)
    except LeaseLost as exc:
        logger.warning("job %s: not moved to %s: %s", job_id, new, exc.message)
    except ConflictError as exc:  # already terminal (say, cancelled while failing): keep that
        logger.info("job %s: not moved to %s: %s", job_id, new, exc.message)

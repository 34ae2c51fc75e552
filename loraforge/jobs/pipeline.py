"""The worker task: one job from REQUESTED to AVAILABLE, or to FAILED / CANCELLED, never stuck.

`run_job(ctx, job_id)` is what both queues call. It re-reads the job, skips it if it is terminal,
and takes the DB lease (a second delivery finds the lease held, or the job done, and returns).
While it works a heartbeat thread renews the lease. The stages are linear: fetch the data and
prepare it (DATA_PROCESSING), train with throttled progress, checkpoints copied to storage and a
cancel check at every step (TRAINING_INITIATED), upload the LoRA and record its sha256
(TRAINING_COMPLETED), deploy through inference (INFERENCE_QUEUED), then AVAILABLE. A job picked up
again after a crash resumes from the stage it reached and from its newest stored checkpoint.
Every way out of a stage ends in a status: errors we raise carry their message to the user, out
of memory gets a hint, anything else is logged with the job id and ends FAILED.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob
from loraforge.db.pipeline_models import JobRun
from loraforge.errors import ConflictError, JobCancelled, LoraforgeError
from loraforge.inference.handoff import gpu_work
from loraforge.jobs import artifacts, lease, training_outputs
from loraforge.jobs.dataset_report import store_dataset_report
from loraforge.jobs.events import ProgressWriter, move, record_event
from loraforge.jobs.statuses import JobStatus, is_terminal
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)

S = JobStatus
OOM_MESSAGE = (
    "out of memory while training: lower advance_parameters.resolution (e.g. 512), batch_size "
    "(e.g. 1) or rank (e.g. 8), or submit with a machine_type that has more GPU memory"
)


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired); stop without touching its status."""


@dataclass
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    runner: Callable[[], Any]  # the InferenceRunner that deploy loads the LoRA into
    owner: str = field(default_factory=lease.new_owner)


class _Heartbeat(threading.Thread):
    """Renews the lease; also reads the cancel flag so `should_stop` costs no DB round trip."""

    def __init__(self, ctx: WorkerContext, job_id: str) -> None:
        super().__init__(name=f"lease-{job_id[:8]}", daemon=True)
        self.ctx, self.job_id = ctx, job_id
        self.halt = threading.Event()
        self.cancelled = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        period = min(self.ctx.settings.lease_seconds / 3, 0.5)
        last_renew = time.monotonic()
        while not self.halt.wait(period):
            with self.ctx.sessions() as session:
                run = session.get(JobRun, self.job_id)
                if run is not None and run.cancel_requested:
                    self.cancelled.set()
                if time.monotonic() - last_renew >= self.ctx.settings.lease_seconds / 3:
                    if not lease.renew(session, self.job_id, self.ctx.owner, self.ctx.settings.lease_seconds):
                        logger.error("job %s: lease lost to another worker; stopping", self.job_id)
                        self.lost.set()
                    last_renew = time.monotonic()

    def should_stop(self) -> bool:
        if self.lost.is_set():
            raise LeaseLost(self.job_id)
        return self.cancelled.is_set()


def preload_libraries() -> None:
    """Import the heavy libraries (torch, diffusers, peft) before the first job.

    Importing them takes seconds to tens of seconds on a busy host; paying it while the worker
    is idle keeps it out of the first job's submit-to-AVAILABLE time. Called on the worker's own
    thread, so it imports exactly where and when the first job would have.
    """
    import importlib

    for name in ("loraforge.datasets.prepare", "loraforge.training.engine", "loraforge.inference.deploy"):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # the job that needs it will report it properly
            logger.warning("could not preload %s: %s", name, exc)


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
    heartbeat = _Heartbeat(ctx, job_id)
    heartbeat.start()
    work_dir = ctx.settings.data_dir / "work" / job_id
    try:
        with gpu_work(ctx.settings):  # memory's hook: the runner hands the device over (inference.handoff)
            _stages(ctx, job_id, work_dir, heartbeat)
    except LeaseLost:
        return
    except JobCancelled:
        _end(ctx, job_id, S.CANCELLED, message="cancelled by request")
    except LoraforgeError as exc:
        logger.info("job %s failed: %s", job_id, exc.message)
        _end(ctx, job_id, S.FAILED, error_message=exc.message)
    except Exception as exc:  # a job must never stay running; shutdown signals pass through
        if _is_oom(exc):
            logger.warning("job %s: out of memory: %s", job_id, exc)
            _end(ctx, job_id, S.FAILED, error_message=OOM_MESSAGE)
        else:
            logger.exception("job %s: unexpected error", job_id)
            _end(ctx, job_id, S.FAILED, error_message=(
                f"internal error ({type(exc).__name__}: {exc}); the service log has the details under "
                f"job id {job_id}. Submit the job again; if it fails the same way, report it"))
    finally:
        heartbeat.halt.set()
        heartbeat.join(5)
        _free_gpu_memory()
        with ctx.sessions() as session:
            job = session.get(FineTuneJob, job_id)
            if job is not None and is_terminal(job.status):
                shutil.rmtree(work_dir, ignore_errors=True)
                artifacts.prune_checkpoints(ctx.store, job_id, None)
            lease.release(session, job_id, ctx.owner)


def _stages(ctx: WorkerContext, job_id: str, work_dir: Path, heartbeat: _Heartbeat) -> None:
    from loraforge.training.loading import resolve_model_ref
    from loraforge.training.presets import fit_to_model, resolve_spec

    def check_cancel() -> None:
        with ctx.sessions() as session:
            run = session.get(JobRun, job_id)
            if run is not None and run.cancel_requested:
                raise JobCancelled(f"job {job_id} was cancelled")

    with ctx.sessions() as session:
        job = session.get(FineTuneJob, job_id)
        assert job is not None
        status = S(job.status)
        run = lease.ensure_run(session, job_id)
        spec = resolve_spec(job.base_model, job.advance_parameters, trigger_word=job.trigger_word,
                            instance_prompt=job.instance_prompt,
                            checkpoint_every=ctx.settings.checkpoint_every,
                            base_weights=ctx.settings.base_weights)
        model_ref = resolve_model_ref(job.base_model, ctx.settings)
        spec = fit_to_model(spec, model_ref, ctx.settings)
        data_url, slug, base_model = job.data_source_path, job.slug, job.base_model
        checkpoint = (run.checkpoint_step, run.checkpoint_dir)
    check_cancel()

    if status in (S.REQUESTED, S.DATA_PROCESSING, S.TRAINING_INITIATED):
        if status is S.REQUESTED:
            # The demo cap's reason rides on this event, so details show why the job trains small.
            _move(ctx, job_id, S.DATA_PROCESSING, message=spec.resolution_note)
        if spec.resolution_note:
            logger.info("job %s: %s", job_id, spec.resolution_note)
        dataset = _prepare(ctx, job_id, spec, data_url, work_dir, model_ref)
        check_cancel()
        resume = False
        if status is not S.TRAINING_INITIATED:
            _move(ctx, job_id, S.TRAINING_INITIATED)
        out_dir = work_dir / "train"
        step, rel = checkpoint
        if step is not None and rel is not None:
            resume = artifacts.restore_checkpoint(ctx.store, job_id, step, out_dir / rel)
            if resume:
                with ctx.sessions() as session:
                    record_event(session, job_id, S.TRAINING_INITIATED.value,
                                 f"resumed from the checkpoint of step {step}")
        result, loop_seconds = _train(ctx, job_id, spec, dataset, out_dir, model_ref, resume, heartbeat, slug)
        stored, url = artifacts.upload_lora(ctx.store, job_id, slug, Path(result.lora_path),
                                            Path(result.comfy_path) if result.comfy_path else None,
                                            public=base_model == "FAST_FLUX")
        with ctx.sessions() as session:
            lease.ensure_run(session, job_id).lora_sha256 = stored.sha256
            session.commit()
        _move(ctx, job_id, S.TRAINING_COMPLETED, cloud_storage_url=url,
              model_information={"sha256": stored.sha256, "size": stored.size, "steps": result.steps,
                                 "final_loss": result.final_loss,
                                 "train_loop_seconds": round(loop_seconds, 3) if loop_seconds else None,
                                 "sample_seconds": round(result.sample_seconds, 3),
                                 "sample_share": round(result.sample_share, 4)})
        status = S.TRAINING_COMPLETED
    check_cancel()

    if status in (S.TRAINING_COMPLETED, S.INFERENCE_QUEUED):
        if status is S.TRAINING_COMPLETED:
            _move(ctx, job_id, S.INFERENCE_QUEUED)
        _deploy(ctx, job_id, base_model, slug, work_dir, model_ref)
        check_cancel()
        _move(ctx, job_id, S.AVAILABLE)


def _prepare(ctx: WorkerContext, job_id: str, spec: Any, data_url: str, work_dir: Path, model_ref: str) -> Any:
    from loraforge.datasets.prepare import prepare_dataset
    from loraforge.training.caption_tokens import token_check

    with ctx.sessions() as session:  # the upload's hash at submit: train on that file or fail
        expected = lease.ensure_run(session, job_id).dataset_sha256
    source = artifacts.fetch_data(ctx.store, ctx.settings, data_url, work_dir / "source", expected)
    dataset_dir = work_dir / "dataset"
    shutil.rmtree(dataset_dir, ignore_errors=True)
    captioner = None
    if spec.auto_caption:
        from loraforge.training.captioner import captioner_model_ref, load_captioner

        captioner = load_captioner(captioner_model_ref(spec.base_model, ctx.settings))
    try:
        dataset = prepare_dataset(source, dataset_dir, trigger_word=spec.trigger_word,
                                  instance_prompt=spec.instance_prompt, resolution=spec.resolution,
                                  face_crop=spec.face_crop, captioner=captioner, **token_check(spec, model_ref))
    finally:
        if captioner is not None:
            captioner.close()  # frees the VLM before training needs the memory
        # Written also when the dataset is refused: details then show every file and why.
        store_dataset_report(ctx.store, ctx.sessions, job_id, dataset_dir / "dataset_report.json")
    for warning in getattr(dataset, "warnings", ())[:20]:
        logger.info("job %s dataset: %s", job_id, warning)
    return dataset


def _train(ctx: WorkerContext, job_id: str, spec: Any, dataset: Any, out_dir: Path, model_ref: str,
           resume: bool, heartbeat: _Heartbeat, slug: str) -> tuple[Any, float | None]:
    from loraforge.training.engine import train

    def on_checkpoint(path: Path, step: int) -> None:
        artifacts.upload_checkpoint(ctx.store, job_id, path, step)
        with ctx.sessions() as session:
            run = lease.ensure_run(session, job_id)
            run.checkpoint_step = step
            run.checkpoint_dir = path.relative_to(out_dir).as_posix()
            session.commit()
        artifacts.prune_checkpoints(ctx.store, job_id, step)
        logger.info("job %s: checkpoint step %d stored", job_id, step)

    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ProgressWriter(ctx.sessions, job_id, ctx.settings.progress_interval_s)
    recorder = training_outputs.LossRecorder(ctx.sessions, job_id, ctx.settings.progress_interval_s)

    def progress(p: Any) -> None:
        writer(p)
        recorder(p)

    def on_sample(step: int, index: int, prompt: str, path: Path) -> None:
        training_outputs.store_sample(ctx.store, ctx.sessions, job_id, step, index, prompt, path)

    def on_intermediate(step: int, path: Path) -> None:
        training_outputs.store_intermediate(ctx.store, ctx.sessions, job_id, slug, step, path)

    try:
        result = train(spec, dataset, out_dir, model_ref=model_ref, progress=progress,
                       should_stop=heartbeat.should_stop, on_checkpoint=on_checkpoint, resume=resume,
                       on_sample=on_sample, on_intermediate=on_intermediate)
    finally:
        recorder.flush()
    return result, writer.loop_seconds


def _deploy(ctx: WorkerContext, job_id: str, base_model: str, slug: str, work_dir: Path,
            model_ref: str) -> None:
    from loraforge.inference.deploy import deploy

    local = work_dir / "deploy" / f"{slug}.safetensors"
    local.parent.mkdir(parents=True, exist_ok=True)
    # Deploy what storage holds, not the trainer's copy: that proves the stored file works.
    ctx.store.get_file(artifacts.model_key(job_id, slug), local)
    deploy(ctx.runner(), base_model=base_model, lora_path=local, slug=slug, model_ref=model_ref)


def _move(ctx: WorkerContext, job_id: str, new: JobStatus, **fields: Any) -> None:
    with ctx.sessions() as session:
        move(session, job_id, new, **fields)  # also writes the webhook message (the outbox)


def _end(ctx: WorkerContext, job_id: str, new: JobStatus, *, message: str | None = None,
         error_message: str | None = None) -> None:
    fields = {"error_message": error_message} if error_message else {}
    try:
        _move(ctx, job_id, new, message=message or error_message, **fields)
    except ConflictError as exc:  # already terminal (say, cancelled while failing): keep that
        logger.info("job %s: not moved to %s: %s", job_id, new, exc.message)


def _free_gpu_memory() -> None:
    """Hand cached CUDA blocks back so the next job (or another process) gets the whole GPU."""
    import gc
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()

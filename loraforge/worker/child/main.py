"""The child process of one job: dataset preparation, training and the deploy check, then exit.

Run as `python -m loraforge.worker.child.main --pipe-fd N TASK_JSON` by the worker (worker/processes.py),
never by hand; or with `--spare` instead of TASK_JSON, when it imports the heavy libraries first and
then waits for `task TASK_JSON` on stdin (a warm child started ahead of the next job). TASK_JSON is
a file holding the job's settings (secrets left out: the child touches neither the database nor
the object store), the resolved TrainSpec and the stages to run; N is the pipe to write messages
on. Messages are JSON lines `{"kind": K, ...}` (worker/child/protocol.py; what the worker does with
each, worker/report_handlers.py; docs/architecture.md, "The child protocol"): ready (a spare's
imports are done; it carries `version`, see `code_version`, which the
worker checks before it gives the spare a job), note, dataset, stage, progress, checkpoint, sample,
intermediate, trained, deployed, error. Before it prepares the data or loads a model the child
checks the job's predicted memory per stage against the device's budget (worker/preflight.py): a
stage that cannot fit is an `error` at once. Commands come on stdin:
`stop` (stop at the next step), `ack STEP` (the parent stored checkpoint STEP), `deploy PATH` (the
stored LoRA is at PATH: run the deploy check). End of stdin means the parent is gone: the child
stops too, and on Linux the kernel kills it outright when its parent dies (PR_SET_PDEATHSIG).
Exit codes: 0 done, 1 failed (an `error` message says why), 3 stopped on request.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from loraforge.config import Settings
from loraforge.errors import JobCancelled
from loraforge.worker.child import protocol
from loraforge.worker.child.errors import error_for

logger = logging.getLogger("loraforge.worker.child.main")

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

class Channel:
    """Writes messages to the parent, one JSON object per line, from any thread."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1)
        self._lock = threading.Lock()

    def send(self, message: protocol.Message) -> None:
        line = protocol.encode_message(message)
        with self._lock:
            try:
                self._file.write(line)
            except BrokenPipeError:  # the parent is gone; the stdin EOF stops us next step
                pass


class Commands:
    """Reads the parent's commands from stdin on a thread: stop, checkpoint acks, deploy."""

    def __init__(self, stream: Any) -> None:
        self.stopped = threading.Event()
        self._cond = threading.Condition()
        self._acked = -1
        self._deploy: Path | None = None
        self._stream = stream
        threading.Thread(target=self._read, name="commands", daemon=True).start()

    def _read(self) -> None:
        for raw in self._stream:
            try:
                command = protocol.decode_command(raw)
            except protocol.ProtocolError as exc:
                logger.warning("ignored a command from the worker (%s): %r", exc, raw[:200])
                continue
            with self._cond:
                if isinstance(command, protocol.Stop):
                    self.stopped.set()
                elif isinstance(command, protocol.Ack):
                    self._acked = max(self._acked, command.step)
                elif isinstance(command, protocol.Deploy):
                    self._deploy = command.path
                self._cond.notify_all()
        with self._cond:  # stdin closed: the parent is gone or done with us
            self.stopped.set()
            self._cond.notify_all()

    def should_stop(self) -> bool:
        return self.stopped.is_set()

    def wait_ack(self, step: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._acked >= step or self.stopped.is_set())

    def wait_deploy(self) -> Path | None:
        with self._cond:
            self._cond.wait_for(lambda: self._deploy is not None or self.stopped.is_set())
            return None if self.stopped.is_set() else self._deploy


class ChildJob:
    """The stages of one task, reporting through `channel` and obeying `commands`."""

    def __init__(self, task: dict[str, Any], channel: Channel, commands: Commands) -> None:
        self.task = task
        self.channel = channel
        self.commands = commands
        self.settings = Settings(**task["settings"])
        self.work_dir = Path(task["work_dir"])
        self.stage = "prepare"
        self.device = "cpu"

    def run(self) -> int:
        try:
            self._stages()
        except JobCancelled:
            logger.info("stopped on request during %s", self.stage)
            return EXIT_STOPPED
        except Exception as exc:  # noqa: BLE001 - every error is reported; error_for sorts and logs it
            self.channel.send(error_for(exc, self.stage, self.device))
            return EXIT_FAILED
        return EXIT_OK

    def _stages(self) -> None:
        lora_path = None
        if "train" in self.task["stages"]:
            lora_path = self._prepare_and_train()
        self.stage = "deploy"
        path = self.commands.wait_deploy()
        if path is None:
            raise JobCancelled("stopped before the deploy check")
        self._deploy(path)
        self.channel.send(protocol.Deployed())
        del lora_path

    def _prepare_and_train(self) -> Path:
        from loraforge.training.loading import default_device, resolve_model_ref
        from loraforge.training.presets import TrainSpec, fit_to_model

        task = self.task
        self.device = default_device()
        model_ref = resolve_model_ref(task["base_model"], self.settings)
        spec = fit_to_model(TrainSpec(**task["spec"]), model_ref, self.settings)
        if spec.resolution_note:
            self.channel.send(protocol.Note(message=spec.resolution_note))
        self._check_memory(spec, model_ref)
        dataset = self._prepare(spec, model_ref)
        self.channel.send(protocol.Stage(name="train"))
        self.stage = "load"
        result = self._train(spec, dataset, model_ref)
        self.channel.send(protocol.Trained(
            lora_path=Path(result.lora_path), comfy_path=Path(result.comfy_path) if result.comfy_path else None,
            steps=result.steps, final_loss=result.final_loss, loop_seconds=result.loop_seconds,
            sample_seconds=result.sample_seconds, sample_share=result.sample_share))
        return Path(result.lora_path)

    def _check_memory(self, spec: Any, model_ref: str) -> None:
        """The job's predicted peak per stage against the device budget, before anything loads:
        a stage that cannot fit raises TrainingError (the job ends FAILED, not retried)."""
        from loraforge.worker.preflight import check

        note = check(spec, model_ref, self.settings, self.device)
        if note:
            self.channel.send(protocol.Note(message=note))

    def _prepare(self, spec: Any, model_ref: str) -> Any:
        from loraforge.datasets.prepare import prepare_dataset
        from loraforge.training.caption_tokens import token_check

        dataset_dir = self.work_dir / "dataset"
        captioner = None
        if spec.auto_caption:
            from loraforge.training.captioner import captioner_model_ref, load_captioner

            captioner = load_captioner(captioner_model_ref(spec.base_model, self.settings))
        try:
            dataset = prepare_dataset(Path(self.task["source"]), dataset_dir, trigger_word=spec.trigger_word,
                                      instance_prompt=spec.instance_prompt, resolution=spec.resolution,
                                      face_crop=spec.face_crop, captioner=captioner,
                                      **token_check(spec, model_ref))
        finally:
            if captioner is not None:
                captioner.close()  # frees the VLM before training needs the memory
            report = dataset_dir / "dataset_report.json"
            if report.is_file():  # written also when the dataset is refused: details show why
                self.channel.send(protocol.Dataset(report_path=report))
        for warning in getattr(dataset, "warnings", ())[:20]:
            logger.info("dataset: %s", warning)
        return dataset

    def _train(self, spec: Any, dataset: Any, model_ref: str) -> Any:
        from loraforge.training.engine import train

        out_dir = self.work_dir / "train"

        def progress(p: Any) -> None:
            self.stage = "train"
            self.channel.send(protocol.Progress(step=p.step, total=p.total_steps, loss=p.loss,
                                                eta_seconds=p.eta_seconds, lr=p.lr, step_seconds=p.step_seconds))

        def on_checkpoint(path: Path, step: int) -> None:
            self.channel.send(protocol.Checkpoint(step=step, path=path))
            self.commands.wait_ack(step)  # stored before we go on (and before the trainer prunes it)

        def on_sample(step: int, index: int, prompt: str, path: Path) -> None:
            self.channel.send(protocol.Sample(step=step, index=index, prompt=prompt, path=path))

        def on_intermediate(step: int, path: Path) -> None:
            self.channel.send(protocol.Intermediate(step=step, path=path))

        result = train(spec, dataset, out_dir, model_ref=model_ref, progress=progress,
                       should_stop=self.commands.should_stop, on_checkpoint=on_checkpoint,
                       on_sample=on_sample, on_intermediate=on_intermediate,
                       resume=bool(self.task.get("resume")))
        return result

    def _deploy(self, lora_path: Path) -> None:
        from loraforge.inference.deploy import deploy
        from loraforge.inference.runner import InferenceRunner
        from loraforge.training.loading import resolve_model_ref

        task = self.task
        model_ref = resolve_model_ref(task["base_model"], self.settings)
        deploy(InferenceRunner(self.settings), base_model=task["base_model"], lora_path=lora_path,
               slug=task["slug"], model_ref=model_ref)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the stdin EOF still stops us
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(EXIT_STOPPED)


# The loraforge package this process imported: a fresh child of the worker imports it too.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """The code under `root` as `<package version>+<12 hex digits>`: the installed version, and a
    sha256 of every .py file there (relative path and bytes, in path order).

    The child imports most of the package (config, datasets, training, inference, jobs), so all
    of it is hashed; that takes about 5 ms. A spare reports it in its `ready` message and the
    worker gives it a job only when it matches (worker/processes.py).
    """
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_bytes()
        except FileNotFoundError:  # removed mid-upgrade: the hash still differs, which is the point
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(text)
    try:
        installed = version("loraforge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "unknown"
    return f"{installed}+{digest.hexdigest()[:12]}"


# Imported by a spare child before its task comes, so that a job pays none of it.
PRELOAD = ("loraforge.datasets.prepare", "loraforge.training.caption_tokens", "loraforge.training.engine",
           "loraforge.inference.deploy", "loraforge.inference.runner")


def preload() -> None:
    """Import the heavy libraries and the pipeline classes (diffusers imports them lazily)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from loraforge.families.registry import FAMILIES

    for family in FAMILIES:
        family.pipeline()


def _wait_for_task() -> Path | None:
    """A spare's first stdin line, `task PATH`; None when the parent closes stdin first or sends
    anything else (`stop`)."""
    try:
        command = protocol.decode_command(sys.stdin.buffer.readline())
    except protocol.ProtocolError:  # stdin closed (an empty line), or a line that is no task
        return None
    return command.path if isinstance(command, protocol.Task) else None


def _log_to(path: Path) -> None:
    """Send this process's stdout and stderr to `path` (a spare learns its job's log only now)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str]) -> int:
    args = argv[1:]
    if len(args) < 3 or args[0] != "--pipe-fd":
        print("usage: python -m loraforge.worker.child.main --pipe-fd N (TASK_JSON | --spare); started by the worker",
              file=sys.stderr)
        return 2
    _die_with_parent()
    pipe_fd, target = int(args[1]), args[2]
    if target == "--spare":
        preload()
        # Imports done: a job now starts warm, if the worker finds this code is the code it wants.
        with os.fdopen(os.dup(pipe_fd), "w") as ready:
            ready.write(protocol.encode_message(protocol.Ready(version=code_version())))
        task_path = _wait_for_task()
        if task_path is None:
            return EXIT_STOPPED
        _log_to(task_path.parent / "child.log")
    else:
        task_path = Path(target)
    task = json.loads(task_path.read_text())
    from loraforge.logs import CURRENT_JOB, configure_logging

    # child.log in the service's format (LORAFORGE_LOG_FORMAT), every line tagged with the job id
    configure_logging(task["settings"].get("log_level", "INFO"), task["settings"].get("log_format", "text"))
    CURRENT_JOB.set(task["job_id"])
    channel = Channel(pipe_fd)
    commands = Commands(sys.stdin.buffer)
    logger.info("child of job %s started (pid %d, stages %s%s)", task["job_id"], os.getpid(), task["stages"],
                ", warm spare" if target == "--spare" else "")
    return ChildJob(task, channel, commands).run()


def _exit(code: int) -> None:
    """Flush the log and leave at once: the stdin reader thread would block interpreter shutdown."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main(sys.argv))

"""The fixed cost per job of running its GPU work in a child process, against the old in-thread path.

Both run the same tiny FLUX job (prepare the dataset, train `steps` steps, deploy check) on the
same data, one after another, `jobs` times each:

- **in-thread** (the reference, kept only here): the old embedded worker's path, in this process,
  with torch/diffusers/peft already imported and one warm InferenceRunner for every deploy;
- **child, warm spare**: as the worker runs a job now: handed to a spare child started ahead of it
  (`python -m loraforge.worker.child.main --spare`, imports done), which loads the model for training and
  again for the deploy check; a minimal parent acknowledges checkpoints and hands over the LoRA;
- **child, fresh**: the same in a child started with the job (what a job pays when it arrives
  before the spare finished its imports, e.g. right after the previous job).

The fixed cost is a job's wall time minus its step loop (`loop_seconds`, which both report), so
the figure is what a job pays besides training itself. Called from bench/pipeline.py (`--modes child`).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from loraforge.config import Settings


def _spec(steps: int) -> Any:
    from loraforge.training.presets import resolve_spec

    return resolve_spec("FLUX", {"steps": steps, "resolution": 64, "rank": 4, "learning_rate": 4e-4},
                        trigger_word="TOK", instance_prompt="a photo of TOK", checkpoint_every=max(1, steps // 2))


def in_thread_job(settings: Settings, source: Path, work: Path, steps: int, runner: Any) -> tuple[float, float]:
    """(wall seconds, step loop seconds) of one job run the old way, in this process."""
    from loraforge.datasets.prepare import prepare_dataset
    from loraforge.inference.deploy import deploy
    from loraforge.training.engine import train

    spec, model_ref = _spec(steps), settings.model_flux
    assert model_ref is not None
    started = time.perf_counter()
    dataset = prepare_dataset(source, work / "dataset", trigger_word="TOK", instance_prompt=spec.instance_prompt,
                              resolution=spec.resolution)
    result = train(spec, dataset, work / "train", model_ref=model_ref)
    deploy(runner, base_model="FLUX", lora_path=Path(result.lora_path), slug="bench", model_ref=model_ref)
    return time.perf_counter() - started, result.loop_seconds


def child_job(settings: Settings, source: Path, work: Path, steps: int, warm: bool) -> tuple[float, float]:
    """(wall seconds, step loop seconds) of one job run in a child process, as the worker runs it.

    `warm`: the job goes to a spare child started ahead whose imports are done (the worker's
    SparePool, refilled after each job); otherwise a fresh child starts with the job.
    """
    from loraforge.worker.job_run import child_settings
    from loraforge.worker.processes import ChildProcess

    task = {"job_id": "bench", "work_dir": str(work), "settings": child_settings(settings), "base_model": "FLUX",
            "slug": "bench", "stages": ["train", "deploy"], "spec": _spec(steps).model_dump(mode="json"),
            "source": str(source), "resume": False}
    spare = None
    if warm:
        spare = ChildProcess.spawn(work.parent / f"{work.name}-spare", ["--spare"])
        if not spare.wait_ready(300):
            raise SystemExit(f"the spare child never got ready:\n{spare.log_tail()}")
    started = time.perf_counter()
    loop = 0.0
    if spare is not None and not spare.assign(task, work):
        raise SystemExit("the spare child went away")
    with spare or ChildProcess.start(task, work) as child:
        for message in child.messages(1.0):
            kind = (message or {}).get("kind")
            if kind == "checkpoint":
                child.send(f"ack {message['step']}")
            elif kind == "trained":
                loop = float(message["loop_seconds"])
                child.send(f"deploy {message['lora_path']}")
            elif kind == "error":
                raise SystemExit(f"the child failed: {message}\n{child.log_tail()}")
        code = child.wait(30)
    if code != 0:
        raise SystemExit(f"the child exited with {code}:\n{child.log_tail()}")
    return time.perf_counter() - started, loop


def measure(work: Path, models: Path, source: Path, jobs: int, steps: int) -> dict[str, float]:
    """Median fixed cost per job (wall minus step loop) of each path, after one warm-up job each."""
    from loraforge.inference.runner import InferenceRunner

    settings = Settings(data_dir=work / "data", model_flux=str(models / "flux-dev"),
                        model_qwen=str(models / "qwen-image"), log_level="WARNING")
    runner = InferenceRunner(settings)  # the old worker's one warm runner, reused by every deploy
    fixed: dict[str, list[float]] = {"in-thread": [], "child, warm spare": [], "child, fresh": []}
    for i in range(jobs + 1):
        for name, values in fixed.items():
            job_dir = work / f"{name.replace(' ', '').replace(',', '-')}-{i}"
            shutil.rmtree(job_dir, ignore_errors=True)
            job_dir.mkdir(parents=True)
            if name == "in-thread":
                wall, loop = in_thread_job(settings, source, job_dir, steps, runner)
            else:
                wall, loop = child_job(settings, source, job_dir, steps, warm=name.endswith("spare"))
            if i:  # the first job of each path is the warm-up
                values.append(wall - loop)
    medians = {name: statistics.median(values) for name, values in fixed.items()}
    result = {f"{name} fixed s": value for name, value in medians.items()}
    for name in ("child, warm spare", "child, fresh"):
        result[f"added: {name} s"] = medians[name] - medians["in-thread"]
        result[f"ratio: {name} / in-thread"] = medians[name] / medians["in-thread"]
    return result

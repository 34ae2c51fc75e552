"""How much of a tiny job's submit -> AVAILABLE time is spent outside training steps.

Starts the real service as subprocesses, once embedded (`loraforge serve`, worker in-process) and
once as a fleet (`loraforge serve` + `loraforge worker` over Redis, PostgreSQL), uploads a small
dataset, submits tiny FLUX jobs one after another and reads each job's event timestamps and
`model_information.train_loop_seconds` from details. Per mode it prints the median of each phase:
queue (REQUESTED -> DATA_PROCESSING), data (-> TRAINING_INITIATED), model load + caching (training
stage minus the step loop), the step loop itself, upload (-> TRAINING_COMPLETED) and deploy
(-> AVAILABLE), and the share of the total outside the step loop. The first job of each mode is a
warm-up and is not counted. Mode `child` (bench/child_cost.py) prints the fixed cost per job of
running a job's GPU work in a child process (interpreter start, imports, model loads) next to the
old in-thread path's, measured in the same run, and their ratio.

    PYTHONPATH=. .venv/bin/python bench/pipeline.py [--jobs 3] [--steps 20] [--modes child,embedded,celery]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.support.flow import image_zip, submit_body, wait_for
from tests.support.processes import Client, Process, free_port, wait_healthy

KEY = "bench-key-0123456789"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def phases(job: dict) -> dict[str, float]:
    at = {}
    for event in job["events"]:
        at.setdefault(event["status"], _ts(event["timestamp"]))
    loop = float(job["model_information"].get("train_loop_seconds") or 0.0)
    training = at["TRAINING_COMPLETED"] - at["TRAINING_INITIATED"]
    total = at["AVAILABLE"] - at["REQUESTED"]
    return {
        "total": total,
        "queue": at["DATA_PROCESSING"] - at["REQUESTED"],
        "data": at["TRAINING_INITIATED"] - at["DATA_PROCESSING"],
        "load+cache+export+upload": training - loop,
        "step loop": loop,
        "deploy": at["AVAILABLE"] - at["TRAINING_COMPLETED"],
        "outside steps %": 100.0 * (total - loop) / total,
    }


def run_mode(mode: str, work: Path, models: Path, jobs: int, steps: int) -> list[dict[str, float]]:
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "LORAFORGE_DATA_DIR": str(work / "api"), "LORAFORGE_PUBLIC_URL": url, "LORAFORGE_PORT": str(port),
        "LORAFORGE_API_KEY": KEY, "LORAFORGE_SECRET_KEY": "bench-secret-0123456789",
        "LORAFORGE_STORAGE_URL": f"file://{work / 'storage'}",
        "LORAFORGE_MODEL_FLUX": str(models / "flux-dev"), "LORAFORGE_MODEL_QWEN": str(models / "qwen-image"),
        "LORAFORGE_LOG_LEVEL": "WARNING",
    }
    db = None
    procs = []
    if mode == "celery":
        db = create_postgres_database()
        env.update(LORAFORGE_DATABASE_URL=db, LORAFORGE_BROKER_URL="redis://127.0.0.1:6379/15")
    try:
        server = Process(["serve"], env, work / f"{mode}-serve")
        procs.append(server.start())
        wait_healthy(url, server)
        if mode == "celery":
            procs.append(Process(["worker"], {**env, "LORAFORGE_DATA_DIR": str(work / "worker")},
                                 work / "worker").start())
        api = Client(url, KEY)
        source = api.upload(image_zip())
        results = []
        for i in range(jobs + 1):
            job_id = api.submit(submit_body(source, steps=steps))
            job = wait_for(lambda j=job_id: api.details(j), lambda d: d["status"] in ("AVAILABLE", "FAILED"), 600)
            if job["status"] != "AVAILABLE":
                raise SystemExit(f"{mode}: job failed: {job['error_message']}\n{procs[-1].tail()}")
            if i:  # the first job is the warm-up
                results.append(phases(job))
        return results
    finally:
        for proc in reversed(procs):
            proc.stop()
        if db:
            drop_postgres_database(db)


def report_child_cost(work: Path, jobs: int, steps: int) -> None:
    from bench.child_cost import measure

    source = work / "child" / "photos.zip"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(image_zip())
    started = time.monotonic()
    result = measure(work / "child", work / "models", source, jobs, steps)
    print(f"\nchild: fixed cost per tiny FLUX job (64 px, {steps} steps; wall minus step loop), median of "
          f"{jobs} [{time.monotonic() - started:.0f}s wall]")
    for key, value in result.items():
        print(f"  {key:38s} {value:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--modes", default="child,embedded,celery")
    args = parser.parse_args()
    from loraforge.training.tiny import write_tiny_models

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        write_tiny_models(work / "models")
        for mode in args.modes.split(","):
            started = time.monotonic()
            if mode == "child":
                report_child_cost(work, args.jobs, args.steps)
                continue
            results = run_mode(mode, work / mode, work / "models", args.jobs, args.steps)
            print(f"\n{mode}: {args.jobs} tiny FLUX jobs (64 px, {args.steps} steps), medians "
                  f"[{time.monotonic() - started:.0f}s wall]")
            for key in results[0]:
                values = [r[key] for r in results]
                unit = "" if key.endswith("%") else " s"
                print(f"  {key:28s} {statistics.median(values):8.2f}{unit}   "
                      f"(min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()

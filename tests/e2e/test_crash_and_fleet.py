"""Real processes: kill -9 of `loraforge serve` mid-training, and the Celery fleet path.

The fleet test runs the API and a separate `loraforge worker` with Redis as the broker,
PostgreSQL as the database and SeaweedFS as the store, all real.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.e2e.flow import TERMINAL, image_zip, submit_body, wait_for
from tests.e2e.processes import API_KEY, Client, Process, free_port, group_alive, job_child, wait_healthy
from tests.e2e.processes import service_env as _env
from tests.fixtures.databases import create_postgres_database, drop_postgres_database


def test_a_server_killed_mid_training_resumes_from_its_checkpoint_after_restart(tmp_path, tiny_models) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Process(["serve"], _env(tmp_path, tiny_models, port, LORAFORGE_CHECKPOINT_EVERY="4"),
                     tmp_path / "serve")
    try:
        server.start()
        wait_healthy(url, server)
        api = Client(url, API_KEY)
        job_id = api.submit(submit_body(api.upload(image_zip()), steps=24))
        wait_for(lambda: api.details(job_id),
                 lambda d: (d.get("progress") or {}).get("step", 0) >= 9 or d["status"] in TERMINAL, 120)
        child = job_child(tmp_path / "data", job_id)
        assert child is not None
        server.kill9()
        deadline = time.monotonic() + 10  # the kernel ends the job's child with its worker
        while group_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(child)

        server.start()
        wait_healthy(url, server)
        job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 240)
        assert job["status"] == "AVAILABLE", (job["error_message"], server.tail())
        resumed = [e for e in job["events"] if "resumed" in (e.get("message") or "")]
        assert resumed, job["events"]
        step = int(resumed[0]["message"].rsplit(" ", 1)[1])
        assert step >= 8
    finally:
        server.stop()


@pytest.fixture
def postgres_url():
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


def test_a_celery_fleet_trains_on_a_separate_worker_process(tmp_path, tiny_models, seaweedfs, postgres_url) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shared = {
        **seaweedfs.env(prefix=f"fleet-{random.randrange(1 << 30)}"),
        "LORAFORGE_DATABASE_URL": postgres_url,
        "LORAFORGE_BROKER_URL": f"redis://127.0.0.1:6379/{random.randrange(1, 16)}",
    }
    api_proc = Process(["serve"], _env(tmp_path, tiny_models, port, **shared), tmp_path / "api")
    worker = Process(["worker", "--machine-type", "NVIDIA_H100"],
                     _env(tmp_path / "w", tiny_models, port, **shared), tmp_path / "worker")
    try:
        api_proc.start()
        wait_healthy(url, api_proc)
        worker.start()
        api = Client(url, API_KEY)
        started = time.monotonic()
        job_id = api.submit(submit_body(api.upload(image_zip())))
        job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 240)
        assert job["status"] == "AVAILABLE", (job["error_message"], worker.tail())
        assert time.monotonic() - started < 240
        assert any("run_job" in p.read_text(errors="replace") or job_id in p.read_text(errors="replace")
                   for p in worker.logs), "the worker process did not run the job"
        image = api.http.post(f"/v1/{job['slug']}", json={"prompt": "TOK", "width": 64, "height": 64,
                                                          "num_inference_steps": 2, "seed": 0},
                              timeout=180)  # the API process loads the base model on first use
        assert image.status_code == 200, image.text
    finally:
        worker.stop()
        api_proc.stop()

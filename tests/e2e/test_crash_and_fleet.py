"""The Celery fleet path with real processes, and a broker that is down when a job is submitted.

The API (`loraforge serve`) and a separate `loraforge worker` share Redis as the broker,
PostgreSQL as the database and SeaweedFS as the store, all real. The broker (a redis-server of
this test's own) starts only after the first submit: that job waits in the database and trains
once the broker is up; a second job, submitted with the broker up, is published at once.
"""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.support.flow import TERMINAL, image_zip, submit_body, wait_for
from tests.support.processes import API_KEY, Client, Process, free_port, wait_healthy
from tests.support.processes import service_env as _env


@pytest.fixture
def postgres_url():
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


def test_a_celery_fleet_trains_on_a_separate_worker_process_even_if_the_broker_was_down_at_submit(
        tmp_path, tiny_models, seaweedfs, postgres_url) -> None:
    port, broker_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    shared = {
        **seaweedfs.env(prefix=f"fleet-{random.randrange(1 << 30)}"),
        "LORAFORGE_DATABASE_URL": postgres_url,
        "LORAFORGE_BROKER_URL": f"redis://127.0.0.1:{broker_port}/0",
        "LORAFORGE_REQUEUE_AFTER_S": "1",
    }
    api_proc = Process(["serve"], _env(tmp_path, tiny_models, port, **shared), tmp_path / "api")
    worker = Process(["worker", "--machine-type", "NVIDIA_H100"],
                     _env(tmp_path / "w", tiny_models, port, **shared), tmp_path / "worker")
    broker = None
    try:
        api_proc.start()
        wait_healthy(url, api_proc)
        api = Client(url, API_KEY)
        data = api.upload(image_zip())
        started = time.monotonic()
        waited_id = api.submit(submit_body(data, steps=2))  # asserts the 200, with nothing listening on the broker port
        assert time.monotonic() - started < 10
        assert api.details(waited_id)["status"] == "REQUESTED"

        broker = subprocess.Popen(["redis-server", "--port", str(broker_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        worker.start()
        waited = wait_for(lambda: api.details(waited_id), lambda d: d["status"] in TERMINAL, 240)
        assert waited["status"] == "AVAILABLE", (waited["error_message"], worker.tail(), api_proc.tail())

        started = time.monotonic()  # the broker is up now: this one is published at submit
        job_id = api.submit(submit_body(data, sample_every=0))
        job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 240)
        assert job["status"] == "AVAILABLE", (job["error_message"], worker.tail())
        assert time.monotonic() - started < 240
        worker_log = "".join(p.read_text(errors="replace") for p in worker.logs)
        assert waited_id in worker_log and job_id in worker_log, "the worker process did not run the jobs"
        image = api.http.post(f"/v1/{job['slug']}", json={"prompt": "TOK", "width": 64, "height": 64,
                                                          "num_inference_steps": 2, "seed": 0},
                              timeout=180)  # the API process loads the base model on first use
        assert image.status_code == 200, image.text
    finally:
        worker.stop()
        api_proc.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(10)

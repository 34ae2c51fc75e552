"""Each job's GPU work runs in a child process: crashes, retries, time limit, cancel, lease fencing.

Real children of real workers on the tiny models: a `loraforge serve` subprocess for kill -9 of the
server and then of the child (the job resumes from its checkpoint after each, the API keeps
answering, and the API process never imports torch for it), the in-process app (embedded worker)
for the rest. The faults are real: SIGKILL of the child from outside (what the kernel's OOM killer
does), a 5 s time limit, a cancel, and another worker taking the lease over in the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.pool import NullPool

from loraforge.db.job_models import JobRun
from tests.fixtures.apps import ApiClient, module_app
from tests.support.flow import TERMINAL, image_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit, upload
from tests.support.processes import (
    API_KEY,
    Client,
    Process,
    free_port,
    group_alive,
    has_torch,
    job_child,
    service_env,
    wait_healthy,
)

SQLITE_LOCAL = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)


def _step(d: dict) -> int:
    return int((d.get("progress") or {}).get("step") or 0)


def _messages(job: dict) -> list[str]:
    return [e["message"] for e in job["events"] if e.get("message")]


def _resumed(job: dict) -> list[int]:
    """The checkpoint steps the job resumed from, in order."""
    prefix = "resumed from the checkpoint of step "
    return [int(m.removeprefix(prefix)) for m in _messages(job) if m.startswith(prefix)]


class ChildWatcher(threading.Thread):
    """Records every child a job had (from the worker's pidfile); `kill` SIGKILLs each one it sees."""

    def __init__(self, data_dir: Path, job_id: str, kill: bool = False) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.job_id, self.kill = data_dir, job_id, kill
        self.seen: set[int] = set()
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.05):
            pid = job_child(self.data_dir, self.job_id)
            if pid is None:
                continue
            self.seen.add(pid)
            if self.kill:  # from outside, as the kernel's OOM killer does
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self) -> set[int]:
        self.done.set()
        self.join()
        return self.seen


def _wait_removed(path: Path, timeout: float = 10) -> None:
    """The worker removes a job's work dir right after its final status: give it that moment."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists(), f"{path} was left behind"


def _wait_no_process(pids: set[int], timeout: float) -> None:
    """No process is left in the process group of any of the job's children (child + what it started)."""
    assert pids, "no child process was seen"
    deadline = time.monotonic() + timeout
    while any(group_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if group_alive(pid)], "a child of the job is still running"


def test_a_killed_server_and_a_killed_child_each_resume_from_a_checkpoint_while_the_api_answers(
        tmp_path, tiny_models) -> None:
    """One job through both crashes (one server and one job, not two of each): kill -9 of
    `loraforge serve` mid-training ends the job's child with it and the job resumes from its
    checkpoint after a restart; then kill -9 of the child alone is retried from the next
    checkpoint while the API keeps answering."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    server = Process(["serve"], service_env(tmp_path, tiny_models, port, LORAFORGE_CHECKPOINT_EVERY="4"),
                     tmp_path / "serve")
    try:
        server.start()
        wait_healthy(url, server)
        api = Client(url, API_KEY)
        job_id = api.submit(submit_body(api.upload(image_zip()), steps=40, sample_every=0))
        wait_for(lambda: api.details(job_id), lambda d: _step(d) >= 9 or d["status"] in TERMINAL, 120)
        first = job_child(data_dir, job_id)
        assert first is not None
        server.kill9()
        _wait_no_process({first}, 10)  # the kernel ends the job's child with its worker

        server.start()
        wait_healthy(url, server)
        job = wait_for(lambda: api.details(job_id), lambda d: bool(_resumed(d)) or d["status"] in TERMINAL, 120,
                       "the job resumed after the restart")
        resumed_at = _resumed(job)[0]
        assert resumed_at >= 8, job["events"]
        # The restarted server's job runs in a new child: once it has written its next two
        # checkpoints, kill -9 that child alone (what the kernel's OOM killer does).
        wait_for(lambda: api.details(job_id), lambda d: _step(d) >= resumed_at + 9 or d["status"] in TERMINAL, 120)
        child = job_child(data_dir, job_id)
        assert child is not None and child != first
        os.kill(child, signal.SIGKILL)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # the API is not the child
        assert api.details(job_id)["status"] == "TRAINING_INITIATED"

        job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 240)
        assert job["status"] == "AVAILABLE", (job["error_message"], server.tail())
        messages = _messages(job)
        assert any("attempt 1 of 3 failed" in m and "SIGKILL" in m for m in messages), messages
        assert _resumed(job)[0] == resumed_at and _resumed(job)[-1] >= resumed_at + 8, messages
        _wait_no_process({child}, 10)
        _wait_removed(data_dir / "work" / job_id)  # no stale work dir
        metrics = httpx.get(f"{url}/metrics", timeout=10).text  # the restarted server's own counts
        assert 'loraforge_job_child_exits_total{outcome="crashed"} 1.0' in metrics
        assert 'loraforge_job_child_exits_total{outcome="ok"} 1.0' in metrics

        # The job ran in children only: the API process imported torch for none of it. /v1 then
        # loads the model in the API process, which the same check sees.
        assert not has_torch(server.proc.pid)
        image = api.http.post(f"/v1/{job['slug']}", json={"prompt": "TOK", "width": 64, "height": 64,
                                                          "num_inference_steps": 2, "seed": 0}, timeout=180)
        assert image.status_code == 200, image.text
        assert has_torch(server.proc.pid)
    finally:
        server.stop()


def test_leftovers_of_a_dead_worker_are_ended_at_start(tmp_path, tiny_models) -> None:
    """A work dir whose worker died and whose child still runs: the next start kills and removes it."""
    work = tmp_path / "data" / "work" / "00000000-dead-worker-job"
    work.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(work)],
                              start_new_session=True)
    try:
        start = Path(f"/proc/{orphan.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (work / "worker.json").write_text(json.dumps({"pid": dead.pid, "start": "1"}))
        (work / "child.pid").write_text(json.dumps({"pid": orphan.pid, "start": start}))
        port = free_port()
        server = Process(["serve"], service_env(tmp_path, tiny_models, port), tmp_path / "serve")
        try:
            server.start()
            wait_healthy(f"http://127.0.0.1:{port}", server)
            assert orphan.wait(10) == -signal.SIGKILL
            assert not work.exists()
        finally:
            server.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


@pytest.fixture(scope="module", params=[("sqlite", "local")], ids="-".join)
def warm_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_models) -> Iterator[ApiClient]:
    """One app for the tests below that need no setting of their own: each job goes to the same warm
    worker. Its lease test runs last, since it leaves its job to the (fictional) other worker."""
    yield from module_app(request, tmp_path_factory,
                          **pipeline_settings(tiny_models, job_max_attempts=2, checkpoint_every=1000))


def _training_job(api: ApiClient) -> tuple[str, ChildWatcher]:
    """A long job (5000 steps) once its first step is done, and the watcher of its children."""
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=5000))
    watcher = ChildWatcher(api.settings.data_dir, job_id)
    wait_for(lambda: details(api, job_id), lambda d: _step(d) >= 1 or d["status"] in TERMINAL)
    return job_id, watcher


def test_a_child_that_dies_every_time_ends_failed_with_the_cause(warm_api: ApiClient) -> None:
    api = warm_api
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=2000))
    killer = ChildWatcher(api.settings.data_dir, job_id, kill=True)
    try:
        job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, 120)
    finally:
        seen = killer.stop()
    assert job["status"] == "FAILED"
    assert "all 2 attempts" in job["error_message"] and "SIGKILL" in job["error_message"], job["error_message"]
    assert "internal error, reference " in job["error_message"] and "Traceback" not in job["error_message"]
    assert any("attempt 1 of 2 failed" in m for m in _messages(job)), job["events"]
    assert len(seen) == 2
    _wait_no_process(seen, 5)


@SQLITE_LOCAL
def test_a_time_limit_ends_the_job_failed_within_seconds_and_leaves_no_process(make_app_client,
                                                                              tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, job_timeout_s=5, checkpoint_every=1000))
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=5000))
    started = time.monotonic()
    watcher = ChildWatcher(api.settings.data_dir, job_id)
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, 60)
    assert job["status"] == "FAILED"
    assert time.monotonic() - started < 5 + 10
    message = job["error_message"]
    assert message.startswith("exceeded the time limit of 5 s"), message
    assert "LORAFORGE_JOB_TIMEOUT_S" in message
    _wait_no_process(watcher.stop(), 2)
    _wait_removed(api.settings.data_dir / "work" / job_id)


def test_cancel_during_training_leaves_no_child_within_seconds(warm_api: ApiClient) -> None:
    api = warm_api
    job_id, watcher = _training_job(api)
    r = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    cancelled = time.monotonic()
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, 15)
    assert job["status"] == "CANCELLED"
    _wait_no_process(watcher.stop(), max(1.0, 10 - (time.monotonic() - cancelled)))


def test_a_worker_whose_lease_was_taken_over_cannot_change_the_job(warm_api: ApiClient) -> None:
    api = warm_api
    job_id, watcher = _training_job(api)
    # Another worker takes the job over (as after our lease expired while we were paused).
    with api.app.state.services.sessions() as session:
        session.execute(update(JobRun).where(JobRun.job_id == job_id)
                        .values(lease_owner="other-host/boot/1/new", lease_expires_at=time.time() + 3600))
        session.commit()
    before = details(api, job_id)
    _wait_no_process(watcher.stop(), 10)  # the old worker stops its child on its next renewal
    time.sleep(1.0)
    after = details(api, job_id)
    assert after["status"] == before["status"] == "TRAINING_INITIATED"
    assert after["events"] == before["events"]  # no FAILED, no CANCELLED, nothing written
    assert _step(after) <= _step(before) + 5  # progress writes stop with the lease too


@pytest.mark.parametrize(("database_url", "storage_kind"), [("postgresql", "local")], indirect=True)
def test_dropped_database_connections_do_not_fail_a_training_job(make_app_client, tiny_models,
                                                                 database_url) -> None:
    """Every backend of the worker's database is killed, again and again, mid-training (as in a
    failover): the lease renewal and the message handlers reconnect and retry, and the job still
    becomes AVAILABLE."""
    api = make_app_client(**pipeline_settings(tiny_models, checkpoint_every=5))
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=60))

    def fetch() -> dict:
        r = api.client.get("/finetune/request/details", params={"request_id": job_id}, headers=api.headers())
        assert r.status_code in (200, 503), r.text  # 503: the API's own connection was the one dropped
        return r.json()["finetune"] if r.status_code == 200 else {"status": "?", "progress": None}

    wait_for(fetch, lambda d: _step(d) >= 3 or d["status"] in TERMINAL)
    killer = create_engine(database_url, poolclass=NullPool)
    killed = 0
    for _ in range(20):
        with killer.connect() as conn:
            killed += conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        time.sleep(0.3)
    killer.dispose()
    assert killed >= 5
    job = wait_for(fetch, lambda d: d["status"] in TERMINAL, 180)
    assert job["status"] == "AVAILABLE", job["error_message"]

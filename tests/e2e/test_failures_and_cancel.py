"""Jobs that cannot finish end in a status with a reason, and cancel stops a training job in seconds.

Embedded worker, through HTTP, tiny models; each test runs on SQLite + local disk and on
PostgreSQL + SeaweedFS S3, one app per pair for the whole module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fixtures.apps import ApiClient, module_app
from tests.support.flow import (
    TERMINAL,
    image_zip,
    not_images_zip,
    pipeline_settings,
    status_path,
    submit_body,
    wait_for,
)
from tests.support.pipeline_http import details, submit, upload


@pytest.fixture(scope="module", params=[("sqlite", "local"), ("postgresql", "s3")], ids="-".join)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_models) -> Iterator[ApiClient]:
    """One app per backend pair for the module: each test's job goes to the same warm worker."""
    yield from module_app(request, tmp_path_factory, **pipeline_settings(tiny_models, checkpoint_every=1000))


def test_a_zip_without_usable_images_ends_failed_with_a_reason(api: ApiClient) -> None:
    job_id = submit(api, submit_body(upload(api, not_images_zip())))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "FAILED"
    assert "image" in job["error_message"].lower()
    assert status_path(job["events"]) == ["REQUESTED", "DATA_PROCESSING", "FAILED"]


@pytest.fixture
def vanishing_file_server() -> Iterator[str]:
    """Answers the first HEAD with a Content-Length, then drops every connection: a host gone away."""
    seen = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            seen["n"] += 1
            if seen["n"] > 1:
                self.close_connection = True
                return
            self.send_response(200)
            self.send_header("content-length", "1000")
            self.send_header("content-type", "application/zip")
            self.end_headers()

        def do_GET(self) -> None:
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.zip"
    server.shutdown()
    server.server_close()


def test_a_url_that_stops_answering_ends_failed_with_a_reason(api: ApiClient, vanishing_file_server) -> None:
    job_id = submit(api, submit_body(vanishing_file_server))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "FAILED"
    assert vanishing_file_server in job["error_message"] or "data.zip" in job["error_message"]


def test_cancel_stops_a_training_job_within_seconds(api: ApiClient) -> None:
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=5000))
    wait_for(lambda: details(api, job_id), lambda d: (d.get("progress") or {}).get("step", 0) >= 1
             or d["status"] in TERMINAL)
    r = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=10)
    assert job["status"] == "CANCELLED"
    again = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert again.status_code == 409 and "CANCELLED" in again.json()["error"]

"""Inputs and deliveries as they come from the field (issue 19), through a real `loraforge serve`.

One server subprocess (SQLite, local disk, embedded worker, tiny models) for the module, and
loopback peers that behave like the reported hosts and receivers: a receiver that refuses a
message with a JSON reason before it accepts it, the way a FastAPI or Polar receiver answers 401.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.flow import TERMINAL, not_images_zip, submit_body, wait_for
from tests.e2e.processes import API_KEY, Client, Process, free_port, service_env, wait_healthy

REASON = {"error": "signature mismatch", "docs": "https://hooks.example/why?token=sk_live_hidden"}


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yields its base URL once, then stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Receiver:
    """A webhook receiver: it answers each POST with the next of `answers` (status, body), then 200."""

    url: str = ""
    answers: list[tuple[int, bytes]] = field(default_factory=list)
    got: list[tuple[int, dict]] = field(default_factory=list)  # (status answered, body received)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(Quiet):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                status, answer = state.answers.pop(0) if state.answers else (200, b"")
                state.got.append((status, json.loads(body)))
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    for state.url in _serving(Handler):
        state.url += "/hook"
        yield state


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("field")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Process(["serve"], service_env(tmp, tiny_models, port, LORAFORGE_WEBHOOK_POLL_S="0.1",
                                            LORAFORGE_WEBHOOK_RETRY_SCHEDULE="0,0.3,0.3,0.3"), tmp / "serve")
    try:
        server.start()
        wait_healthy(url, server, 120)
        yield Client(url, API_KEY)
    finally:
        server.stop()


def test_a_failed_job_is_reported_by_default_and_the_receivers_reason_is_kept(api: Client, receiver: Receiver
                                                                               ) -> None:
    receiver.answers = [(401, json.dumps(REASON).encode())]  # refused once, with its reason; then taken
    added = api.http.post("/webhook/add", json={"webhook_url": receiver.url})  # no event: the defaults
    assert added.status_code == 200, added.text
    hook = added.json()
    types = ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE", "FAILED", "CANCELLED"]
    assert [h["event"]["types"] for h in api.http.get("/webhook/get").json()["webhooks"]] == [types]

    job_id = api.submit(submit_body(api.upload(not_images_zip())))
    job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 180)
    assert job["status"] == "FAILED"
    wait_for(lambda: {"got": [s for s, _ in receiver.got]}, lambda d: 200 in d["got"], 60, "the FAILED webhook")
    assert [(status, body["type"], body["request_id"]) for status, body in receiver.got] == [
        (401, "FAILED", job_id), (200, "FAILED", job_id)]
    assert receiver.got[-1][1]["error_message"] == job["error_message"]

    logs = api.http.get("/webhook/dispatch-logs", params={"webhook_id": hook["webhook_id"]}).json()["logs"]
    refused = [entry for entry in logs if entry["status_code"] == 401]
    assert len(refused) == 1 and refused[0]["error"] == "HTTP 401"
    assert "signature mismatch" in refused[0]["response_body"]
    assert "https://hooks.example/why?…" in refused[0]["response_body"]
    assert "sk_live_hidden" not in json.dumps(logs)
    assert [entry["response_body"] for entry in logs if entry["status_code"] == 200] == [None]

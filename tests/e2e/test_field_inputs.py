"""Inputs and deliveries as they come from the field (issue 19), through a real `loraforge serve`.

One server subprocess (SQLite, local disk, embedded worker, tiny models) for the module, and
loopback peers that behave like the reported hosts and receivers: a share link that redirects to
a pre-signed S3-style GET link, which answers 403 to HEAD and serves GET (ranges included); a host
whose first GET breaks off halfway and which resumes with `Range`; a receiver that refuses a
message with a JSON reason before it accepts it, the way a FastAPI or Polar receiver answers 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.flow import TERMINAL, not_images_zip, submit_body, wait_for
from tests.support.processes import API_KEY, Client, Process, free_port, service_env, wait_healthy

SIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature=0badc0ffee"
DATASET = not_images_zip()  # a whole ZIP gets as far as "no images": the download itself succeeded
GOT_DATASET = "the dataset has 0 usable images"
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


@dataclass
class Host:
    """A dataset host; `seen` records (method, path, Range header) of every request."""

    url: str = ""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    state = Host()
    digest = base64.b64encode(hashlib.sha256(DATASET).digest()).decode()

    class Handler(Quiet):
        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            wanted = self.headers.get("Range")
            state.seen.append((self.command, path, wanted))
            if path.startswith("/share/"):  # a sharing service's link: on to a link signed for GET
                self._answer(302, Location=f"/bucket/{path.rsplit('/', 1)[1]}?{SIGNED}")
            elif path.startswith("/bucket/"):  # S3: a HEAD on a link signed for GET is a 403
                if self.command == "HEAD" or path == "/bucket/expired.zip":
                    self._answer(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
                else:
                    self._ranged(DATASET, wanted)
            elif path == "/flaky.zip":
                gets = sum(1 for method, p, _ in state.seen if (method, p) == ("GET", "/flaky.zip"))
                self._ranged(DATASET, wanted, cut=self.command == "GET" and gets == 1, ETag='"v1"',
                             **{"Repr-Digest": f"sha-256=:{digest}:"})
            elif path == "/always-cut.zip":
                self._ranged(DATASET, wanted, cut=self.command == "GET")
            elif path == "/photos.tar.gz":
                self._answer(200, b"\x1f\x8b\x08\x00" + b"\x00" * 4092, Content_Type="application/gzip")
            else:
                self._answer(404, b"")

        def _ranged(self, data: bytes, wanted: str | None, cut: bool = False, **headers: str) -> None:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
            if match and (self.headers.get("If-Range") in (None, headers.get("ETag"))):
                first = int(match.group(1))
                last = int(match.group(2)) if match.group(2) else len(data) - 1
                part = data[first:last + 1]
                headers["Content-Range"] = f"bytes {first}-{first + len(part) - 1}/{len(data)}"
                self._answer(206, part, cut=cut, **headers)
            else:
                self._answer(200, data, cut=cut, **headers)

        def _answer(self, status: int, body: bytes = b"", cut: bool = False, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:
                self.close_connection = True

    for state.url in _serving(Handler):
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


def _finish(api: Client, url: str) -> dict:
    job_id = api.submit(submit_body(url))
    return wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 180)


def test_a_link_that_refuses_head_is_probed_with_a_ranged_get(api: Client, host: Host) -> None:
    job = _finish(api, f"{host.url}/share/photos.zip")
    # got as far as the dataset itself: the probe and the download both went through
    assert job["status"] == "FAILED" and GOT_DATASET in job["error_message"], job["error_message"]
    bucket = [(method, wanted) for method, path, wanted in host.seen if path == "/bucket/photos.zip"]
    assert bucket[:2] == [("HEAD", None), ("GET", "bytes=0-3")]  # HEAD first, refused; then four bytes
    assert ("GET", None) in bucket[2:]

    expired = api.http.post("/finetune/request/submit", json=submit_body(f"{host.url}/share/expired.zip"))
    assert expired.status_code == 400, expired.text
    error = expired.json()["error"]
    assert error.startswith("data_source_path: the server answered 403 to GET for "
                            f"{host.url}/bucket/expired.zip?…"), error
    assert "0badc0ffee" not in error


def test_a_download_that_breaks_off_once_resumes_with_range(api: Client, host: Host) -> None:
    job = _finish(api, f"{host.url}/flaky.zip")
    assert job["status"] == "FAILED" and GOT_DATASET in job["error_message"], job["error_message"]
    gets = [wanted for method, path, wanted in host.seen if (method, path) == ("GET", "/flaky.zip")]
    assert gets == [None, f"bytes={len(DATASET) // 2}-"]


def test_a_download_that_keeps_breaking_off_fails_saying_how_many_gets_were_made(api: Client, host: Host
                                                                                  ) -> None:
    job = _finish(api, f"{host.url}/always-cut.zip")
    assert job["status"] == "FAILED"
    assert "did not complete after 4 GETs" in job["error_message"], job["error_message"]
    assert f"{host.url}/always-cut.zip" in job["error_message"]


def test_a_tar_gz_is_named_as_such(api: Client, host: Host) -> None:
    job = _finish(api, f"{host.url}/photos.tar.gz")
    assert job["status"] == "FAILED"
    assert "is a gzip archive (.gz or .tar.gz), but a dataset must be a ZIP archive" in job["error_message"]
    assert "4096" not in job["error_message"] and "direct download link" not in job["error_message"]

"""Submitting with a foreign dataset URL: HEAD-probed for size, and refused by the SSRF guard."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.apps import ApiClient, AppFactory
from tests.support.seed_requests import BASE, QWEN_SUBMIT, tiny_zip


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def zip_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on loopback serving dataset.zip (answers HEAD with Content-Length)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "dataset.zip").write_bytes(tiny_zip())
    (root / "share.html").write_text("<!doctype html><title>Share</title><p>Download</p>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_public_zip_url_is_probed_and_accepted(make_app_client: AppFactory, zip_server: str) -> None:
    api = make_app_client(allow_private_urls=True)
    body = {**QWEN_SUBMIT, "data_source_path": f"{zip_server}/dataset.zip"}
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(), json=body)
    assert answer.status_code == 200, answer.text
    details = api.client.get(
        f"{BASE}/details?request_id={answer.json()['request_id']}", headers=api.headers()
    )
    assert details.json()["finetune"]["source_type"] == "PUBLIC_URL"


def test_a_foreign_url_that_is_missing_or_too_big_is_refused(
    make_app_client: AppFactory, zip_server: str
) -> None:
    api = make_app_client(allow_private_urls=True, max_upload_bytes=10)
    missing = api.client.post(
        f"{BASE}/submit",
        headers=api.headers(),
        json={**QWEN_SUBMIT, "data_source_path": f"{zip_server}/nope.zip"},
    )
    assert missing.status_code == 400, missing.text
    too_big = api.client.post(
        f"{BASE}/submit",
        headers=api.headers(),
        json={**QWEN_SUBMIT, "data_source_path": f"{zip_server}/dataset.zip"},
    )
    assert too_big.status_code == 413, too_big.text
    assert api.client.get(f"{BASE}/list", headers=api.headers()).json() == []


def test_a_url_that_answers_with_a_web_page_is_refused_at_submit(
    make_app_client: AppFactory, zip_server: str
) -> None:
    api = make_app_client(allow_private_urls=True)
    body = {**QWEN_SUBMIT, "data_source_path": f"{zip_server}/share.html"}
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(), json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == (
        "data_source_path: the URL returned a web page, not a ZIP; use a direct download link"
    )


INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1/dataset.zip",
    "http://10.0.0.1/a.zip",
    "http://[::1]/a.zip",
    "http://localhost/a.zip",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_the_ssrf_guard_refuses_internal_addresses(module_app_client: ApiClient, url: str) -> None:
    api = module_app_client  # LORAFORGE_ALLOW_PRIVATE_URLS off, the default
    body = {**QWEN_SUBMIT, "data_source_path": url}
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(), json=body)
    assert answer.status_code == 400, (url, answer.text)
    assert answer.json()["error"].startswith("data_source_path: "), answer.json()
    assert api.client.get(f"{BASE}/list", headers=api.headers()).json() == []

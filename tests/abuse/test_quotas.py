"""Per-key quotas, upload expiry and slow dataset hosts, against a real `loraforge serve`.

Each test takes fresh keys (`loraforge keys create`), so one test's quota use never shows in
another's. Over a quota the answer is a 429 with Retry-After and the quota's name; another key is
unaffected. Unused upload slots expire and their files go. Submits whose dataset host trickles
its headers hold no database slot: /healthz and another key's list stay fast meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.abuse_server import Served, serving, tiny_zip
from tests.support.datasets_host import TrickleHost, ZipHost

BASE = "/finetune/request"
EXPIRY_S = 4
ACTIVE_JOBS = 3
PENDING_UPLOADS = 3
UPLOAD_BYTES = 100_000
SUBMIT: dict[str, Any] = {
    "name": "quota", "instance_prompt": "a photo of TOK", "trigger_word": "TOK", "base_model": "QWEN",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        tmp_path_factory.mktemp("quotas"),
        LORAFORGE_QUOTA_ACTIVE_JOBS=str(ACTIVE_JOBS), LORAFORGE_QUOTA_PENDING_UPLOADS=str(PENDING_UPLOADS),
        LORAFORGE_QUOTA_UPLOAD_BYTES=str(UPLOAD_BYTES), LORAFORGE_UPLOAD_EXPIRY_S=str(EXPIRY_S),
        LORAFORGE_PRESIGN_EXPIRY_S=str(EXPIRY_S),
        LORAFORGE_QUOTA_PROBES="2", LORAFORGE_DOWNLOAD_TIMEOUT_S="5",
    )



def _assert_quota(answer: httpx.Response, quota: str) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["quota"] == quota
    assert quota in answer.json()["error"]


def _reserve(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.request("GET", f"{BASE}/upload/pre-signed-url", json={"name": "photos", **body})


def test_unfinished_jobs_are_capped_per_key(served: Served, zip_host: ZipHost) -> None:
    body = {**SUBMIT, "data_source_path": f"{zip_host.url}/ds.zip"}
    with served.client(served.new_key()) as mine, served.client(served.new_key()) as theirs:
        for _ in range(ACTIVE_JOBS):
            assert mine.post(f"{BASE}/submit", json=body).status_code == 200
        _assert_quota(mine.post(f"{BASE}/submit", json=body), "active_jobs")
        assert len(mine.get(f"{BASE}/list").json()) == ACTIVE_JOBS
        assert theirs.post(f"{BASE}/submit", json=body).status_code == 200, "another key is unaffected"


def test_only_zip_uploads_are_accepted(served: Served) -> None:
    with served.client(served.new_key()) as http:
        for extension in ("bin", ".html", "zipx"):
            answer = _reserve(http, extension=extension)
            assert answer.status_code == 400 and "extension" in answer.json()["error"], answer.text
        for extension in ("zip", ".zip", ".ZIP"):
            assert _reserve(http, extension=extension).status_code == 200


def test_pending_upload_slots_are_capped_and_expire_with_their_files(served: Served) -> None:
    with served.client(served.new_key()) as http, served.client(served.new_key()) as other:
        slots = [_reserve(http, public=True).json() for _ in range(PENDING_UPLOADS)]
        for slot in slots:
            put = httpx.put(slot["presigned_url"], content=tiny_zip(), headers={"x-amz-acl": "public-read"})
            assert put.status_code == 200
            assert httpx.get(slot["s3_url"]).status_code == 200
        _assert_quota(_reserve(http), "pending_uploads")
        assert _reserve(other).status_code == 200, "another key is unaffected"
        time.sleep(EXPIRY_S + 2)  # the sweep runs every EXPIRY_S / 4
        for slot in slots:
            assert httpx.get(slot["s3_url"]).status_code == 404, "an expired slot's file is deleted"
        expired = http.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": slots[0]["s3_url"]})
        assert expired.status_code == 404
        assert _reserve(http).status_code == 200, "expired slots no longer count"


def test_stored_upload_bytes_are_capped_per_key(served: Served) -> None:
    with served.client(served.new_key()) as http:
        first, second = _reserve(http).json(), _reserve(http).json()
        assert httpx.put(first["presigned_url"], content=b"a" * 60_000).status_code == 200
        _assert_quota(httpx.put(second["presigned_url"], content=b"b" * 60_000), "upload_bytes")
        chunked = httpx.put(second["presigned_url"], content=iter([b"b" * 30_000, b"b" * 30_000]))
        _assert_quota(chunked, "upload_bytes")
        assert httpx.put(second["presigned_url"], content=b"b" * 30_000).status_code == 200


def test_a_trickling_dataset_host_holds_no_database_slot(served: Served) -> None:
    host = TrickleHost(every_s=2)
    keys = [served.new_key(f"slow{n}") for n in range(8)]
    body = {**SUBMIT, "data_source_path": f"{host.url}/ds.zip"}
    try:
        with ThreadPoolExecutor(16) as pool:
            def submit(key: str) -> int:
                with served.client(key, timeout=120) as http:
                    return http.post(f"{BASE}/submit", json=body).status_code

            pending = [pool.submit(submit, keys[n % len(keys)]) for n in range(16)]
            time.sleep(2)
            with served.client(keys[0]) as http:  # this key already has its 2 probes in flight
                _assert_quota(http.post(f"{BASE}/submit", json=body), "probes")
            for _ in range(5):
                started = time.monotonic()
                assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
                with served.client(served.other_key, timeout=5) as other:
                    assert other.get(f"{BASE}/list").status_code == 200
                assert time.monotonic() - started < 1.0, "healthz + list must stay fast during the flood"
            host.stop()
            statuses = [f.result(timeout=120) for f in pending]
        assert all(400 <= s < 500 for s in statuses), statuses
    finally:
        host.stop()

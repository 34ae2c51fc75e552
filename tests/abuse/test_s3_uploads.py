"""Uploads that go straight to S3 (SeaweedFS) behind the API's back, on a real `loraforge serve`.

S3 cannot cap the size of a pre-signed PUT, so the upload sweep measures unused uploads: one over
the cap is deleted within a sweep, and the others count against the key's `upload_bytes` quota.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.backends import SeaweedFS
from tests.support.abuse_server import Served, serving

BASE = "/finetune/request"
CAP = 2000
EXPIRY_S = 8  # the sweep runs every EXPIRY_S / 4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("s3uploads"), **seaweedfs.env(f"abuse-{uuid.uuid4().hex[:8]}"),
                       LORAFORGE_MAX_UPLOAD_BYTES=str(CAP), LORAFORGE_QUOTA_UPLOAD_BYTES=str(CAP - 500),
                       LORAFORGE_UPLOAD_EXPIRY_S=str(EXPIRY_S), LORAFORGE_PRESIGN_EXPIRY_S=str(EXPIRY_S))


def _reserve(http: httpx.Client) -> httpx.Response:
    return http.request("GET", f"{BASE}/upload/pre-signed-url", json={"name": "photos"})


def _wait_for(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.25)
    return False


def test_an_oversized_s3_upload_is_deleted_and_others_count_against_the_quota(served: Served) -> None:
    with served.client(served.new_key()) as http:
        big, small = _reserve(http).json(), _reserve(http).json()
        assert httpx.put(big["presigned_url"], content=b"b" * (CAP * 3)).status_code == 200
        assert httpx.put(small["presigned_url"], content=b"s" * (CAP - 100)).status_code == 200

        body = {"name": "big", "instance_prompt": "a photo of TOK", "trigger_word": "TOK", "base_model": "QWEN",
                "data_source_path": big["s3_url"]}

        def big_is_gone() -> bool:
            answer = http.post(f"{BASE}/submit", json=body)
            assert answer.status_code in (400, 413), answer.text  # too big, then gone: never a job
            return "nothing has been uploaded" in answer.json()["error"]

        assert _wait_for(big_is_gone, EXPIRY_S), "the sweep must delete an upload over the cap"
        answer = _reserve(http)  # the same sweep recorded the small one's size
        assert answer.status_code == 429, answer.text
        assert answer.json()["quota"] == "upload_bytes" and int(answer.headers["retry-after"]) > 0

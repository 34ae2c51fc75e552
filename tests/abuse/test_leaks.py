"""What one key can learn of another's, and what URLs leave in logs and errors, on a real serve.

A public model's details, read with another key, show neither its dataset URL (with the owner's
credentials) nor the owner's user or upload ids; URLs in error messages and in the server log
(access log included) lose their userinfo and query string.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.abuse_server import Served, serving, tiny_zip
from tests.support.datasets_host import ZipHost

BASE = "/finetune/request"
SECRETS = ("secret", "X-Amz-Signature", "sig-value", "tok-hidden")
SUBMIT: dict[str, Any] = {
    "name": "leak", "instance_prompt": "a photo of TOK", "trigger_word": "TOK", "base_model": "QWEN",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("leaks"), access_log=True)



def _credentialed(host: ZipHost, path: str) -> str:
    return host.url.replace("http://", "http://user:secret@") + f"{path}?X-Amz-Signature=sig-value"


def _public_job(served: Served, source: str) -> str:
    with served.client() as http:
        answer = http.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": source})
        assert answer.status_code == 200, answer.text
        job_id = str(answer.json()["request_id"])
        made = http.put(f"{BASE}/access-update", data={"request_id": job_id, "segmind_public": "True"})
        assert made.status_code == 200, made.text
        mine = http.get(f"{BASE}/details", params={"request_id": job_id}).json()["finetune"]
        assert mine["data_source_path"] == source, "the owner still sees the URL they gave"
    return job_id


def test_another_key_sees_a_public_model_without_its_dataset_url(served: Served, zip_host: ZipHost) -> None:
    job_id = _public_job(served, _credentialed(zip_host, "/ds.zip"))
    with served.client(served.other_key) as other:
        answer = other.get(f"{BASE}/details", params={"request_id": job_id})
    assert answer.status_code == 200
    assert answer.json()["finetune"]["data_source_path"] is None
    assert not any(secret in answer.text for secret in SECRETS), answer.text


def test_another_key_sees_no_owner_ids_of_a_public_model(served: Served) -> None:
    with served.client() as http:
        slot = http.request("GET", f"{BASE}/upload/pre-signed-url", json={"name": "mine"}).json()
    assert httpx.put(slot["presigned_url"], content=tiny_zip()).status_code == 200
    _, owner_id, file_name = slot["s3_url"].rsplit("/", 3)[-3:]
    upload_id = file_name[:36]
    job_id = _public_job(served, slot["s3_url"])
    with served.client(served.other_key) as other:
        text = other.get(f"{BASE}/details", params={"request_id": job_id}).text
    assert owner_id not in text and upload_id not in text, text


def test_urls_in_errors_and_logs_lose_userinfo_and_query(served: Served, zip_host: ZipHost) -> None:
    with served.client() as http:
        refused = http.post(f"{BASE}/submit",
                            json={**SUBMIT, "data_source_path": _credentialed(zip_host, "/forbidden.zip")})
        assert refused.status_code == 400
        assert "403" in refused.json()["error"] and "/forbidden.zip" in refused.json()["error"]
        assert not any(secret in refused.text for secret in SECRETS), refused.text
        redirected = http.post(f"{BASE}/submit",
                               json={**SUBMIT, "data_source_path": _credentialed(zip_host, "/redirect.zip")})
        assert redirected.status_code == 200, redirected.text
        slot = http.request("GET", f"{BASE}/upload/pre-signed-url", json={"name": "logged"}).json()
    assert httpx.put(slot["presigned_url"], content=tiny_zip()).status_code == 200  # signature in the target
    log = served.log_text()
    assert "redirected to" in log and "/redirect.zip" in log
    assert "PUT /files/uploads/" in log, "the access log shows the upload's request target"
    assert "signature=" not in log
    assert not any(secret in log for secret in SECRETS), [line for line in log.splitlines()
                                                           if any(s in line for s in SECRETS)]

"""Hostile inputs against a real `loraforge serve`: every one is a 4xx with a JSON error, never a 500.

Also the existence oracles (an unsigned /files GET and another key's s3_url answer like a missing
object) and the fixed, safe types stored objects are served with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.abuse_server import Served, raw_connect, read_status, serving, tiny_zip

BASE = "/finetune/request"
NESTED = b"[" * 100_000 + b"]" * 100_000
SUBMIT: dict[str, Any] = {
    "name": "abuse", "instance_prompt": "a photo of TOK", "trigger_word": "TOK", "base_model": "QWEN",
}
BODY_ENDPOINTS = [
    ("POST", f"{BASE}/submit"), ("GET", f"{BASE}/details"), ("GET", f"{BASE}/upload/pre-signed-url"),
    ("PUT", f"{BASE}/access-update"), ("GET", f"{BASE}/file/download"), ("POST", "/webhook/add"),
    ("POST", "/webhook/update"), ("POST", "/v1/some-model-slug"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("hostile"))


def _assert_json_4xx(answer: httpx.Response, status: int = 400) -> str:
    assert answer.status_code == status, (answer.request.url, answer.status_code, answer.text[:300])
    message = answer.json()["error"]
    assert isinstance(message, str) and message
    return message


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS, ids=[path for _, path in BODY_ENDPOINTS])
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_deeply_nested_json_is_a_400_on_every_endpoint_that_reads_a_body(served: Served, content_type: str,
                                                                        method: str, path: str) -> None:
    with served.client() as http:
        answer = http.request(method, path, content=NESTED, headers={"content-type": content_type})
        _assert_json_4xx(answer)
        assert http.get("/healthz").status_code == 200


def test_json_nested_past_the_depth_the_store_can_write_is_refused(served: Served) -> None:
    deep: Any = "x"
    for _ in range(300):  # orjson parses 1024 levels but serialises only 254: the JSON column would fail
        deep = [deep]
    body = {**SUBMIT, "data_source_path": "http://127.0.0.1:9/d.zip", "advance_parameters": {"extra": deep}}
    with served.client() as http:
        assert "nested deeper" in _assert_json_4xx(http.post(f"{BASE}/submit", json=body))


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/x", "http://h:port/x"])
def test_a_url_that_does_not_parse_is_a_400(served: Served, url: str) -> None:
    with served.client() as http:
        answer = http.request("GET", f"{BASE}/file/download", data={"cloud_storage_url": url})
        assert "cloud_storage_url" in _assert_json_4xx(answer)
        answer = http.get(f"{BASE}/file/download", params={"cloud_storage_url": url})
        assert "cloud_storage_url" in _assert_json_4xx(answer)
        answer = http.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": url})
        assert "data_source_path" in _assert_json_4xx(answer)


def test_nul_characters_never_reach_the_database(served: Served) -> None:
    with served.client() as http:
        _assert_json_4xx(http.get(f"{BASE}/details", params={"request_id": "a\x00b"}))
        _assert_json_4xx(http.get(f"{BASE}/details/%00"), 400)
        _assert_json_4xx(http.post("/v1/slug%00x", json={"prompt": "p"}))
        _assert_json_4xx(http.get("/webhook/dispatch-logs", params={"webhook_id": "\x00"}))
        body = {**SUBMIT, "name": "a\x00b", "data_source_path": "http://127.0.0.1:9/d.zip"}
        assert "name" in _assert_json_4xx(http.post(f"{BASE}/submit", json=body))
        answer = http.request("GET", f"{BASE}/upload/pre-signed-url", data={"name": "x\x00y"})
        assert "name" in _assert_json_4xx(answer)


def test_broken_encodings_are_400s(served: Served) -> None:
    with served.client() as http:
        lone_surrogate = b'{"request_id": "\\ud800"}'
        _assert_json_4xx(http.request("GET", f"{BASE}/details", content=lone_surrogate))
        form = {"content-type": "application/x-www-form-urlencoded"}
        _assert_json_4xx(http.request("PUT", f"{BASE}/access-update", content=b"request_id=%ff%fe", headers=form))
        _assert_json_4xx(http.request("PUT", f"{BASE}/access-update", content=b"\xff\xfe=1", headers=form))
        multipart = {"content-type": "multipart/form-data; boundary=zz"}
        _assert_json_4xx(http.request("PUT", f"{BASE}/access-update", content=b"--zz\r\ngarbage", headers=multipart))
        _assert_json_4xx(http.get(f"{BASE}/list", params={"limit": "9" * 5000}))
        _assert_json_4xx(http.get(f"{BASE}/list", params={"offset": "1e3"}))


def test_a_signature_with_non_ascii_characters_is_refused_not_a_500(served: Served) -> None:
    answer = httpx.get(f"{served.url}/files/uploads/u/x.zip", params={"expires": "9999999999", "signature": "é"})
    _assert_json_4xx(answer, 403)
    answer = httpx.get(f"{served.url}/files/uploads/u/x.zip", params={"expires": "٣٣", "signature": "x"})
    _assert_json_4xx(answer, 403)


def test_a_content_length_that_is_not_ascii_digits_is_refused(served: Served) -> None:
    with raw_connect(served) as sock:
        sock.sendall(b"POST /finetune/request/submit HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n"
                     b"x-api-key: " + served.key.encode() + b"\r\n\r\n")
        assert read_status(sock) == 400


def _reserve(http: httpx.Client, name: str, public: bool) -> dict[str, str]:
    answer = http.request("GET", f"{BASE}/upload/pre-signed-url", json={"name": name, "public": public})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_uploads_are_served_as_zip_attachments_whatever_type_they_were_put_with(served: Served) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    with served.client() as http:
        slot = _reserve(http, "page.html", public=True)
        put = httpx.put(slot["presigned_url"], content=page,
                        headers={"Content-Type": "text/html", "x-amz-acl": "public-read"})
        assert put.status_code == 200, put.text
    served_back = httpx.get(slot["s3_url"])
    assert served_back.status_code == 200
    assert served_back.content == page
    assert served_back.headers["content-type"] == "application/zip"
    assert served_back.headers["x-content-type-options"] == "nosniff"
    assert served_back.headers["content-disposition"].startswith("attachment")


def test_an_unsigned_get_answers_the_same_for_missing_and_private_files(served: Served) -> None:
    with served.client() as http:
        slot = _reserve(http, "private", public=False)
        assert httpx.put(slot["presigned_url"], content=tiny_zip()).status_code == 200
    missing_url = slot["s3_url"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000-none.zip"
    private, missing = httpx.get(slot["s3_url"]), httpx.get(missing_url)
    assert private.status_code == missing.status_code == 404
    assert private.json() == missing.json()
    assert httpx.head(slot["s3_url"]).status_code == httpx.head(missing_url).status_code == 404


def test_another_keys_upload_answers_like_a_missing_one(served: Served, tmp_path: Path) -> None:
    with served.client(served.other_key) as theirs:
        slot = _reserve(theirs, "theirs", public=False)
        assert httpx.put(slot["presigned_url"], content=tiny_zip()).status_code == 200
    missing_url = slot["s3_url"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000-none.zip"
    with served.client() as mine:
        answers = [mine.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": url})
                   for url in (slot["s3_url"], missing_url)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()


HOSTILE_VALUES = ["\x00", "9" * 5000, "-1", "1e400", "é\ud7ff", "../../etc/passwd", "x" * 10_000, "[", "%ff"]
HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (NESTED, "application/json"),
    (b'{"a": [' * 40 + b"]}" * 40, "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"request_id": 1e400, "name": {"x": null}, "webhook_url": ["http://[::1"]}', "application/json"),
    (b"a=%00&b=%ff&request_id=" + b"9" * 5000, "application/x-www-form-urlencoded"),
    (b"--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx", "multipart/form-data; boundary=zz"),
]


def _operations(served: Served) -> list[tuple[str, str, list[str]]]:
    spec = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            queries = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            found.append((method.upper(), path, queries))
    return found


def test_no_endpoint_answers_500_to_hostile_values(served: Served) -> None:
    """Every operation of the OpenAPI document, with hostile path, query and body values."""
    failures, seen = [], set()
    operations = _operations(served)
    assert len(operations) > 15, operations
    with served.client(timeout=60) as http:
        for method, path, queries in operations:
            if path.startswith("/v1/"):
                continue  # covered above; a valid body there would start a generation
            for value in HOSTILE_VALUES[:4]:
                target = path
                for name in [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]:
                    target = target.replace(target[target.index("{"):target.index("}") + 1], quote(value, safe=""))
                params = {name: value for name in queries}
                for body, content_type in HOSTILE_BODIES:
                    answer = http.request(method, target, params=params, content=body,
                                          headers={"content-type": content_type})
                    seen.add(answer.status_code)
                    if answer.status_code >= 500:
                        failures.append((method, path, value[:20], body[:30], answer.status_code, answer.text[:200]))
    assert not failures, failures
    assert {400, 404} <= seen, seen
    assert "Traceback" not in served.log_text()

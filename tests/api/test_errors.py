"""Malformed requests of every kind answer 4xx JSON {"error": ...}, never a 500 or a traceback."""

from __future__ import annotations

import pytest

from tests.fixtures.apps import ApiClient
from tests.support.seed_requests import BASE, QWEN_SUBMIT

SEED_CALLS = [
    ("POST", "/submit"),
    ("GET", "/details"),
    ("GET", "/list"),
    ("GET", "/upload/pre-signed-url"),
    ("PUT", "/access-update"),
    ("GET", "/file/download"),
]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "lf_not-a-real-key"}], ids=["missing", "unknown"])
@pytest.mark.parametrize(("method", "path"), SEED_CALLS, ids=[path.strip("/") for _, path in SEED_CALLS])
def test_missing_and_unknown_keys_are_401_on_every_seed_endpoint(
    module_app_client: ApiClient, method: str, path: str, headers: dict[str, str]
) -> None:
    answer = module_app_client.client.request(method, BASE + path, headers=headers)
    assert answer.status_code == 401, (method, path, answer.text)
    assert "x-api-key" in answer.json()["error"]


JSON = {"Content-Type": "application/json"}
MALFORMED = [
    ({"content": b"{not json", "headers": JSON}, "not valid JSON"),
    ({"content": b"[1, 2]", "headers": JSON}, "JSON object"),
    ({"content": b"\xff\xfe", "headers": JSON}, "not valid JSON"),
    ({"content": b"name=x", "headers": {"Content-Type": "text/plain"}}, "Content-Type"),
    ({"content": b"<xml/>", "headers": {"Content-Type": "application/xml"}}, "Content-Type"),
    ({"content": b"", "headers": {}}, "name: is required"),
    ({"json": {**QWEN_SUBMIT, "data_source_path": 5}, "headers": {}}, "data_source_path"),
    ({"json": {**QWEN_SUBMIT, "advance_parameters": [1]}, "headers": {}}, "advance_parameters"),
]


@pytest.mark.parametrize(("kwargs", "expected"), MALFORMED,
                         ids=["not-json", "array", "not-utf8", "text", "xml", "empty", "number-url", "list-params"])
def test_malformed_bodies_are_400_json(module_app_client: ApiClient, kwargs: dict, expected: str) -> None:
    kwargs = {**kwargs, "headers": {**module_app_client.headers(), **kwargs["headers"]}}
    answer = module_app_client.client.post(f"{BASE}/submit", **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 400, (kwargs, answer.text)
    assert expected in answer.json()["error"], (kwargs, answer.json())


def test_json_sent_by_curl_without_a_content_type_is_still_read(app_client: ApiClient) -> None:
    # `curl --data '{...}'` labels the body application/x-www-form-urlencoded.
    answer = app_client.client.request(
        "GET",
        f"{BASE}/details",
        headers={**app_client.headers(), "Content-Type": "application/x-www-form-urlencoded"},
        content=b'{"request_id": "missing"}',
    )
    assert answer.status_code == 404
    assert "missing" in answer.json()["error"]


def test_oversized_bodies_are_413(make_app_client) -> None:  # type: ignore[no-untyped-def]
    api = make_app_client(max_request_bytes=1024)
    big = {**QWEN_SUBMIT, "instance_prompt": "x" * 5000}
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(), json=big)
    assert answer.status_code == 413
    assert "1024-byte cap" in answer.json()["error"]

    def chunks():  # no Content-Length: the cap must hold while streaming
        for _ in range(10):
            yield b"x" * 512

    streamed = api.client.post(f"{BASE}/submit", headers=api.headers(), content=chunks())
    assert streamed.status_code == 413


def test_unknown_paths_and_wrong_methods_are_json(app_client: ApiClient) -> None:
    missing = app_client.client.get("/finetune/request/nothing", headers=app_client.headers())
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = app_client.client.delete(f"{BASE}/submit", headers=app_client.headers())
    assert wrong.status_code == 405 and "DELETE" in wrong.json()["error"]
    assert wrong.json()["error"].endswith("; use POST"), wrong.json()  # the method that works
    deactivate = app_client.client.post("/webhook/inactive", json={}, headers=app_client.headers())
    assert deactivate.json()["error"] == "POST is not allowed on /webhook/inactive; use GET", deactivate.json()


def test_health_and_docs_answer_without_a_key(app_client: ApiClient) -> None:
    assert app_client.client.get("/healthz").json() == {"status": "ok"}
    spec = app_client.client.get("/openapi.json").json()
    for path in (
        "/submit",
        "/details",
        "/list",
        "/upload/pre-signed-url",
        "/access-update",
        "/file/download",
    ):
        assert BASE + path in spec["paths"]
    # A GET's body is documented under x-request-body (browsers cannot send it); its fields are queries.
    details_body = spec["paths"][f"{BASE}/details"]["get"]["x-request-body"]["content"]["application/json"]
    assert "request_id" in details_body["schema"]["properties"]
    submit_body = spec["paths"][f"{BASE}/submit"]["post"]["requestBody"]["content"]["application/json"]
    assert "steps" in submit_body["schema"]["properties"]["advance_parameters"]["properties"]
    assert app_client.client.get("/docs").status_code == 200


def test_loraforge_api_key_is_usable_right_after_start(make_app_client) -> None:  # type: ignore[no-untyped-def]
    api = make_app_client(api_key="chosen-at-start-123")
    answer = api.client.get(f"{BASE}/list", headers={"x-api-key": "chosen-at-start-123"})
    assert answer.status_code == 200 and answer.json() == []

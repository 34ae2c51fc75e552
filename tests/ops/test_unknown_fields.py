"""A body field the endpoint does not know is a 400 naming it and the closest field, never ignored."""

from __future__ import annotations

import pytest

ONE_BACKEND = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)
CASES = [
    ("GET", "/finetune/request/details", {"json": {"requestid": "x"}}, "requestid", "request_id"),
    ("GET", "/finetune/request/upload/pre-signed-url", {"json": {"name": "a", "extention": ".zip"}},
     "extention", "extension"),
    ("PUT", "/finetune/request/access-update", {"data": {"request_id": "x", "segmind_publc": "True"}},
     "segmind_publc", "segmind_public"),
    ("GET", "/finetune/request/file/download", {"data": {"cloud_storage_uri": "x"}},
     "cloud_storage_uri", "cloud_storage_url"),
    ("POST", "/finetune/request/cancel", {"json": {"reqest_id": "x"}}, "reqest_id", "request_id"),
    ("POST", "/finetune/request/delete", {"json": {"request_ids": "x"}}, "request_ids", "request_id"),
    ("POST", "/webhook/add", {"json": {"webhook_url": "https://h/x", "events": {}}}, "events", "event"),
    ("POST", "/webhook/update", {"json": {"webhook_id": "x", "webhook_uri": "https://h/x"}},
     "webhook_uri", "webhook_url"),
    ("POST", "/webhook/test", {"json": {"webhookid": "x"}}, "webhookid", "webhook_id"),
    ("POST", "/v1/some-slug", {"json": {"prompt": "x", "steps": 4}}, "steps", "num_inference_steps"),
    ("POST", "/v2/some-slug", {"json": {"prompt": "x", "guidance": 4.0}}, "guidance", "guidance_scale"),
]


@ONE_BACKEND
@pytest.mark.parametrize(("method", "path", "body", "wrong", "meant"), CASES)
def test_an_unknown_field_names_the_closest_one(app_client, method, path, body, wrong, meant) -> None:
    answer = app_client.client.request(method, path, headers=app_client.headers(), **body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == f"{wrong}: unknown field; did you mean {meant}?"


QUERY_CASES = [
    ("/finetune/request/list", {"limt": "5"}, "limt", "limit"),
    ("/finetune/request/upload/pre-signed-url", {"name": "a", "pubic": "true"}, "pubic", "public"),
    ("/finetune/request/details", {"requestid": "x"}, "requestid", "request_id"),
    ("/finetune/request/metrics", {"request_id": "x", "requestid": "x"}, "requestid", "request_id"),
    ("/finetune/request/file/download", {"cloud_storage_uri": "x"}, "cloud_storage_uri", "cloud_storage_url"),
]


@ONE_BACKEND
@pytest.mark.parametrize(("path", "query", "wrong", "meant"), QUERY_CASES)
def test_an_unknown_query_parameter_names_the_closest_one(app_client, path, query, wrong, meant) -> None:
    answer = app_client.client.get(path, params=query, headers=app_client.headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == f"{wrong}: unknown field; did you mean {meant}?"


@ONE_BACKEND
def test_the_sdks_generation_calls_surface_our_errors(live_server) -> None:
    """segmind 1.3.0's default client.run posts to /v2/{slug}; errors come back as SegmindError."""
    import segmind
    from segmind.exceptions import SegmindError

    client = segmind.SegmindClient(api_key=live_server.key, base_url=f"{live_server.url}/v1")
    with pytest.raises(SegmindError) as caught:
        client.run("no-such-model", prompt="a photo")
    assert caught.value.status == 404 and "no-such-model" in (caught.value.detail or "")
    with pytest.raises(SegmindError) as caught:
        client.run("no-such-model", prompt="a photo", steps=4)
    assert caught.value.status == 400 and "did you mean num_inference_steps" in (caught.value.detail or "")
    with pytest.raises(SegmindError) as caught:
        client.run_sync("no-such-model", prompt="a photo")  # POST /v1/{slug}
    assert caught.value.status == 404

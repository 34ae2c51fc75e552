"""Pre-signed upload URLs (both seeds' bodies) and the model download link (form body on GET)."""

from __future__ import annotations

import httpx
import pytest

from loraforge.db.models import FineTuneJob
from tests.fixtures.apps import ApiClient
from tests.support.seed_requests import BASE, FAST_FLUX_SUBMIT, submit_job, tiny_zip, upload_dataset


@pytest.mark.backends("storage")
def test_presigned_url_answers_a_put_link_and_a_stable_s3_url(app_client: ApiClient) -> None:
    answer = app_client.client.request(
        "GET",
        f"{BASE}/upload/pre-signed-url",
        headers=app_client.headers(),
        json={"name": "NAME_OF_THE_FILE"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"presigned_url", "s3_url"}
    assert body["s3_url"].endswith("-NAME_OF_THE_FILE.zip")
    assert "/uploads/" in body["s3_url"]
    assert body["presigned_url"] != body["s3_url"]
    assert app_client.put_presigned(body["presigned_url"], tiny_zip(), {}).status_code in (200, 204)


@pytest.mark.backends("storage")
def test_public_presigned_url_takes_the_fast_flux_seed_headers(app_client: ApiClient) -> None:
    s3_url = upload_dataset(app_client, public=True)
    answer = app_client.client.post(
        f"{BASE}/submit", headers=app_client.headers(), json={**FAST_FLUX_SUBMIT, "data_source_path": s3_url}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "a", "extension": "../zip"}, "extension"),
    ({"name": "a", "public": "sometimes"}, "public"),
], ids=["no-name", "empty-name", "extension", "public"])
def test_presigned_url_refuses_a_bad_name_or_extension(module_app_client: ApiClient, body: dict, field: str) -> None:
    api = module_app_client
    answer = api.client.request("GET", f"{BASE}/upload/pre-signed-url", headers=api.headers(), json=body)
    assert answer.status_code == 400, body
    assert field in answer.json()["error"]


@pytest.mark.backends("storage")
def test_presigned_url_keeps_hostile_names_inside_the_callers_folder(app_client: ApiClient) -> None:
    answer = app_client.client.request(
        "GET",
        f"{BASE}/upload/pre-signed-url",
        headers=app_client.headers(),
        json={"name": "../../etc/passwd"},
    )
    key = app_client.app.state.services.store.key_from_url(answer.json()["s3_url"])
    assert key.startswith("uploads/") and ".." not in key


def _finish_job(api: ApiClient, request_id: str) -> str:
    """Stand in for the pipeline's last step: store a model file and record its URL."""
    store = api.app.state.services.store
    key = f"models/{request_id}/model.safetensors"
    store.put_bytes(key, b"weights")
    url = store.object_url(key)
    with api.app.state.services.sessions() as session:
        job = session.get(FineTuneJob, request_id)
        assert job is not None
        job.status, job.cloud_storage_url = "AVAILABLE", url
        session.commit()
    return url


def _fetch(api: ApiClient, link: str) -> httpx.Response:
    """GET a link with no API key: through the app for its own links, S3 over the network."""
    if link.startswith(api.settings.public_url):
        answer = api.client.get(link, follow_redirects=False)
        if answer.is_redirect:  # a public S3 object: the app redirects to a short-lived S3 link
            return httpx.get(answer.headers["location"], timeout=30)
        return answer
    return httpx.get(link, follow_redirects=True, timeout=30)


@pytest.mark.backends
def test_file_download_answers_a_signed_text_link_for_a_private_model(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    url = _finish_job(app_client, job["request_id"])
    answer = app_client.client.request(
        "GET", f"{BASE}/file/download", headers=app_client.headers(), data={"cloud_storage_url": url}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    link = answer.text
    assert link != url, "a private model's link must be signed"
    assert _fetch(app_client, link).content == b"weights"
    assert _fetch(app_client, url).status_code in (403, 404), "a private model's plain URL must be refused"
    other = app_client.new_key("other")
    refused = app_client.client.request(
        "GET", f"{BASE}/file/download", headers=app_client.headers(other), data={"cloud_storage_url": url}
    )
    assert refused.status_code == 404


@pytest.mark.backends("storage")
def test_file_download_answers_a_plain_public_link_for_a_fast_flux_model(app_client: ApiClient) -> None:
    job = submit_job(app_client, body=FAST_FLUX_SUBMIT)
    _finish_job(app_client, job["request_id"])
    store = app_client.app.state.services.store
    key = f"models/{job['request_id']}/model.safetensors"
    url = store.public_url(key)  # what the pipeline records for FAST_FLUX
    with app_client.app.state.services.sessions() as session:
        row = session.get(FineTuneJob, job["request_id"])
        assert row is not None
        row.cloud_storage_url = url
        session.commit()
    answer = app_client.client.request(
        "GET", f"{BASE}/file/download", headers=app_client.headers(), data={"cloud_storage_url": url}
    )
    assert answer.text == url
    assert _fetch(app_client, answer.text).content == b"weights"


def test_file_download_hands_back_the_pipelines_fast_flux_token_link(app_client: ApiClient) -> None:
    job = submit_job(app_client, body=FAST_FLUX_SUBMIT)
    token_link = f"{app_client.settings.public_url}/models/public/some-token/fastfluxtest1.safetensors"
    with app_client.app.state.services.sessions() as session:
        row = session.get(FineTuneJob, job["request_id"])
        assert row is not None
        row.status, row.cloud_storage_url = "AVAILABLE", token_link
        session.commit()
    answer = app_client.client.request(
        "GET", f"{BASE}/file/download", headers=app_client.headers(), data={"cloud_storage_url": token_link}
    )
    assert answer.status_code == 200 and answer.text == token_link
    other = app_client.new_key("stranger")
    refused = app_client.client.request(
        "GET",
        f"{BASE}/file/download",
        headers=app_client.headers(other),
        data={"cloud_storage_url": token_link},
    )
    assert refused.status_code == 404


@pytest.mark.backends
def test_making_a_model_public_makes_its_weights_downloadable_without_a_key(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    url = _finish_job(app_client, job["request_id"])
    form = {"request_id": job["request_id"], "segmind_public": "True"}
    assert (
        app_client.client.put(f"{BASE}/access-update", headers=app_client.headers(), data=form).status_code
        == 200
    )
    other = app_client.new_key("fan")
    answer = app_client.client.request(
        "GET", f"{BASE}/file/download", headers=app_client.headers(other), data={"cloud_storage_url": url}
    )
    assert answer.status_code == 200, answer.text
    assert _fetch(app_client, answer.text).content == b"weights"
    form["segmind_public"] = "False"
    assert (
        app_client.client.put(f"{BASE}/access-update", headers=app_client.headers(), data=form).status_code
        == 200
    )
    assert not app_client.app.state.services.store.is_public(app_client.app.state.services.store.key_from_url(url))


@pytest.mark.backends("storage")
def test_making_a_fast_flux_model_private_keeps_its_key_less_link_working(app_client: ApiClient) -> None:
    job = submit_job(app_client, body=FAST_FLUX_SUBMIT)
    _finish_job(app_client, job["request_id"])
    store = app_client.app.state.services.store
    key = f"models/{job['request_id']}/model.safetensors"
    store.set_public(key, True)  # as the pipeline does for FAST_FLUX weights
    url = store.public_url(key)
    with app_client.app.state.services.sessions() as session:
        row = session.get(FineTuneJob, job["request_id"])
        assert row is not None
        row.cloud_storage_url = url
        session.commit()
    form = {"request_id": job["request_id"], "segmind_public": "False"}
    assert (
        app_client.client.put(f"{BASE}/access-update", headers=app_client.headers(), data=form).status_code
        == 200
    )
    assert _fetch(app_client, url).content == b"weights"


@pytest.mark.backends("storage")
def test_file_download_of_a_foreign_or_missing_url_is_404(app_client: ApiClient) -> None:
    for url in ("https://example.com/model.safetensors", ""):
        answer = app_client.client.request(
            "GET", f"{BASE}/file/download", headers=app_client.headers(), data={"cloud_storage_url": url}
        )
        assert answer.status_code in (400, 404), answer.text
        assert "cloud_storage_url" in answer.json()["error"]

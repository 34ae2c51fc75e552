"""Reading fine-tune requests back: details (JSON body on GET, or ?request_id=) and list."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.apps import ApiClient
from tests.support.seed_requests import (
    BASE,
    DETAILS_FIELDS,
    FAST_FLUX_SUBMIT,
    LIST_FIELDS,
    QWEN_SUBMIT,
    submit_job,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.mark.backends("database")
def test_details_with_a_json_body_on_get_carries_every_seed_field(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    answer = app_client.client.request(
        "GET", f"{BASE}/details", headers=app_client.headers(), json={"request_id": job["request_id"]}
    )
    assert answer.status_code == 200
    finetune = answer.json()["finetune"]
    assert DETAILS_FIELDS <= set(finetune)
    assert finetune["id"] == finetune["request_id"] == finetune["finetune_id"] == job["request_id"]
    assert finetune["name"] == QWEN_SUBMIT["name"]
    assert finetune["instance_prompt"] == QWEN_SUBMIT["instance_prompt"]
    assert finetune["public_model"] is False
    assert finetune["error_message"] is None and finetune["cloud_storage_url"] is None
    assert TIMESTAMP.match(finetune["created_ts"]) and TIMESTAMP.match(finetune["updated_ts"])
    assert finetune["slug"].startswith("qwentest-")


def test_details_accepts_request_id_in_the_query_string(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    answer = app_client.client.get(
        f"{BASE}/details?request_id={job['request_id']}", headers=app_client.headers()
    )
    assert answer.json()["finetune"]["request_id"] == job["request_id"]


def test_details_of_an_unknown_id_is_404_naming_request_id(app_client: ApiClient) -> None:
    answer = app_client.client.request(
        "GET", f"{BASE}/details", headers=app_client.headers(), json={"request_id": "no-such-id"}
    )
    assert answer.status_code == 404
    assert "request_id" in answer.json()["error"]


def test_details_without_request_id_is_400(app_client: ApiClient) -> None:
    answer = app_client.client.get(f"{BASE}/details", headers=app_client.headers())
    assert answer.status_code == 400
    assert answer.json() == {"error": "request_id: is required"}


@pytest.mark.backends("database")
def test_list_rows_carry_every_seed_field_newest_first(app_client: ApiClient) -> None:
    first = submit_job(app_client)
    second = submit_job(app_client, body=FAST_FLUX_SUBMIT)
    rows = app_client.client.get(f"{BASE}/list", headers=app_client.headers()).json()
    assert [row["request_id"] for row in rows] == [second["request_id"], first["request_id"]]
    for row in rows:
        assert LIST_FIELDS <= set(row)
        assert row["segmind_public_model"] is False
        assert row["model_information"] == {}
        assert row["segmind_model_path"] is None
    assert rows[0]["advance_parameters"] == FAST_FLUX_SUBMIT["advance_parameters"]
    assert rows[0]["theme"] == "subject"


@pytest.mark.backends("database")
def test_list_pages_with_limit_and_offset(app_client: ApiClient) -> None:
    ids = [submit_job(app_client)["request_id"] for _ in range(3)]
    page = app_client.client.get(f"{BASE}/list?limit=2&offset=1", headers=app_client.headers()).json()
    assert [row["request_id"] for row in page] == ids[::-1][1:3]
    bad = app_client.client.get(f"{BASE}/list?limit=0", headers=app_client.headers())
    assert bad.status_code == 400 and "limit" in bad.json()["error"]
    for query in ("offset=1851596638337214101332743489060864", "offset=-1", "limit=99999999999999999999999"):
        huge = app_client.client.get(f"{BASE}/list?{query}", headers=app_client.headers())
        assert huge.status_code == 400, (query, huge.text)
        assert huge.json()["error"].startswith(query.split("=")[0] + ": "), huge.json()


def test_two_keys_see_only_their_own_jobs(app_client: ApiClient) -> None:
    alice, bob = app_client.key, app_client.new_key("bob")
    job = submit_job(app_client, alice)
    assert app_client.client.get(f"{BASE}/list", headers=app_client.headers(bob)).json() == []
    hidden = app_client.client.get(
        f"{BASE}/details?request_id={job['request_id']}", headers=app_client.headers(bob)
    )
    assert hidden.status_code == 404
    steal = app_client.client.put(
        f"{BASE}/access-update",
        headers=app_client.headers(bob),
        data={"request_id": job["request_id"], "segmind_public": "True"},
    )
    assert steal.status_code == 404


@pytest.mark.backends("database")
def test_access_update_with_the_seed_form_makes_a_model_readable_by_any_key(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    other = app_client.new_key("reader")
    for value, expected in (("True", True), ("false", False), ("TRUE", True)):
        answer = app_client.client.put(
            f"{BASE}/access-update",
            headers=app_client.headers(),
            data={"request_id": job["request_id"], "segmind_public": value},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["segmind_public"] is expected
    seen = app_client.client.get(
        f"{BASE}/details?request_id={job['request_id']}", headers=app_client.headers(other)
    )
    assert seen.status_code == 200
    assert seen.json()["finetune"]["public_model"] is True
    own_list = app_client.client.get(f"{BASE}/list", headers=app_client.headers()).json()
    assert own_list[0]["segmind_public_model"] is True


def test_access_update_refuses_a_vague_boolean(app_client: ApiClient) -> None:
    job = submit_job(app_client)
    answer = app_client.client.put(
        f"{BASE}/access-update",
        headers=app_client.headers(),
        data={"request_id": job["request_id"], "segmind_public": "yes"},
    )
    assert answer.status_code == 400
    assert "segmind_public" in answer.json()["error"]
    missing = app_client.client.put(f"{BASE}/access-update", headers=app_client.headers(), data={})
    assert missing.status_code == 400 and "request_id" in missing.json()["error"]


JOB_ROUTES = {
    "details": lambda client, request_id, headers: client.get(f"{BASE}/details", params={"request_id": request_id},
                                                              headers=headers),
    "metrics": lambda client, request_id, headers: client.get(f"{BASE}/metrics", params={"request_id": request_id},
                                                              headers=headers),
    "cancel": lambda client, request_id, headers: client.post(f"{BASE}/cancel", json={"request_id": request_id},
                                                              headers=headers),
    "delete": lambda client, request_id, headers: client.post(f"{BASE}/delete", json={"request_id": request_id},
                                                              headers=headers),
    "access-update": lambda client, request_id, headers: client.put(
        f"{BASE}/access-update", headers=headers, data={"request_id": request_id, "segmind_public": "True"}),
}


@pytest.fixture(scope="module")
def foreign_job(module_app_client: ApiClient) -> tuple[str, str]:
    """A job of the module app's user, and another user's key."""
    return submit_job(module_app_client)["request_id"], module_app_client.new_key("stranger")


@pytest.mark.parametrize("whose", ["foreign", "missing"])
@pytest.mark.parametrize("route", list(JOB_ROUTES))
def test_every_job_route_answers_404_in_the_same_words_for_a_missing_or_foreign_id(
    module_app_client: ApiClient, foreign_job: tuple[str, str], route: str, whose: str
) -> None:
    job, stranger = foreign_job
    request_id, key = (job, stranger) if whose == "foreign" else ("no-such-id", None)
    expected = f"request_id: no fine-tune request {request_id!r} for this API key"
    answer = JOB_ROUTES[route](module_app_client.client, request_id, module_app_client.headers(key))
    assert (answer.status_code, answer.json()) == (404, {"error": expected}), route

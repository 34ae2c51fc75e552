"""The webhook GETs refuse a query parameter they do not know, as the finetune/request GETs do.

`?webhookid=ID` used to answer "webhook_id: is required" and `?webhook_id=ID&limit=5` silently
ignored `limit`; now each is a 400 naming the parameter and the closest known one, while the
SDK's own `?webhook_id=` keeps working.
"""

from __future__ import annotations

import pytest

from tests.fixtures.apps import AppFactory

ONE_BACKEND = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)


@ONE_BACKEND
@pytest.mark.parametrize("path", ["/webhook/inactive", "/webhook/dispatch-logs"])
def test_a_misspelt_webhook_query_parameter_is_refused_naming_the_closest(make_app_client: AppFactory,
                                                                          path: str) -> None:
    app_client = make_app_client(allow_private_urls=True)  # the hook's URL is on loopback, never called
    hook = app_client.client.post("/webhook/add", headers=app_client.headers(), json={
        "webhook_url": "http://127.0.0.1:9/in", "event": {"types": ["AVAILABLE"]}}).json()
    wrong = app_client.client.get(path, params={"webhookid": hook["webhook_id"]}, headers=app_client.headers())
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error"] == "webhookid: unknown field; did you mean webhook_id?"
    extra = app_client.client.get(path, params={"webhook_id": hook["webhook_id"], "limit": "5"},
                                  headers=app_client.headers())
    assert extra.status_code == 400 and extra.json()["error"].startswith("limit: unknown field")
    assert app_client.client.get("/webhook/get", headers=app_client.headers()).json()["webhooks"][0]["active"], \
        "a refused request changed nothing"
    right = app_client.client.get(path, params={"webhook_id": hook["webhook_id"]}, headers=app_client.headers())
    assert right.status_code == 200, right.text

"""GET /metrics through HTTP: no key needed, fleet figures from the database, nothing per user.

When the database goes away the scrape still answers this process's own metrics.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loraforge.metrics import FleetCollector
from tests.fixtures.databases import drop_postgres_database
from tests.support.flow import image_zip, submit_body
from tests.support.pipeline_http import submit, upload


def families(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.mark.parametrize(("database_url", "storage_kind"), [("postgresql", "local")],
                         indirect=["database_url", "storage_kind"])
def test_metrics_count_jobs_without_a_key_and_survive_a_lost_database(make_app_client, database_url,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.monotonic()]
    monkeypatch.setattr(FleetCollector, "clock", staticmethod(lambda: now[0]))  # the figures' cache clock
    api = make_app_client()
    job_id = submit(api, submit_body(upload(api, image_zip())))  # no worker: it stays REQUESTED

    r = api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    found = families(r.text)
    jobs = {s.labels["status"]: s.value for s in found["loraforge_jobs"]}
    assert jobs["REQUESTED"] == 1 and jobs["AVAILABLE"] == 0 and len(jobs) == 8
    assert [(s.labels, s.value) for s in found["loraforge_queue_depth"]] == [({"machine_type": "NVIDIA_H100"}, 1)]
    assert api.key not in r.text and job_id not in r.text

    drop_postgres_database(database_url)
    now[0] += 5.2  # past the figures' cache
    r = api.client.get("/metrics")
    assert r.status_code == 200, r.text
    found = families(r.text)
    assert found["loraforge_jobs"] == [] and "python_info" in found

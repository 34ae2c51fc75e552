"""GET /metrics through HTTP: no key needed, fleet figures from the database, nothing per user.

When the database goes away the scrape still answers this process's own metrics.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loraforge.metrics import FleetCollector, FleetFigures
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


def _collector(reads: list[object], monkeypatch: pytest.MonkeyPatch, now: list[float]) -> FleetCollector:
    monkeypatch.setattr(FleetCollector, "clock", staticmethod(lambda: now[0]))

    def read() -> FleetFigures:
        answer = reads.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, FleetFigures)
        return answer

    return FleetCollector(read, ttl_s=5.0)


def test_the_fleet_figures_are_read_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = FleetFigures({"REQUESTED": 1}, {"H100": 1}), FleetFigures({"REQUESTED": 2}, {"H100": 2})
    now = [100.0]
    reads: list[object] = [first, second]
    collector = _collector(reads, monkeypatch, now)
    assert collector.figures() is first
    now[0] += 5.0  # not yet older than ttl_s
    assert collector.figures() is first and reads == [second]
    now[0] += 0.1
    assert collector.figures() is second and reads == []


def test_a_failed_read_answers_empty_figures_and_is_tried_again_next_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = FleetFigures({"AVAILABLE": 3}, {})
    now = [0.0]
    collector = _collector([RuntimeError("database gone"), figures], monkeypatch, now)
    assert collector.figures() == FleetFigures(jobs={}, queue_depth={})
    assert collector.figures() is figures, "a failure is not cached"
    names = [family.name for family in collector.collect()]
    assert names == ["loraforge_jobs", "loraforge_queue_depth"]

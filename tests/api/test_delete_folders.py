"""`POST /finetune/request/delete` on local storage leaves no empty folders behind.

Deleting a job's objects used to leave `datasets/{id}/` (and `models/{id}/`, their `.meta/`
twins) as empty folders under the store's root: the job's id, left on disk after the delete.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.apps import ApiClient
from tests.support.seed_requests import BASE, submit_job

LOCAL = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)


@LOCAL
def test_delete_removes_the_jobs_folders_from_local_storage(app_client: ApiClient) -> None:
    store = app_client.app.state.services.store
    job_id = submit_job(app_client)["request_id"]
    kept = submit_job(app_client)["request_id"]  # another job's folders stay
    for job in (job_id, kept):  # what a worker stores for a job
        store.put_bytes(f"datasets/{job}/dataset_report.json", b"{}")
        store.put_bytes(f"samples/{job}/step-2/0.png", b"png")
    answer = app_client.client.post(f"{BASE}/delete", json={"request_id": job_id}, headers=app_client.headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["objects_deleted"] == 3  # with its own upload

    root = Path(store.root)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if job_id in p.as_posix())
    assert left == [], "the deleted job's folders are gone, metadata included"
    assert store.exists(f"datasets/{kept}/dataset_report.json")
    assert store.exists(f"samples/{kept}/step-2/0.png")

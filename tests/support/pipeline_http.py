"""HTTP steps shared by the pipeline tests (TestClient-based ApiClient from the shared fixtures)."""

from __future__ import annotations

import httpx


def details(api, job_id: str) -> dict:
    r = api.client.get("/finetune/request/details", params={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()["finetune"]


def upload(api, data: bytes) -> str:
    r = api.client.request("GET", "/finetune/request/upload/pre-signed-url", json={"name": "photos"},
                           headers=api.headers())
    assert r.status_code == 200, r.text
    up = r.json()
    assert api.put_presigned(up["presigned_url"], data, {"Content-Type": "application/zip"}).status_code in (200, 204)
    return up["s3_url"]


def submit(api, body: dict) -> str:
    r = api.client.post("/finetune/request/submit", json=body, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()["request_id"]


def fetch(api, link: str) -> bytes:
    if link.startswith(api.settings.public_url):
        r = api.client.get(link)
    else:
        r = httpx.get(link, timeout=30)
    assert r.status_code == 200, (link, r.text[:200])
    return r.content

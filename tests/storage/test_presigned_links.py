"""Pre-signed links over plain HTTP, the same test functions for local disk and SeaweedFS S3.

Local links are served by the API's /files route (create_app under uvicorn on a free loopback port);
S3 links go straight to SeaweedFS, and public S3 objects are served through /files by redirect.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from loraforge.config import Settings
from loraforge.datasets.download import download, probe
from loraforge.storage import LocalStore, ObjectStore
from tests.fixtures.apps import LiveServer

pytestmark = pytest.mark.backends("storage")  # the stores themselves are under test

CAP = 64 * 1024
ZIP = b"PK\x03\x04" + bytes(range(256)) * 40


@dataclass
class Served:
    settings: Settings
    store: ObjectStore
    kind: str


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """These tests are about storage: one SQLite database is enough (overrides the fixture)."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'loraforge.db'}"


@pytest.fixture
def served(live_server: LiveServer, storage_kind: str) -> Served:
    """The real app (create_app) under uvicorn; its cap lowered so over-cap bodies stay small."""
    live_server.settings.max_upload_bytes = CAP
    return Served(live_server.settings, live_server.app.state.services.store, storage_kind)


def _seed_curl_put(path: Path, url: str) -> int:
    """The Fast Flux seed's upload command, verbatim but for the file and URL."""
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-T", str(path),
         "-H", "Content-Type: application/zip", "-H", "x-amz-acl: public-read", url],
        capture_output=True, text=True, timeout=30, check=False,
    )
    return int(result.stdout)


def test_the_seed_curl_uploads_a_public_zip_that_downloads_without_a_key(served: Served, tmp_path: Path) -> None:
    key = "uploads/u1/f1-faces.zip"
    source = tmp_path / "your_dataset.zip"
    source.write_bytes(ZIP)
    url = served.store.presigned_put(key, 600, "application/zip", public=True)
    assert _seed_curl_put(source, url) == 200
    assert served.store.sha256(key) == hashlib.sha256(ZIP).hexdigest()
    response = httpx.get(served.store.public_url(key), follow_redirects=True)
    assert response.status_code == 200
    assert response.content == ZIP


def test_a_public_link_passes_the_download_probe_and_downloads(served: Served, tmp_path: Path) -> None:
    key = "models/j1/fast.safetensors"
    served.store.put_bytes(key, ZIP, public=True)
    local = served.settings.model_copy(update={"allow_private_urls": True})
    assert probe(served.store.public_url(key), local) == len(ZIP)
    assert download(served.store.public_url(key), tmp_path / "m.safetensors", local).read_bytes() == ZIP


def test_a_private_upload_downloads_only_through_a_signed_link(served: Served) -> None:
    key = "uploads/u1/f2-private.zip"
    url = served.store.presigned_put(key, 600, None, public=False)
    assert httpx.put(url, content=ZIP).status_code == 200
    anonymous = httpx.get(served.store.public_url(key))
    missing = httpx.get(served.store.public_url("uploads/u1/f2-never-uploaded.zip"))
    assert anonymous.status_code == missing.status_code == 404
    assert anonymous.json() == missing.json(), "a private file must not be told apart from a missing one"
    signed = httpx.get(served.store.presigned_get(key, 600))
    assert signed.status_code == 200
    assert signed.content == ZIP


def test_an_expired_link_is_refused(served: Served) -> None:
    key = "uploads/u1/f3-late.zip"
    url = served.store.presigned_put(key, 1, "application/zip", public=False)
    time.sleep(2.1)
    response = httpx.put(url, content=ZIP, headers={"Content-Type": "application/zip"})
    assert response.status_code == 403
    if served.kind == "local":
        assert "expired" in response.json()["error"]
    assert not served.store.exists(key)


def test_a_tampered_link_is_refused(served: Served) -> None:
    key = "uploads/u1/f4-tampered.zip"
    url = served.store.presigned_put(key, 600, None, public=False)
    flipped = "0" if url[-1] != "0" else "1"
    response = httpx.put(url[:-1] + flipped, content=ZIP)
    assert response.status_code == 403
    assert not served.store.exists(key)
    other_key = httpx.put(url.replace("f4-tampered", "f4-other"), content=ZIP)
    assert other_key.status_code == 403


def test_a_public_link_requires_the_acl_header(served: Served) -> None:
    key = "uploads/u1/f5-public.zip"
    url = served.store.presigned_put(key, 600, "application/zip", public=True)
    response = httpx.put(url, content=ZIP, headers={"Content-Type": "application/zip"})
    assert response.status_code == 403
    if served.kind == "local":
        assert "x-amz-acl: public-read" in response.json()["error"]


def test_a_download_link_cannot_be_used_to_upload(served: Served) -> None:
    served.store.put_bytes("models/j/m.safetensors", b"weights")
    response = httpx.put(served.store.presigned_get("models/j/m.safetensors", 600), content=b"evil")
    assert response.status_code == 403
    assert served.store.get_bytes("models/j/m.safetensors") == b"weights"


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_upload_over_the_cap_is_a_413_and_leaves_no_file(served: Served, chunked: bool) -> None:
    key = "uploads/u1/f6-big.zip"
    url = served.store.presigned_put(key, 600, None, public=False)
    body = b"x" * (CAP + 1)
    content = iter([body[i:i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
    response = httpx.put(url, content=content)
    assert response.status_code == 413
    assert "64 KB limit" in response.json()["error"]
    assert isinstance(served.store, LocalStore)
    assert not any(served.store.root.rglob("*big*"))


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_the_signed_content_type_must_be_sent(served: Served) -> None:
    url = served.store.presigned_put("uploads/u1/f7.zip", 600, "application/zip", public=False)
    response = httpx.put(url, content=ZIP, headers={"Content-Type": "text/plain"})
    assert response.status_code == 403
    assert "Content-Type: application/zip" in response.json()["error"]


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_traversal_through_the_files_route_is_refused(served: Served) -> None:
    base = served.settings.public_url
    for path in ["/files/uploads/..%2F..%2Fsecret.key", "/files/.meta/uploads.json", "/files/a/%2e%2e/b"]:
        response = httpx.get(base + path)
        assert response.status_code in (400, 404), path
        assert "error" in response.json()


def test_a_public_object_is_served_with_a_fixed_type_whatever_it_was_put_with(served: Served) -> None:
    key = "uploads/u1/f9-page.zip"
    url = served.store.presigned_put(key, 600, None, public=True)
    page = b"<html><script>alert(1)</script></html>"
    put = httpx.put(url, content=page, headers={"Content-Type": "text/html", "x-amz-acl": "public-read"})
    assert put.status_code == 200
    response = httpx.get(served.store.public_url(key), follow_redirects=True)
    assert response.status_code == 200 and response.content == page
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment")

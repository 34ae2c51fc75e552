"""Real clients against a real server: the segmind SDK 1.3.0 and the seeds' curl commands."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import segmind
import segmind.finetune
from segmind.exceptions import SegmindError

from tests.fixtures.apps import LiveServer
from tests.support.seed_requests import FAST_FLUX_SUBMIT, QWEN_SUBMIT, tiny_zip


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[segmind.SegmindClient]:
    """The SDK pointed at the live server with the one line the README documents."""
    original = segmind.finetune.Finetune.base_url
    segmind.finetune.Finetune.base_url = f"{live_server.url}/finetune/request"
    try:
        yield segmind.SegmindClient(api_key=live_server.key)
    finally:
        segmind.finetune.Finetune.base_url = original


def _upload(live_server: LiveServer, sdk: segmind.SegmindClient) -> str:
    import httpx

    slot = sdk.finetune.upload_presigned_url("sdk-dataset")
    assert httpx.put(slot["presigned_url"], content=tiny_zip(), timeout=30).status_code in (200, 204)
    return slot["s3_url"]


@pytest.mark.backends
def test_the_segmind_sdk_drives_every_finetune_call(
    live_server: LiveServer, sdk: segmind.SegmindClient
) -> None:
    s3_url = _upload(live_server, sdk)
    submitted = sdk.finetune.submit(data_source_path=s3_url, **QWEN_SUBMIT)
    assert submitted["status"] == "REQUESTED"
    assert submitted["request_id"] == submitted["finetune_id"]
    details = sdk.finetune.details(submitted["request_id"])
    assert details["finetune"]["name"] == "qwentest"
    assert [row["request_id"] for row in sdk.finetune.list()] == [submitted["request_id"]]
    assert sdk.finetune.access_update(submitted["request_id"], True)["segmind_public"] is True
    assert sdk.finetune.details(submitted["request_id"])["finetune"]["public_model"] is True


def test_the_sdk_surfaces_our_error_message(live_server: LiveServer, sdk: segmind.SegmindClient) -> None:
    with pytest.raises(SegmindError) as caught:
        sdk.finetune.details("no-such-request")
    assert caught.value.status == 404
    assert "request_id" in (caught.value.detail or "")
    with pytest.raises(SegmindError) as caught:
        sdk.finetune.submit(data_source_path="ftp://x/y.zip", **{**QWEN_SUBMIT, "base_model": "SDXL"})
    assert caught.value.status == 400
    assert "base_model" in (caught.value.detail or "")


def _curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.backends("storage")
def test_the_seeds_curl_commands_work_verbatim(live_server: LiveServer, tmp_path: Path) -> None:
    base, key = f"{live_server.url}/finetune/request", f"x-api-key: {live_server.key}"
    slot = json.loads(
        _curl(
            "--location",
            "--request",
            "GET",
            f"{base}/upload/pre-signed-url",
            "--header",
            key,
            "--header",
            "Content-Type: application/json",
            "--data",
            '{"name": "NAME_OF_THE_FILE", "extension": ".zip", "public": true}',
        )
    )
    dataset = tmp_path / "your_dataset.zip"
    dataset.write_bytes(tiny_zip())
    _curl(
        "-X",
        "PUT",
        "-T",
        str(dataset),
        "-H",
        "Content-Type: application/zip",
        "-H",
        "x-amz-acl: public-read",
        slot["presigned_url"],
    )
    body = json.dumps({**FAST_FLUX_SUBMIT, "data_source_path": slot["s3_url"]})
    submitted = json.loads(
        _curl(
            "--location",
            f"{base}/submit",
            "--header",
            key,
            "--header",
            "Content-Type: application/json",
            "--data",
            body,
        )
    )
    assert submitted["status"] == "REQUESTED"
    request_id = submitted["finetune_id"]
    details = json.loads(
        _curl(
            "--location",
            "--request",
            "GET",
            f"{base}/details",
            "--header",
            key,
            "--header",
            "Content-Type: application/json",
            "--data",
            json.dumps({"request_id": request_id}),
        )
    )
    assert details["finetune"]["finetune_id"] == request_id
    rows = json.loads(_curl("--location", f"{base}/list", "--header", key))
    assert rows[0]["finetune_id"] == request_id
    updated = _curl(
        "--location",
        "--request",
        "PUT",
        f"{base}/access-update",
        "--header",
        key,
        "--form",
        f'request_id="{request_id}"',
        "--form",
        'segmind_public="True"',
        "--write-out",
        "%{http_code}",
    )
    assert updated.endswith("200")
    refused = _curl(
        "--location",
        "--request",
        "GET",
        f"{base}/file/download",
        "--header",
        key,
        "--form",
        'cloud_storage_url="https://example.com/not-ours.safetensors"',
    )
    assert "cloud_storage_url" in json.loads(refused)["error"]

"""Issue 10 over HTTP: what a job's dataset used, dropped and skipped is in details, events and storage.

One tiny training job (an iPhone HEIC among JPEGs, a truncated and a too-small photo, OS junk,
`lora_rank` as an alias) and one refused dataset, on one app (SQLite, local disk) to stay lean.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import samples
from tests.support.flow import TERMINAL, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, fetch, submit, upload


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _lora_metadata(data: bytes) -> dict[str, str]:
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8: 8 + size]).get("__metadata__", {})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_details_name_every_unused_file_and_the_heic_photo_is_trained_on(make_app_client, tiny_models,
                                                                       tmp_path) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    good = {f"good{i}.jpg": samples.jpeg((160, 144), seed=i) for i in range(3)}
    japanese = {"ソ.jpg": samples.jpeg((160, 144), seed=7), "ソ.txt": "TOK on a sofa",
                "表.jpg": samples.jpeg((160, 144), seed=8), "犬.jpg": samples.jpeg((160, 144), seed=9),
                "犬.txt": "TOK with a dog"}
    # Names in Shift-JIS without the UTF-8 flag, as Windows' "Compressed folder" writes them.
    dataset = samples.legacy_names_zip(tmp_path / "set.zip", {**japanese, 
        **good, "IMG_0001.HEIC": samples.heic((160, 128), seed=5), "cut.jpg": samples.jpeg((160, 144))[:700],
        "thumb.jpg": samples.jpeg((20, 20)), "__MACOSX/._good0.jpg": b"x", ".DS_Store": b"x",
        "good2.txt": "TOK " + " ".join(f"stitch{i} on the quilted silk lining" for i in range(60)),
        "good0.txt": "TOK’s portrait in a café garden".encode("cp1252"), "good1.caption": "TOK on a bike",
    }, "cp932").read_bytes()
    body = submit_body(upload(api, dataset), steps=2, resolution=128)
    del body["advance_parameters"]["rank"]
    body["advance_parameters"]["lora_rank"] = 4
    job_id = submit(api, body)

    refused = submit(api, submit_body(upload(api, _zip({"one.jpg": samples.jpeg((160, 144)),
                                                        "scan.psd": b"8BPS"})), steps=2))
    failed = wait_for(lambda: details(api, refused), lambda d: d["status"] in TERMINAL, timeout=300)
    assert failed["status"] == "FAILED" and "scan.psd" in failed["error_message"], failed["error_message"]
    assert failed["dataset"]["error"] == failed["error_message"]
    assert any(e["message"] and e["message"].startswith("dataset: 1 image used, 0 dropped, 1 file not used, 1 warning;")
               for e in failed["events"]), failed["events"]

    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=300)
    assert job["status"] == "AVAILABLE", job["error_message"]
    summary = job["dataset"]
    assert summary["images_used"] == 7
    assert {d["file"] for d in summary["dropped"]} == {"cut.jpg", "thumb.jpg"}
    assert all(d["reason"] for d in summary["dropped"])
    assert summary["not_used"] == [] and summary["os_junk_skipped"] == 2
    assert summary["caption_sources"] == {"caption": 1, "instance_prompt": 2, "txt": 4}
    assert any("read them as cp932" in w for w in summary["warnings"]), summary["warnings"]
    assert "good0.txt: not UTF-8; read as cp1252 (save captions as UTF-8 to be sure)" in summary["warnings"]
    assert any(w.startswith("good2.jpg: its caption is ") and "tokens; FLUX reads 512" in w
               for w in summary["warnings"]), summary["warnings"]
    assert sum(summary["buckets"].values()) == 7
    assert any(e["status"] == "DATA_PROCESSING" and e["message"] and "7 images used, 2 dropped" in e["message"]
               for e in job["events"]), job["events"]
    report = json.loads(fetch(api, summary["report_url"]))
    assert sorted(k["source"] for k in report["kept"]) == sorted(["IMG_0001.HEIC", *good, "ソ.jpg", "表.jpg", "犬.jpg"])
    captions = {k["source"]: k["caption"] for k in report["kept"]}
    assert (captions["ソ.jpg"], captions["犬.jpg"]) == ("TOK on a sofa", "TOK with a dog")
    assert captions["good0.jpg"] == "TOK’s portrait in a café garden" and captions["good1.jpg"] == "TOK on a bike"

    assert job["advance_parameters"]["rank"] == 4 and "lora_rank" not in job["advance_parameters"]
    link = api.client.request("GET", "/finetune/request/file/download",
                              data={"cloud_storage_url": job["cloud_storage_url"]}, headers=api.headers())
    assert _lora_metadata(fetch(api, link.text))["loraforge.rank"] == "4"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_a_zip_url_that_sends_a_sharing_page_fails_naming_the_url_and_what_came(
    make_app_client, tiny_models, tmp_path
) -> None:
    root = tmp_path / "www"
    root.mkdir()  # HEAD says application/zip (the name), GET sends a Dropbox page
    (root / "photos.zip").write_text("<!DOCTYPE html><html><head><title>Dropbox - photos.zip</title></head></html>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = make_app_client(**pipeline_settings(tiny_models))
        url = f"http://ann:hunter2@127.0.0.1:{server.server_address[1]}/photos.zip?token=s3cret"
        job_id = submit(api, submit_body(url, steps=2))
        job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    message = job["error_message"]
    assert job["status"] == "FAILED"
    assert f"http://127.0.0.1:{server.server_address[1]}/photos.zip?… did not send a ZIP archive" in message
    assert "a web page (HTML)" in message and "direct download link" in message and "dl=1" in message
    assert "hunter2" not in message and "s3cret" not in message and "dataset.zip" not in message

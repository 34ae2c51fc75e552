"""With no real weights configured, jobs train the tiny demo model at a capped resolution.

The job path goes through HTTP (submit, details, file/download); the explicit-weights path checks
the spec training would use, since a 1024 px run is exactly the slowness the cap avoids.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from loraforge.config import Settings
from loraforge.training.loading import resolve_model_ref
from loraforge.training.presets import DEMO_RESOLUTION, fit_to_model, resolve_spec
from tests.support.flow import TERMINAL, image_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, fetch, submit, upload


def _metadata(safetensors_bytes: bytes) -> dict[str, str]:
    size = struct.unpack("<Q", safetensors_bytes[:8])[0]
    return json.loads(safetensors_bytes[8 : 8 + size]).get("__metadata__", {})


# Each database and each store once (SQLite + local disk, PostgreSQL + S3): the cap does not depend
# on them, the download link does.
@pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local"), ("postgresql", "s3")], indirect=True)
def test_a_job_on_the_demo_model_trains_at_the_capped_resolution_and_says_why(make_app_client,
                                                                             tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, model_flux=None, model_qwen=None))
    body = submit_body(upload(api, image_zip(size=160)), steps=2)
    del body["advance_parameters"]["resolution"]  # the FLUX preset's 1024 px
    job_id = submit(api, body)
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=300)
    assert job["status"] == "AVAILABLE", job["error_message"]
    notes = [e["message"] for e in job["events"] if e["message"]]
    assert any(f"{DEMO_RESOLUTION} px instead of 1024 px" in note for note in notes), job["events"]

    link = api.client.request("GET", "/finetune/request/file/download",
                              data={"cloud_storage_url": job["cloud_storage_url"]}, headers=api.headers())
    assert link.status_code == 200, link.text
    metadata = _metadata(fetch(api, link.text))
    assert metadata["loraforge.resolution"] == str(DEMO_RESOLUTION)
    assert "LORAFORGE_MODEL_FLUX" in metadata["loraforge.resolution_note"]


def test_explicit_weights_keep_the_presets_resolution(tmp_path: Path, tiny_models: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_qwen=str(tiny_models / "qwen-image"))
    for ref in (resolve_model_ref("QWEN", settings), resolve_model_ref("FLUX", settings, str(tiny_models / "flux-dev"))):
        spec = fit_to_model(resolve_spec("QWEN" if "qwen" in ref else "FLUX"), ref, settings)
        assert spec.resolution == 1024 and spec.resolution_note is None


def test_the_demo_model_is_capped_but_a_small_asked_resolution_is_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_qwen=None, model_flux=None)
    ref = resolve_model_ref("QWEN", settings)  # writes the demo models into data_dir
    assert fit_to_model(resolve_spec("QWEN"), ref, settings).resolution == DEMO_RESOLUTION
    assert fit_to_model(resolve_spec("QWEN", resolution=64), ref, settings).resolution == 64

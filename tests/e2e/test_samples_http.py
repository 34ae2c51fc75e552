"""Sample sets, intermediate LoRAs and the loss history of a job, through HTTP.

Embedded worker, tiny FLUX, on SQLite + local disk and on PostgreSQL + SeaweedFS S3.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from loraforge.worker.training_outputs import MAX_LOSS_POINTS, LossRecorder
from tests.support.cli import run_cli
from tests.support.flow import TERMINAL, image_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, fetch, submit, upload

TWO_BACKENDS = pytest.mark.parametrize(
    ("database_url", "storage_kind"), [("sqlite", "local"), ("postgresql", "s3")], indirect=True,
)
ONE_BACKEND = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)
PROMPTS = ["TOK", "TOK on a beach"]


def _header(safetensors_bytes: bytes) -> dict:
    size = struct.unpack("<Q", safetensors_bytes[:8])[0]
    return json.loads(safetensors_bytes[8 : 8 + size])


@pytest.fixture(scope="module")
def cli_samples(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[Callable[[], Path]]:
    """The samples folder of one `loraforge train` run on the job's ZIP and parameters; it does not
    depend on the database or the store, so one run serves the test on both backends. It runs in a
    thread from the first test's start, beside that test's job (two cores); call for its folder."""
    tmp_path = tmp_path_factory.mktemp("cli-samples")
    (tmp_path / "photos.zip").write_bytes(image_zip())
    with ThreadPoolExecutor(1) as pool:
        cli = pool.submit(run_cli, "train", str(tmp_path / "photos.zip"), "--base-model", "FLUX", "--model",
                          str(tiny_models / "flux-dev"), "--trigger-word", "TOK", "--instance-prompt", "a photo of TOK",
                          "--steps", "4", "--learning-rate", "0.0004", "--resolution", "64", "--rank", "4",
                          "--sample-every", "2", *[arg for p in PROMPTS for arg in ("--sample-prompt", p)],
                          "--out", str(tmp_path / "cli"))

        def folder() -> Path:
            done = cli.result(timeout=300)
            assert done.returncode == 0, done.stderr
            return tmp_path / "cli" / "samples"

        yield folder


@TWO_BACKENDS
def test_a_job_lists_its_sample_sets_intermediate_loras_and_loss_history(make_app_client, tiny_models,
                                                                        cli_samples) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=4, sample_every=2, sample_prompts=PROMPTS))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=300)
    assert job["status"] == "AVAILABLE", job["error_message"]

    assert [(s["step"], s["prompt"]) for s in job["samples"]] == [(2, PROMPTS[0]), (2, PROMPTS[1]),
                                                                   (4, PROMPTS[0]), (4, PROMPTS[1])]
    served = {}
    for sample in job["samples"]:
        with Image.open(io.BytesIO(fetch(api, sample["url"]))) as img:
            assert img.format == "PNG" and img.size == (64, 64)
            served[sample["step"], sample["index"]] = np.asarray(img.convert("RGB"), dtype=np.int16)
    # `loraforge train` on the same ZIP and parameters writes the same sets.
    for (step, index), pixels in served.items():
        with Image.open(cli_samples() / f"step-{step}" / f"{index}.png") as img:
            assert np.abs(np.asarray(img.convert("RGB"), dtype=np.int16) - pixels).max() <= 2, (step, index)
    assert 0 <= job["model_information"]["sample_share"] <= 1 and job["model_information"]["sample_seconds"] > 0

    [checkpoint] = job["checkpoints"]
    assert checkpoint["step"] == 2
    middle = fetch(api, checkpoint["url"])
    final = fetch(api, api.client.request("GET", "/finetune/request/file/download", headers=api.headers(),
                                          data={"cloud_storage_url": job["cloud_storage_url"]}).text)
    assert middle != final and _header(middle).keys() == _header(final).keys()
    assert _header(middle)["__metadata__"]["loraforge.step"] == "2"
    link = api.client.request("GET", "/finetune/request/file/download", headers=api.headers(),
                              data={"cloud_storage_url": checkpoint["cloud_storage_url"]})
    assert link.status_code == 200 and fetch(api, link.text) == middle

    formats = {f["format"]: f for f in job["files"]}
    assert set(formats) == {"diffusers", "comfyui"}
    assert fetch(api, formats["diffusers"]["url"]) == final
    assert all(k.startswith("lora_unet_") for k in _header(fetch(api, formats["comfyui"]["url"])) if k != "__metadata__")

    r = api.client.get("/finetune/request/metrics", params={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    history = r.json()["loss_history"]
    assert [p["step"] for p in history] == [1, 2, 3, 4]
    assert all(p["lr"] == pytest.approx(4e-4) and p["step_seconds"] > 0 and p["loss"] > 0 for p in history)
    stranger = api.client.get("/finetune/request/metrics", params={"request_id": job_id},
                              headers=api.headers(api.new_key()))
    assert stranger.status_code == 404 and "request_id" in stranger.json()["error"]


@ONE_BACKEND
def test_a_long_loss_history_comes_back_as_at_most_500_span_means(make_app_client) -> None:
    api = make_app_client()
    job_id = submit(api, submit_body(upload(api, image_zip(count=1))))
    recorder = LossRecorder(api.app.state.services.sessions, job_id, interval_s=60)
    for step in range(1, 1201):
        recorder(SimpleNamespace(step=step, total_steps=1200, loss=float(step % 2), lr=1e-4, step_seconds=0.5))
    r = api.client.get("/finetune/request/metrics", params={"request_id": job_id}, headers=api.headers())
    history = r.json()["loss_history"]
    assert len(history) == 400 <= MAX_LOSS_POINTS  # spans of ceil(1200 / 500) = 3 steps
    assert history[0] == {"step": 3, "loss": pytest.approx(2 / 3), "lr": pytest.approx(1e-4),
                          "step_seconds": pytest.approx(0.5)}
    assert history[-1]["step"] == 1200


@ONE_BACKEND
@pytest.mark.parametrize(("params", "field"), [
    ({"sample_every": -1}, "advance_parameters.sample_every"),
    ({"sample_prompts": "TOK"}, "advance_parameters.sample_prompts"),
    ({"sample_prompts": [f"p{i}" for i in range(9)]}, "advance_parameters.sample_prompts"),
    ({"keep_intermediate": "sometimes"}, "advance_parameters.keep_intermediate"),
])
def test_bad_sample_parameters_are_refused_naming_the_field(app_client, params, field) -> None:
    r = app_client.client.post("/finetune/request/submit", headers=app_client.headers(),
                               json=submit_body("http://127.0.0.1:9/x.zip", **params))
    assert r.status_code == 400 and r.json()["error"].startswith(field), r.text

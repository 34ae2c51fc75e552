"""Before a job loads anything, its predicted peak per stage is compared with the device's budget.

Through HTTP with the embedded worker and the tiny models, on the CPU where LORAFORGE_GPU_MEMORY_GB
is the budget: a budget smaller than the tiny pipeline's own weights ends the job FAILED at once,
naming the stage, the bytes needed and available and what to change, without a retry; a budget
that holds the weights lets the job go on, with the memory plan as an event in details (that job's
dataset holds no images, so it ends right after, having trained nothing).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.support.flow import TERMINAL, image_zip, not_images_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit, upload

SQLITE_LOCAL = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)
# The tiny FLUX.1-dev pipeline holds 0.84 MB in fp32 (see training/tiny.py): 1 kB holds none of it.
TINY_BUDGET_GB = 0.000001


def _messages(job: dict) -> list[str]:
    return [e["message"] for e in job["events"] if e.get("message")]


@SQLITE_LOCAL
def test_a_job_that_cannot_fit_its_budget_fails_at_once_saying_what_to_change(make_app_client,
                                                                              tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, gpu_memory_gb=TINY_BUDGET_GB))
    job_id = submit(api, submit_body(upload(api, image_zip())))
    started = time.monotonic()
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, 120)
    assert job["status"] == "FAILED", job
    message = job["error_message"]
    assert message.startswith("not enough memory on cpu for loading the model and caching latents"), message
    needed = float(re.search(r"needs at least ([\d.e-]+) GB", message).group(1))
    assert 0.0005 < needed < 0.002, message  # counted from the tiny model's config, not the real FLUX.1-dev
    assert "1e-06 GB is available (LORAFORGE_GPU_MEMORY_GB=1e-06)" in message
    assert "raise LORAFORGE_GPU_MEMORY_GB" in message
    assert not any("attempt" in m for m in _messages(job)), job["events"]  # not retried
    assert job.get("progress") in (None, {}) or not job["progress"].get("step"), "it trained"
    assert time.monotonic() - started < 60


@SQLITE_LOCAL
def test_a_job_within_its_budget_goes_on_with_its_memory_plan_in_details(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, gpu_memory_gb=1.0))
    job_id = submit(api, submit_body(upload(api, not_images_zip())))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, 120)
    assert job["status"] == "FAILED" and "image" in job["error_message"].lower(), job  # preparation ran
    plan = [m for m in _messages(job) if m.startswith("memory plan on cpu: ")]
    assert len(plan) == 1, job["events"]
    assert "of a 1.0 GB budget (LORAFORGE_GPU_MEMORY_GB=1)" in plan[0]
    assert "per stage: caching latents and captions" in plan[0] and "training" in plan[0], plan[0]
    assert "may not" not in plan[0]  # the tiny model fits 1 GB with room to spare

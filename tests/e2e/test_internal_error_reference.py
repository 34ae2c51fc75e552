"""An unexpected error in the job's process reaches `error_message` only as a reference (issue 20,
item 8): no traceback, exception text or server path, which other keys can read on a public model.

The base model folder the operator configured is broken (its transformer's config holds a string where a count belongs), so
every attempt of the child fails with an internal error while loading; after the last attempt the
job is FAILED with "internal error, reference R" and the service log holds the details under R.
"""

from __future__ import annotations

import logging
import re
import shutil

import pytest

from tests.support import samples
from tests.support.flow import TERMINAL, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit, upload


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_an_internal_error_is_a_reference_and_its_details_are_in_the_log(make_app_client, tiny_models, tmp_path,
                                                                         caplog) -> None:
    broken = tmp_path / "flux-broken"
    shutil.copytree(tiny_models / "flux-dev", broken)
    config = broken / "transformer" / "config.json"  # a TypeError inside diffusers: no error a user can act on
    config.write_text(config.read_text().replace('"num_layers": 1', '"num_layers": "one"'))
    api = make_app_client(**pipeline_settings(tiny_models, model_flux=str(broken), job_max_attempts=2))
    dataset = samples.make_zip(tmp_path / "set.zip", {f"p{i}.jpg": samples.jpeg((160, 144), seed=i) for i in range(2)})
    caplog.set_level(logging.ERROR, logger="loraforge.worker")
    job_id = submit(api, submit_body(upload(api, dataset.read_bytes()), steps=2))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=300)
    assert job["status"] == "FAILED"
    message = job["error_message"]
    found = re.search(r"internal error, reference ([0-9a-f]{12})", message)
    assert found, message
    assert str(tmp_path) not in message and "Traceback" not in message and "\n" not in message, message
    assert any(found.group(1) in record.getMessage() for record in caplog.records), caplog.text[-2000:]

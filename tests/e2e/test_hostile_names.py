"""Names of any length and names that forge log lines, through a real worker and child (issue 20,
findings 6, 7 and 8's error_message).

A job whose ZIP holds too few usable images ends FAILED at dataset preparation, and its
`error_message` and details name the dropped files: each name at most 200 characters, control
characters and ANSI escapes written as escapes, the whole message one bounded line. Entry names
over the archive caps (1024 characters in all, 255 bytes a folder or file name) are not used, with
that reason. Before: 65 KB names gave a 651 KB error_message and an 11 MB details answer. Measured
here: this job's details answer is 10,034 bytes and its error_message 1671 characters; the job
fails in under a minute on 2 shared cores (most of it the app and worker starting).
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.support import samples
from tests.support.flow import TERMINAL, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit, upload

FORGED = "a\n2026-01-01 00:00:00,000 ERROR loraforge.api: forged line.jpg"
ANSI = "\x1b[31mred.jpg"
UNDER_TOTAL = ("e" * 250 + "/") * 4 + "g" * 16 + ".jpg"  # 1024 characters: used
OVER_TOTAL = ("d" * 200 + "/") * 6 + "p.jpg"  # 1211 characters: not used
UNDER_PART = "h" * 251 + ".jpg"  # 255 bytes: used
OVER_PART = "i" * 252 + ".jpg"  # 256 bytes: not used
HUGE = "z" * 65_000 + ".jpg"  # the 65 KB name


def _zip() -> bytes:
    broken = samples.jpeg((160, 144))[:600]  # truncated: dropped, so its name is in the error
    entries = {"good.jpg": samples.jpeg((160, 144)), FORGED: broken, ANSI: broken, UNDER_TOTAL: broken,
               UNDER_PART: broken, OVER_TOTAL: broken, OVER_PART: broken, HUGE: broken}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_hostile_names_are_bounded_and_escaped_in_error_message_and_details(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    job_id = submit(api, submit_body(upload(api, _zip()), steps=2))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=300)
    assert job["status"] == "FAILED"
    message = job["error_message"]
    assert message.startswith("the dataset has 1 usable image but needs at least 2"), message
    assert len(message) < 2000 and "\n" not in message and "\x1b" not in message, message
    assert "a\\n2026-01-01 00:00:00,000 ERROR loraforge.api: forged line.jpg" in message
    assert "\\x1b[31mred.jpg" in message
    assert "e" * 149 + "…" in message  # the 1024-character name: used, shown cut to 200
    assert UNDER_PART not in message and "h" * 149 + "…" in message
    summary = job["dataset"]
    dropped = {d["file"] for d in summary["dropped"]}
    assert len(dropped) == 4 and all(len(name) <= 200 for name in dropped), dropped
    reasons = sorted(d["reason"] for d in summary["not_used"])
    assert reasons == ["a folder or file name in its path is 256 bytes long, over the cap of 255",
                       "its name is 1211 characters long, over the cap of 1024",
                       "its name is 65004 characters long, over the cap of 1024"], reasons
    assert all(len(d["file"]) <= 200 for d in summary["not_used"])
    answer = api.client.get("/finetune/request/details", params={"request_id": job_id}, headers=api.headers())
    assert len(answer.content) < 20_000, len(answer.content)

"""schemathesis against a live `loraforge serve`: no operation answers a 5xx, whatever it is sent.

The server is a real subprocess (PostgreSQL, local disk, no worker) holding a real upload, a job
and a webhook, whose ids the run is given so that details, metrics, access-update, cancel and the
webhook operations are reached with existing resources, not only 404s. Examples are bounded to
keep the run near a minute; the whole command is in the README (Testing).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.abuse_server import start_server

MAX_EXAMPLES = "15"


def _dataset() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "a caption")
    return buffer.getvalue()


def test_no_operation_answers_a_server_error(tmp_path: Path) -> None:
    binary = str(Path(sys.executable).with_name("schemathesis"))
    binary = binary if Path(binary).exists() else shutil.which("schemathesis") or binary
    if not Path(binary).exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    served = start_server(tmp_path)
    try:
        with served.client() as client:
            slot = client.request("GET", "/finetune/request/upload/pre-signed-url", json={"name": "set"}).json()
            assert client.put(slot["presigned_url"], content=_dataset()).status_code in (200, 204)
            job = client.post("/finetune/request/submit", json={
                "name": "fuzzed", "data_source_path": slot["s3_url"], "instance_prompt": "a photo of TOK",
                "trigger_word": "TOK", "base_model": "FLUX", "advance_parameters": {"steps": 2}}).json()
            hook = client.post("/webhook/add", json={"webhook_url": "http://127.0.0.1:9/hook"}).json()
        (tmp_path / "schemathesis.toml").write_text(
            "[parameters]\n"
            f'"query.request_id" = "{job["request_id"]}"\n'
            f'"query.webhook_id" = "{hook["webhook_id"]}"\n'
            f'"body.request_id" = "{job["request_id"]}"\n'
        )
        run = subprocess.run(
            [binary, "run", f"{served.url}/openapi.json", "--checks", "not_a_server_error",
             "-H", f"x-api-key: {served.key}", "--max-examples", MAX_EXAMPLES, "--seed", "1",
             "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        )
        assert run.returncode == 0, run.stdout[-6000:]
        summary = run.stdout.split("SUMMARY")[-1]
        # "N failed" counts failures; warnings such as "Authentication failed: ..." (the pre-signed
        # upload PUT answers 403 to fuzzed signatures) are not failures.
        assert " passed" in summary and re.search(r"\b\d+ failed\b", summary) is None, summary
        assert "Traceback" not in served.log_text(), served.log_text()[-4000:]
    finally:
        served.stop()

"""URL secrets and address forms against a real `loraforge serve` (issue 20, item 10).

The server runs with LORAFORGE_ALLOW_PRIVATE_URLS=true (tests/abuse/server.py), the mode in which
the guard once let the IPv4-compatible form `[::a9fe:a9fe]` of 169.254.169.254 through. A password
holding a quote once kept its end in error messages and logs: URL redaction stopped at the quote.
Each case is one submit: under a second here, after the server's start (about 10 s).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.abuse_server import Served, serving

BASE = "/finetune/request"
SUBMIT = {"name": "forms", "instance_prompt": "a photo of TOK", "trigger_word": "TOK", "base_model": "QWEN"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("forms"))


@pytest.mark.parametrize("host", ["[::a9fe:a9fe]", "[::ffff:a9fe:a9fe]", "169.254.169.254",
                                  "[2001:0:4136:e378:8000:63bf:5601:5601]"])
def test_every_form_of_the_metadata_address_is_refused_with_private_urls_allowed(served: Served,
                                                                                 host: str) -> None:
    with served.client() as http:
        answer = http.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": f"http://{host}/latest/d.zip"})
    assert answer.status_code == 400, answer.text
    assert "cloud metadata address" in answer.json()["error"], answer.text


@pytest.mark.parametrize("password", ['s3cr"etPW', "s3cr'etPW", "s3cr<etPW", "s3cr`etPW"])
def test_a_password_with_a_quote_is_redacted_whole_in_the_answer_and_the_log(served: Served, password: str) -> None:
    url = f"http://alice:{password}@127.0.0.1:9/d.zip?X-Amz-Signature=ab\"cdSIG"
    with served.client() as http:
        answer = http.post(f"{BASE}/submit", json={**SUBMIT, "data_source_path": url})
    assert 400 <= answer.status_code < 500, answer.text
    for text in (answer.text, served.log_text()):
        assert "etPW" not in text and "s3cr" not in text and "cdSIG" not in text, text[-2000:]

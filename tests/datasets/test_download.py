"""Safe download against a real loopback HTTP server: probe, caps, redirects, guard, atomicity."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from loraforge.config import Settings
from loraforge.datasets.download import download, probe
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from tests.fixtures.backends import make_settings

PAYLOAD = b"PK\x03\x04" + b"dataset" * 2000
CAP = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    """A small file host with the misbehaviours a downloader must survive."""

    gets: ClassVar[dict[str, int]] = {}  # GETs per path, for hosts that change their answer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes = b"", length: int | None = None, **headers: str) -> None:
        self.send_response(status)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command == "GET" and body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first, on purpose
                pass

    def do_HEAD(self) -> None:
        if self.path in ("/get-only.zip", "/nowhere.zip"):  # a host without HEAD, as many web apps' routes are
            self._send(405, b"", 0)
        else:
            self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/data.zip", "/get-only.zip"):
            self._send(200, PAYLOAD, len(PAYLOAD), Content_Type="application/zip")
        elif path == "/missing.zip":
            self._send(404, b"nope", 4)
        elif path == "/no-length.zip":
            self.close_connection = True
            self._send(200, PAYLOAD if self.command == "GET" else b"", None)
        elif path == "/huge.zip":
            self._send(200, b"", 250 * 1024 * 1024)
        elif path == "/liar.zip":  # HEAD says small, GET streams on past the cap with no length
            self.close_connection = True
            if self.command == "HEAD":
                self._send(200, b"", 1000)
            else:
                self._send(200, b"PK\x03\x04" + b"x" * (CAP * 3), None)
        elif path == "/short.zip":  # announces more than it sends, then hangs up
            self.close_connection = True
            self._send(200, PAYLOAD[:100], len(PAYLOAD))
        elif path == "/slow.zip":
            if self.command == "GET":
                time.sleep(2)
            self._send(200, PAYLOAD, len(PAYLOAD))
        elif path == "/bad-digest.zip":  # whole, but not the file whose SHA-256 the host publishes
            self._send(200, PAYLOAD, len(PAYLOAD), Repr_Digest=f"sha-256=:{base64.b64encode(bytes(32)).decode()}:")
        elif path == "/no-resume.zip":  # the first GET breaks off; the next ignores Range and sends it all
            Handler.gets[path] = Handler.gets.get(path, 0) + 1
            self.close_connection = True
            self._send(200, PAYLOAD if Handler.gets[path] > 1 else PAYLOAD[:5000], len(PAYLOAD))
        elif path == "/host":
            host = b"PK\x03\x04" + self.headers.get("Host", "").encode()  # a ZIP's first bytes, then the Host
            self._send(200, host, len(host))
        elif path == "/page":  # a sharing page: HTML on HEAD and GET, with a length
            page = b"<!doctype html><title>Share</title>"
            self._send(200, page, len(page), Content_Type="text/html; charset=utf-8")
        elif path == "/fake.zip":  # HEAD looks right, GET sends a Google Drive page
            page = b"<html><head><title>data.zip - Google Drive</title></head></html>"
            self._send(200, page, len(page), Content_Type="application/zip")
        elif path == "/to-data":
            self._send(302, b"", 0, Location="/data.zip")
        elif path == "/to-metadata":
            self._send(302, b"", 0, Location="http://169.254.169.254/latest/meta-data/iam/")
        elif path == "/loop":
            self._send(302, b"", 0, Location="/loop")
        else:
            self._send(404, b"", 0)


@pytest.fixture(scope="module")
def file_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, "local", allow_private_urls=True, max_upload_bytes=CAP,
                         download_timeout_s=1.0)


def test_probe_answers_the_content_length(file_host: str, settings: Settings) -> None:
    assert probe(f"{file_host}/data.zip", settings) == len(PAYLOAD)


def test_download_writes_the_whole_file(file_host: str, settings: Settings, tmp_path: Path) -> None:
    dest = download(f"{file_host}/data.zip", tmp_path / "in" / "data.zip", settings)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["data.zip"]


def test_a_host_name_is_fetched_from_its_checked_address_with_its_own_host_header(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    by_name = file_host.replace("127.0.0.1", "localhost")
    dest = download(f"{by_name}/host", tmp_path / "host.txt", settings)
    assert dest.read_bytes()[4:].decode() == by_name.removeprefix("http://")


def test_redirects_are_followed(file_host: str, settings: Settings, tmp_path: Path) -> None:
    assert download(f"{file_host}/to-data", tmp_path / "d.zip", settings).read_bytes() == PAYLOAD


def test_a_missing_file_names_the_status_and_url(file_host: str, settings: Settings) -> None:
    # HEAD's 404 is asked again with a ranged GET, whose answer is the one reported
    with pytest.raises(DownloadError, match=r"the server answered 404 to GET for http://127\.0\.0\.1:\d+/missing\.zip"):
        probe(f"{file_host}/missing.zip", settings)


def test_a_host_without_head_is_probed_with_a_ranged_get(file_host: str, settings: Settings) -> None:
    assert probe(f"{file_host}/get-only.zip", settings) == len(PAYLOAD)
    with pytest.raises(DownloadError, match=r"answered 404 to GET for .*/nowhere\.zip"):
        probe(f"{file_host}/nowhere.zip", settings)


def test_a_size_nobody_announces_is_capped_while_reading(file_host: str, settings: Settings, tmp_path: Path) -> None:
    assert probe(f"{file_host}/no-length.zip", settings) is None
    assert download(f"{file_host}/no-length.zip", tmp_path / "n.zip", settings).read_bytes() == PAYLOAD


def test_an_announced_size_over_the_cap_is_refused_before_downloading(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(PayloadTooLargeError, match="huge.zip is 250 MB, over the 64 KB limit"):
        download(f"{file_host}/huge.zip", tmp_path / "huge.zip", settings)
    assert not list(tmp_path.glob("*.zip"))


def test_the_cap_holds_on_bytes_read_when_head_lied(file_host: str, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLargeError, match="over the 64 KB limit"):
        download(f"{file_host}/liar.zip", tmp_path / "liar.zip", settings)
    assert not [p for p in tmp_path.iterdir() if "liar" in p.name]


def test_a_cut_short_transfer_leaves_no_file(file_host: str, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="short.zip"):
        download(f"{file_host}/short.zip", tmp_path / "short.zip", settings)
    assert not [p for p in tmp_path.iterdir() if "short" in p.name]


def test_a_server_slower_than_the_timeout_is_abandoned(file_host: str, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="did not answer within 1 s"):
        download(f"{file_host}/slow.zip", tmp_path / "slow.zip", settings)


def test_a_redirect_to_the_metadata_address_is_refused(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    # the loopback host itself is allowed (allow_private), so only the guard on the redirect hop
    # can stop this; metadata addresses stay refused even with allow_private
    with pytest.raises(UnsafeURLError, match="169.254.169.254 is a cloud metadata address"):
        download(f"{file_host}/to-metadata", tmp_path / "m.zip", settings)


def test_a_redirect_loop_ends_with_a_clear_error(file_host: str, settings: Settings) -> None:
    with pytest.raises(DownloadError, match="redirected more than 5 times"):
        probe(f"{file_host}/loop", settings)


def test_loopback_is_refused_without_allow_private(file_host: str, tmp_path: Path) -> None:
    strict = make_settings(tmp_path, "local", allow_private_urls=False)
    with pytest.raises(UnsafeURLError, match="127.0.0.1 is a loopback address"):
        download(f"{file_host}/data.zip", tmp_path / "x.zip", strict)


def test_an_unreachable_host_gets_an_actionable_error(settings: Settings, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="could not connect to 127.0.0.1"):
        probe(f"http://127.0.0.1:{port}/data.zip", settings)


def test_a_web_page_is_refused_at_head(file_host: str, settings: Settings) -> None:
    with pytest.raises(DownloadError) as caught:
        probe(f"{file_host}/page", settings)
    assert caught.value.message == "the URL returned a web page, not a ZIP; use a direct download link"


def test_a_body_that_is_not_a_zip_is_named_with_the_redacted_url(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    url = file_host.replace("http://", "http://me:pw@") + "/fake.zip?key=secret"
    with pytest.raises(DownloadError) as caught:
        download(url, tmp_path / "d.zip", settings)
    assert caught.value.message == (
        f"{file_host}/fake.zip?… did not send a ZIP archive but a web page (HTML); use a direct download "
        "link to the .zip file; for Google Drive, share with 'Anyone with the link' and use "
        "https://drive.google.com/uc?export=download&id=FILE_ID"
    )
    assert not (tmp_path / "d.zip").exists()


def test_a_file_whose_sha256_differs_from_the_one_announced_is_refused(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match=r"bad-digest\.zip sent a file whose SHA-256 is [0-9a-f]{64}, not the 0{64}"):
        download(f"{file_host}/bad-digest.zip", tmp_path / "b.zip", settings)
    assert not [p for p in tmp_path.iterdir() if "b.zip" in p.name]


def test_a_host_that_ignores_range_on_the_retry_gives_the_whole_file_again(
    file_host: str, settings: Settings, tmp_path: Path
) -> None:
    assert download(f"{file_host}/no-resume.zip", tmp_path / "r.zip", settings).read_bytes() == PAYLOAD

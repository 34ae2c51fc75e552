"""The web console in a real browser: Debian's Chromium driven by Playwright, against `loraforge serve`.

One server (a subprocess, embedded worker, tiny models, SQLite, local disk) serves the module.
The happy path signs in, drops a ZIP on the page (uploaded to its pre-signed URL), submits a tiny
job, watches it reach AVAILABLE, sees a sample image, generates and downloads the LoRA; wrong
inputs show the API's own error text beside the control they name; the public switch, cancel
and delete act on the job. Any uncaught JavaScript error
fails the test. Screenshots go to $LORAFORGE_SCREENSHOTS (default: the test's tmp folder);
docs/console.png in the README is one of them.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from safetensors.torch import load_file

from tests.support.flow import image_zip
from tests.support.processes import Process, free_port, wait_healthy

KEY = "lf-console-test-key-0123456789abcdef"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("console-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "LORAFORGE_DATA_DIR": str(root / "data"), "LORAFORGE_API_KEY": KEY, "LORAFORGE_PUBLIC_URL": url,
        "LORAFORGE_MODEL_FLUX": str(tiny_models / "flux-dev"), "LORAFORGE_MODEL_QWEN": str(tiny_models / "qwen-image"),
        "LORAFORGE_ALLOW_PRIVATE_URLS": "true", "LORAFORGE_PROGRESS_INTERVAL_S": "0",
    }
    process = Process(["serve", "--host", "127.0.0.1", "--port", str(port)], env, root / "serve").start()
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    # A 4xx answer is logged as "Failed to load resource": expected here, the page shows it.
    page.on("console", lambda msg: msg.type == "error" and not msg.text.startswith("Failed to load resource")
            and errors.append(f"console error: {msg.text}"))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("LORAFORGE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page, url: str, key: str = KEY) -> None:
    page.goto(url + "/")
    assert page.url.endswith("/console")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()


def drop_file(page, data: bytes, name: str) -> None:
    """Drag-and-drop `data` as a file onto the drop zone, as a user's drop does."""
    page.evaluate(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "application/zip" }));
            document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""",
        [base64.b64encode(data).decode(), name],
    )


def with_readme(data: bytes) -> bytes:
    """`data` (a ZIP) with a notes file added, which the dataset report lists as not used."""
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("notes.md", "shot on a phone, March")
    return buffer.getvalue()


def fill_job(page, steps: str = "4") -> None:
    page.get_by_label("Name", exact=True).fill("console-e2e")
    page.get_by_label("Trigger word", exact=True).fill("TOK")
    page.get_by_label("Base model", exact=True).select_option("FLUX")
    page.get_by_label("Instance prompt", exact=True).fill("a photo of TOK")
    page.get_by_label("Steps", exact=True).fill(steps)
    page.get_by_label("Resolution (px)", exact=True).fill("64")
    page.get_by_label("LoRA rank", exact=True).fill("4")
    page.get_by_label("Sample every (steps)", exact=True).fill("2")


def error_beside(page, control_id: str) -> str:
    """The error text shown inside the same labelled field as the control."""
    error = page.locator(f".field:has(#{control_id}) .field-error")
    error.wait_for(state="visible")
    return error.inner_text()


def unlabelled(page) -> list[str]:
    """Ids of visible form controls without a visible label."""
    return page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, progress")]
        .filter((c) => c.offsetParent !== null)
        .filter((c) => ![...(c.labels || [])].some((l) => l.offsetParent !== null && l.textContent.trim()))
        .map((c) => c.id || c.outerHTML.slice(0, 60))""")


def details(url: str, job_id: str) -> dict:
    r = httpx.get(f"{url}/finetune/request/details", params={"request_id": job_id}, headers={"x-api-key": KEY})
    assert r.status_code == 200, r.text
    return dict(r.json()["finetune"])


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def api_error(url: str, method: str, path: str, key: str = KEY, **kwargs: object) -> str:
    return httpx.request(method, url + path, headers={"x-api-key": key}, timeout=30, **kwargs).json()["error"]


def test_sign_in_upload_train_see_samples_generate_and_download(server: str, page, shots: Path) -> None:
    sign_in(page, server)
    page.get_by_role("heading", name="Jobs").wait_for()
    page.get_by_role("link", name="New job").first.click()
    page.get_by_role("heading", name="New job").wait_for()
    page.locator("#param-steps-hint", has_text="Default for FLUX: 1000").wait_for()
    drop_file(page, with_readme(image_zip(count=3)), "photos.zip")
    page.get_by_text("Uploaded photos.zip").wait_for()
    assert page.get_by_label("Upload progress", exact=True).get_attribute("value") == "100"
    assert unlabelled(page) == []
    fill_job(page)
    page.screenshot(path=str(shots / "console-new-job.png"), full_page=True)
    page.get_by_role("button", name="Submit job").click()

    page.wait_for_url("**/console#/job/*")
    page.locator(".heading .status", has_text="AVAILABLE").wait_for(timeout=240_000)
    sample = page.locator("img.sample").first
    sample.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('img.sample')].every(i => i.complete && i.naturalWidth)")
    assert sample.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 64]
    assert page.locator("img.sample[data-step='4']").count() == 3  # the trigger word and the dataset's two captions
    assert page.locator("#loss polyline.loss-line").count() == 1
    summary = page.locator("#dataset-summary").inner_text()
    # The README is named as not used, and not counted among dropped photos.
    assert "Images used\n3" in summary and "Files dropped\n0" in summary and "Files not used\n1" in summary
    assert "notes.md" in summary
    timeline = page.locator("#timeline").inner_text()
    assert all(status in timeline for status in ("REQUESTED", "TRAINING_INITIATED", "AVAILABLE"))

    page.get_by_label("Prompt", exact=True).fill("a photo of TOK on a beach")
    page.get_by_label("Width (px)", exact=True).fill("64")
    page.get_by_label("Height (px)", exact=True).fill("64")
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_label("Seed", exact=True).fill("7")
    page.get_by_label("LoRA strength", exact=True).fill("0.8")
    page.get_by_role("button", name="Generate").click()
    generated = page.locator("#generated-image")
    generated.wait_for(timeout=180_000)  # the first /v1 request loads the base pipeline
    page.wait_for_function("() => document.getElementById('generated-image').naturalWidth > 0")
    assert generated.evaluate("img => img.naturalWidth") == 64
    assert unlabelled(page) == []
    page.screenshot(path=str(shots / "console-job.png"), full_page=True)

    page.get_by_label("Public model", exact=True).check()
    job_id = page.url.rsplit("/", 1)[-1]
    wait_until(lambda: details(server, job_id)["public_model"] is True)

    with page.expect_download() as download:
        page.locator("a[data-format='diffusers']").click()
    lora = load_file(download.value.path())
    assert lora and all(k.startswith("transformer.") for k in lora)
    assert page.locator("a[data-step='2']").count() == 1  # the intermediate LoRA of step 2

    page.get_by_role("link", name="Jobs").first.click()
    page.locator("table.jobs tbody tr").first.wait_for()
    assert "AVAILABLE" in page.locator("table.jobs").inner_text()
    page.screenshot(path=str(shots / "console-jobs.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(shots / "console-jobs-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_bad_key_shows_the_apis_error_beside_the_key_field(server: str, page) -> None:
    sign_in(page, server, key="not-a-key")
    shown = error_beside(page, "api-key")
    assert shown == api_error(server, "GET", "/finetune/request/list", key="not-a-key")
    assert page.evaluate("sessionStorage.length") == 0


def test_a_job_that_is_gone_says_so_once_and_stops_asking(server: str, page) -> None:
    sign_in(page, server)
    page.get_by_role("heading", name="Jobs").wait_for()
    asked: list[str] = []
    page.on("request", lambda r: "/finetune/request/details" in r.url and asked.append(r.url))
    page.goto(server + "/console#/job/no-such-job")
    missing = page.locator("#job-missing")
    missing.wait_for()
    assert missing.inner_text() == api_error(server, "GET", "/finetune/request/details?request_id=no-such-job")
    assert page.get_by_role("heading", name="Status timeline").count() == 0  # no empty cards
    page.wait_for_timeout(5000)  # more than two refresh periods
    assert len(asked) == 1, asked


def test_a_non_zip_file_and_an_out_of_range_parameter_show_the_apis_errors_beside_their_fields(
    server: str, page, tmp_path: Path
) -> None:
    sign_in(page, server)
    page.get_by_role("heading", name="Jobs").wait_for()
    page.goto(server + "/console#/new")
    png = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "red").save(png)
    page.get_by_label("Dataset ZIP", exact=True).set_input_files(str(png))  # refused when the upload is asked
    shown = error_beside(page, "dataset-file")
    assert shown == api_error(server, "GET", "/finetune/request/upload/pre-signed-url",
                              params={"name": "photo.png", "extension": "png"})
    # A PNG named .zip uploads, and submit refuses it.
    page.get_by_label("Dataset ZIP", exact=True).set_input_files(files=[
        {"name": "fake.zip", "mimeType": "application/zip", "buffer": png.read_bytes()}])
    page.get_by_text("Uploaded fake.zip").wait_for()
    fill_job(page)
    page.get_by_role("button", name="Submit job").click()
    shown = error_beside(page, "dataset-file")
    assert shown.startswith("data_source_path:") and "not a ZIP" in shown

    page.get_by_label("Dataset ZIP", exact=True).set_input_files(files=[{"name": "ok.zip", "mimeType": "application/zip",
                                                             "buffer": image_zip(count=3)}])
    page.get_by_text("Uploaded ok.zip").wait_for()
    page.get_by_label("Steps", exact=True).fill("0")
    page.get_by_role("button", name="Submit job").click()
    shown = error_beside(page, "param-steps")
    assert shown.startswith("advance_parameters.steps")
    assert not page.locator(".field:has(#dataset-file) .field-error").is_visible()

    page.get_by_label("Steps", exact=True).fill("10000")  # long enough to be cancelled while it runs
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/console#/job/*")
    page.get_by_role("button", name="Cancel job").click()
    job_id = page.url.rsplit("/", 1)[-1]
    try:
        page.locator(".heading .status", has_text="CANCELLED").wait_for(timeout=120_000)
    except Exception as exc:
        raise AssertionError(f"not cancelled: {details(server, job_id)}; "
                             f"{page.locator('#job-status').inner_text()}") from exc
    assert details(server, job_id)["status"] == "CANCELLED"
    page.get_by_role("button", name="Delete job").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    gone = httpx.get(f"{server}/finetune/request/details", params={"request_id": job_id}, headers={"x-api-key": KEY})
    assert gone.status_code == 404
    with Image.open(io.BytesIO(page.screenshot())) as img:
        assert img.size == (DESKTOP["width"], DESKTOP["height"])


def test_webhook_add_update_test_and_dispatch_log(server: str, page, receiver, shots: Path) -> None:
    sign_in(page, server)
    page.get_by_role("heading", name="Jobs").wait_for()
    page.get_by_role("link", name="Webhook").click()
    page.get_by_role("button", name="Add webhook").wait_for()
    page.get_by_label("Webhook URL", exact=True).fill("ftp://127.0.0.1/hook")
    page.get_by_role("button", name="Add webhook").click()
    shown = error_beside(page, "webhook-url")
    assert shown == api_error(server, "POST", "/webhook/add", json={"webhook_url": "ftp://127.0.0.1/hook"})

    page.get_by_label("Webhook URL", exact=True).fill(receiver.url)
    page.get_by_role("button", name="Add webhook").click()
    page.get_by_role("button", name="Update webhook").wait_for()
    page.get_by_label("CANCELLED", exact=True).uncheck()
    page.get_by_role("button", name="Update webhook").click()
    page.get_by_text("Saved.").wait_for()
    hooks = httpx.get(server + "/webhook/get", headers={"x-api-key": KEY}).json()["webhooks"]
    assert [h["event"]["types"] for h in hooks if h["active"]] == [
        ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE", "FAILED"]]

    page.get_by_role("button", name="Send test").click()
    page.locator("#webhook-outcome", has_text="Test").wait_for()
    page.locator("#dispatch-log tbody tr").first.wait_for()
    assert "200" in page.locator("#dispatch-log").inner_text() and len(receiver.accepted()) == 1
    page.screenshot(path=str(shots / "console-webhook.png"), full_page=True)
    page.set_viewport_size(PHONE)  # the signing secret is one long word: it must wrap, not widen the page
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

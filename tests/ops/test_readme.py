"""The live blocks of the README and the docs site, run against a real `loraforge serve`: they cannot drift.

Every fenced block tagged `sh live` or `python live` is run, the README's first and then the docs
pages' in the order of mkdocs.yml's nav, against one server
started as `make serve` would (SQLite, local disk, embedded worker, tiny demo models). Values the
docs show as placeholders (KEY, ID, S3_URL, PRESIGNED_URL, CLOUD_STORAGE_URL, SLUG,
WEBHOOK_ID) are taken from earlier answers; the only other rewrites are the server's port, the
webhook receiver (a loopback one instead of example.com), and sizes a CPU can afford
(`"steps": 1000` -> 2, 1024 px -> 64 px). A block fails the test when a command exits non-zero or
answers `{"error": ...}` where the docs do not say it may (409). The same server then answers
the operations checks: /docs without a CDN, the OpenAPI bodies, JSON logs with the job id, doctor.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fixtures.receiver import Receiver
from tests.support.flow import image_zip
from tests.support.serving import free_port, wait_healthy

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
BLOCK = re.compile(r"^```(sh|python) live\n(.*?)^```", re.DOTALL | re.MULTILINE)
PLACEHOLDERS = ("PRESIGNED_URL", "S3_URL", "CLOUD_STORAGE_URL", "WEBHOOK_ID", "SLUG", "ID")
AFFORDABLE = {'"steps": 1000': '"steps": 2', '"width": 1024, "height": 1024': '"width": 64, "height": 64',
              "width=1024, height=1024": "width=64, height=64"}
TERMINAL = ("AVAILABLE", "FAILED", "CANCELLED")


@dataclass
class Server:
    url: str
    key: str
    env: dict[str, str]
    data_dir: Path
    log: Path
    workdir: Path
    values: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "HF_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_HOME=str(root / "hf"),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
               LORAFORGE_DATA_DIR=str(root / "data"), LORAFORGE_PORT=str(port),
               LORAFORGE_ALLOW_PRIVATE_URLS="true", LORAFORGE_LOG_FORMAT="json")
    log = root / "serve.log"
    process = subprocess.Popen([sys.executable, "-m", "loraforge", "serve", "--no-access-log"], env=env,
                               cwd=root, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
    assert process.stdout is not None
    key = next((line.removeprefix("API key: ").strip() for line in process.stdout
                if line.startswith("API key: ")), "")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, 90, lambda: log.read_text()[-3000:])
    except AssertionError:
        process.kill()
        raise
    workdir = root / "work"
    workdir.mkdir()
    (workdir / "my-photos.zip").write_bytes(image_zip(count=3, size=64))
    try:
        yield Server(url, key, env, root / "data", log, workdir)
    finally:
        process.terminate()
        process.wait(timeout=30)


def nav_pages() -> list[Path]:
    """The docs pages in the order of mkdocs.yml's nav (the order a reader meets them)."""
    import yaml

    def walk(items: list) -> Iterator[str]:  # type: ignore[type-arg]
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from walk(value) if isinstance(value, list) else [value]

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    return [DOCS / page for page in walk(nav)]


def live_pages() -> list[Path]:
    """The README, then every docs page in nav order."""
    return [README, *nav_pages()]


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for page in live_pages() for m in BLOCK.finditer(page.read_text())]


def test_every_page_with_live_blocks_is_run() -> None:
    """A docs page outside the nav would have its live blocks skipped: every one is in it."""
    with_blocks = {p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text())}
    assert with_blocks and with_blocks <= set(nav_pages()), sorted(map(str, with_blocks - set(nav_pages())))


def test_the_readme_shows_only_what_the_docs_run() -> None:
    """The README's short flow is not run itself: each of its commands, the SDK line and the train line
    is written the same in the docs, where a live block runs it (train: the CLI guide); its links resolve."""
    readme = README.read_text()
    live = "\n".join(block for _, block in blocks())
    flow = next(m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
                if "curl" in m.group(1))
    commands = [command.strip() for command, _ in sh_commands(flow)]
    assert len(commands) >= 8 and all(command in live for command in commands), commands
    sdk = 'segmind.finetune.Finetune.base_url = "http://127.0.0.1:8000/finetune/request"'
    assert sdk in readme and sdk in live
    train = next(line for line in readme.splitlines() if line.startswith("loraforge train "))
    assert train in (DOCS / "guides" / "training-cli.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links and [link for link in links if not (REPO / link).is_file()] == []


def sh_commands(block: str) -> list[tuple[str, str]]:
    """(command, the comment lines around it) for each command of a shell block."""
    commands: list[tuple[str, str]] = []
    pending, comments, answered = "", "", False
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            answered = answered and bool(line.strip())  # a blank line ends what a command answers
            if answered:  # the comment lines right after a command tell what it answers
                commands[-1] = (commands[-1][0], commands[-1][1] + line + "\n")
            else:
                comments += line + "\n"
            continue
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote spans lines (the submit body)
            continue
        commands.append((pending, comments))
        pending, comments, answered = "", "", True
    assert not pending, f"unterminated command in a live block: {pending}"
    return commands


def rewrite(text: str, server: Server, receiver_url: str) -> str:
    text = text.replace("http://127.0.0.1:8000", server.url)
    text = text.replace("https://example.com/hooks/loraforge", receiver_url)
    for old, new in AFFORDABLE.items():
        text = text.replace(old, new)
    for name in PLACEHOLDERS:
        if name in server.values:
            text = re.sub(rf"\b{name}\b", server.values[name], text)
    return text


def harvest(server: Server, output: str) -> None:
    try:
        answer = json.loads(output)
    except ValueError:
        if output.startswith("http"):
            server.values["DOWNLOAD_LINK"] = output.strip()
        return
    if not isinstance(answer, dict):
        return
    fields = {**answer, **(answer.get("finetune") or {})}
    for field_name, name in (("presigned_url", "PRESIGNED_URL"), ("s3_url", "S3_URL"), ("request_id", "ID"),
                             ("webhook_id", "WEBHOOK_ID"), ("cloud_storage_url", "CLOUD_STORAGE_URL"),
                             ("slug", "SLUG")):
        if fields.get(field_name):
            server.values[name] = str(fields[field_name])


def run_sh(server: Server, command: str, after: str) -> None:
    assignment = re.fullmatch(r"([A-Z_]+)=(\S*)\s*(#.*)?", command.strip())
    if assignment:
        name, value = assignment.group(1), assignment.group(2)
        value = server.key if name == "KEY" else re.sub(r"\$(\w+)", lambda m: server.env[m.group(1)], value)
        server.env[name] = value
        return
    deadline = time.monotonic() + 300
    while True:
        done = subprocess.run(["bash", "-c", command], env=server.env, cwd=server.workdir, capture_output=True,
                              text=True, timeout=180, check=False)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if done.stdout.startswith('{"error"'):
            assert "(409" in after, f"a docs command answered an error:\n{command}\n{done.stdout}"
            return
        harvest(server, done.stdout)
        if "repeat until AVAILABLE" not in after:
            return
        status = json.loads(done.stdout)["finetune"]["status"]
        if status in TERMINAL:
            assert status == "AVAILABLE", done.stdout
            return
        assert time.monotonic() < deadline, f"the docs' job did not finish: {done.stdout}"
        time.sleep(0.5)


def run_python(server: Server, code: str) -> None:
    prelude = "".join(f"{name} = {server.values[name]!r}\n" for name in PLACEHOLDERS if name in server.values)
    prelude += f"KEY = {server.key!r}\n"
    for name in PLACEHOLDERS:  # the placeholders are Python names here, not text to replace
        code = re.sub(rf"\b{name}\b", f"__{name}__", code)
    code = rewrite(code, server, "")
    for name in PLACEHOLDERS:
        code = code.replace(f"__{name}__", name)
    done = subprocess.run([sys.executable, "-c", prelude + code], env=server.env, cwd=server.workdir,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"


def test_every_live_block_runs_against_a_real_server(server: Server, receiver: Receiver) -> None:
    found = blocks()
    assert len(found) >= 8, "the docs' live blocks (keys, API walkthrough, SDK, cancel, webhooks, ...)"
    for kind, block in found:
        if kind == "python":
            run_python(server, block)
            continue
        for command, after in sh_commands(block):
            run_sh(server, rewrite(command, server, receiver.url), after)
    job_id = server.values["ID"]
    # The delete block deleted the job: its details, its files and its old links are gone.
    answer = httpx.get(f"{server.url}/finetune/request/details", params={"request_id": job_id},
                       headers={"x-api-key": server.key}, timeout=10)
    assert answer.status_code == 404
    assert httpx.get(server.values["DOWNLOAD_LINK"], timeout=10).status_code == 404
    storage = server.data_dir / "storage"
    left = [p for prefix in ("models", "checkpoints", "samples", "datasets")
            for p in (storage / prefix / job_id).rglob("*") if p.is_file()]
    assert left == [], left
    assert (server.workdir / "dog.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert receiver.requests, "webhook/test reached the receiver the docs registered"
    records = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any(r.get("job_id") == job_id for r in records), "JSON logs carry the job id"


def test_docs_work_offline_and_every_operation_documents_its_body(server: Server) -> None:
    page = httpx.get(f"{server.url}/docs", timeout=10).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{server.url}{asset}", timeout=10).status_code == 200
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            if method in ("post", "put"):
                assert "requestBody" in operation, f"{method.upper()} {path} has no body schema"
            assert not (method == "get" and "requestBody" in operation), "a browser cannot send a GET body"
            if method == "get" and "x-request-body" in operation:
                body = next(iter(operation["x-request-body"]["content"].values()))["schema"]
                queries = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                assert set(body["properties"]) <= queries, f"GET {path}: body fields not also query parameters"
    assert "put" in paths["/files/{key}"], "the pre-signed upload PUT is listed"
    upload = httpx.get(f"{server.url}/finetune/request/upload/pre-signed-url", params={"name": "q"},
                       headers={"x-api-key": server.key}, timeout=10)
    assert upload.status_code == 200 and "-q.zip" in upload.json()["s3_url"]


def test_unknown_generation_fields_are_refused_with_a_suggestion(server: Server) -> None:
    answer = httpx.post(f"{server.url}/v1/any-slug", headers={"x-api-key": server.key}, timeout=10,
                        json={"prompt": "x", "steps": 4})
    assert answer.status_code == 400
    assert answer.json()["error"] == "steps: unknown field; did you mean num_inference_steps?"


def test_readyz_and_doctor_agree_that_the_deployment_is_ready(server: Server) -> None:
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    done = subprocess.run([sys.executable, "-m", "loraforge", "doctor"], env=server.env, cwd=server.workdir,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("✓", "✗"))]
    names = [line[2:].split(":")[0] for line in lines]
    assert names == ["GPU", "QWEN weights", "FLUX weights", "disk", "database", "storage", "broker", "public URL"]
    failed = [line for line in lines if line.startswith("✗") and not line.startswith("✗ GPU")]
    assert failed == [], done.stdout  # on this CPU-only machine only the GPU check may fail


def test_readyz_names_what_is_down(tmp_path: Path) -> None:
    """A broker nobody listens on: /readyz answers 503 naming it, while /healthz stays 200."""
    from tests.fixtures.databases import create_postgres_database, drop_postgres_database
    from tests.support.serving import serve_env

    database = create_postgres_database()
    port = free_port()
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    env = serve_env(tmp_path, LORAFORGE_DATABASE_URL=database, LORAFORGE_BROKER_URL=dead_broker,
               LORAFORGE_PORT=str(port))
    # The API runs from the app factory directly: readiness is the app's, whatever serve checks.
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "loraforge.api.app:app_from_environment",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        ready = httpx.get(f"{url}/readyz", timeout=20)
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"].startswith("not ready: broker:") and body["checks"]["database"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=20)
        drop_postgres_database(database)


def test_docs_render_in_a_browser_with_the_internet_cut_off(server: Server) -> None:
    """Swagger UI in Debian's Chromium, every request off loopback refused: the page still renders
    every operation, and `Try it out` on the pre-signed URL sends ?name= and gets a 200."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does)"
    outside: list[str] = []

    def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(extra_http_headers={"x-api-key": server.key})
            page.route("**/*", only_loopback)
            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() >= 20
            operation = page.locator(".opblock", has_text="/finetune/request/upload/pre-signed-url")
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.locator("input[placeholder='name']").fill("from-docs")
            operation.get_by_role("button", name="Execute").click()
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            status.wait_for(timeout=30_000)
            assert status.inner_text().strip() == "200", operation.locator(".live-responses-table").inner_text()
            request_url = operation.locator(".request-url").inner_text()
            assert "name=from-docs" in request_url, request_url
        finally:
            browser.close()
    assert outside == [], f"/docs reached off this machine: {outside}"

"""The CLI as users run it: `loraforge keys create` and `loraforge serve`, as subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serving import free_port, loraforge_env, wait_healthy

pytestmark = pytest.mark.backends("database")  # database behaviour is under test


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return loraforge_env(
        LORAFORGE_DATA_DIR=str(tmp_path / "data"),
        LORAFORGE_DATABASE_URL=database_url,
        LORAFORGE_SECRET_KEY="cli-test-secret-0123456789",
        LORAFORGE_EMBEDDED_WORKER="false",  # keys and serve's start need no trainer (and start faster)
        **extra,
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loraforge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def serve(tmp_path: Path, database_url: str) -> Iterator[object]:
    """Start `loraforge serve` with extra env; yields (base url, key printed on stdout)."""
    processes: list[subprocess.Popen[str]] = []

    def start(**extra: str) -> tuple[str, str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "loraforge", "serve", "--port", str(port), "--no-access-log"],
            env=_env(tmp_path, database_url, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        key = ""
        for line in process.stdout:
            if line.startswith("API key: "):
                key = line.removeprefix("API key: ").strip()
                break
        assert key, "serve must print the API key"
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        return url, key

    def stop() -> None:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    stop()


def test_keys_create_and_serve_give_keys_that_work_across_restarts(
    tmp_path: Path,
    database_url: str,
    serve,  # type: ignore[no-untyped-def]
) -> None:
    created = _cli(_env(tmp_path, database_url), "keys", "create", "--name", "alice", "--init")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1 and created.stdout.startswith("lf_"), "the key alone on stdout"
    url, printed = serve()
    for key in (created.stdout.strip(), printed):
        answer = httpx.get(f"{url}/finetune/request/list", headers={"x-api-key": key}, timeout=10)
        assert answer.status_code == 200 and answer.json() == []
    serve.stop()
    _url, again = serve()
    assert again == printed, "make serve must print the same demo key after a restart"


def test_keys_revoked_are_refused_at_once_and_listed_without_the_key(
    tmp_path: Path,
    database_url: str,
    serve,  # type: ignore[no-untyped-def]
) -> None:
    env = _env(tmp_path, database_url)
    url, _demo = serve()  # the server migrated the database, so no --init is needed
    bob = _cli(env, "keys", "create", "--name", "bob")
    assert bob.returncode == 0, bob.stderr
    key = bob.stdout.strip()
    again = _cli(env, "keys", "create", "--name", "bob")
    assert again.returncode == 2 and "already named 'bob'" in again.stderr
    listing = httpx.get(f"{url}/finetune/request/list", headers={"x-api-key": key}, timeout=10)
    assert listing.status_code == 200
    shown = _cli(env, "keys", "list")
    assert shown.returncode == 0, shown.stderr
    bob_row = next(line for line in shown.stdout.splitlines() if line.startswith("bob "))
    assert key not in shown.stdout and key[:8] in bob_row
    assert "never" not in bob_row, "the request just made is the key's last use"
    revoked = _cli(env, "keys", "revoke", "bob")
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(f"{url}/finetune/request/list", headers={"x-api-key": key}, timeout=10)
    assert refused.status_code == 401, "a revoked key is refused at once, cache or not"
    assert "revoked" in refused.json()["error"]
    assert "bob" not in _cli(env, "keys", "list").stdout
    assert "bob" in _cli(env, "keys", "list", "--all").stdout
    missing = _cli(env, "keys", "revoke", "bob")
    assert missing.returncode == 2 and "keys list" in missing.stderr


def test_keys_create_names_its_database_and_will_not_start_an_empty_one(tmp_path: Path) -> None:
    env = _env(tmp_path, "")
    del env["LORAFORGE_DATABASE_URL"]
    db_file = tmp_path / "data" / "loraforge.db"
    refused = _cli(env, "keys", "create", "--name", "carol")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--init" in refused.stderr and str(db_file) in refused.stderr
    listed = _cli(env, "keys", "list")  # list has no --init, so its error does not offer one
    assert listed.returncode == 2 and str(db_file) in listed.stderr and "--init" not in listed.stderr
    assert not db_file.exists(), "a refused create leaves no empty database behind"
    made = _cli(env, "keys", "create", "--name", "carol", "--init")
    assert made.returncode == 0, made.stderr
    assert f"database: SQLite file {db_file}" in made.stderr
    again = _cli(env, "keys", "create", "--name", "dave")
    assert again.returncode == 0 and again.stdout.startswith("lf_"), again.stderr


def test_keys_create_refuses_an_empty_name(tmp_path: Path) -> None:
    done = _cli(_env(tmp_path, f"sqlite:///{tmp_path / 'k.db'}"), "keys", "create", "--name", " ")
    assert done.returncode != 0 and done.stdout == ""
    assert "--name" in done.stderr


def test_serve_on_a_taken_port_says_so_before_printing_a_key(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = _env(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
        done = _cli(env, "serve", "--port", str(port))
    assert done.returncode == 1 and "API key" not in done.stdout, done.stdout
    assert f"127.0.0.1:{port}" in done.stderr and "--port" in done.stderr, done.stderr
    assert not (tmp_path / "data" / "serve-api-key").exists(), "no key is made for a server that cannot start"

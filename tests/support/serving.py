"""A real `loraforge` subprocess on loopback: its environment, waiting for /healthz, stopping it.

Shared by every test (and bench/) that runs `loraforge serve` as users do. `loraforge_env(**extra)`
is this process's environment without any LORAFORGE_* variable, with the repository on PYTHONPATH
and the Hugging Face hub offline; `wait_healthy(url, process, timeout, log)` returns once
GET {url}/healthz answers 200 and raises AssertionError (with what `log()` returns) when the
process exits first or the timeout (seconds) passes; `stop(process)` sends SIGTERM, then SIGKILL. `serve_env(tmp_path, **extra)` adds a data
directory under tmp_path; `serve_until_ready(tmp_path, log, *args, **extra)` starts `loraforge serve`
with the embedded worker off on a free port and returns it once healthy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loraforge_env(**extra: str) -> dict[str, str]:
    """os.environ less LORAFORGE_* (a developer's own settings must not leak in), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60.0,
                 log: Callable[[], str] = lambda: "") -> None:
    """Poll {url}/healthz every 0.2 s until it answers 200; AssertionError if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early ({process.returncode}):\n{log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not answer /healthz in {timeout:.0f} s:\n{log()}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL after `timeout` seconds; nothing if it has ended."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """loraforge_env with LORAFORGE_DATA_DIR under tmp_path, plus `extra`."""
    return loraforge_env(LORAFORGE_DATA_DIR=str(tmp_path / "data"), **extra)


def serve_until_ready(tmp_path: Path, log: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    """`loraforge serve ARGS` (embedded worker off, stderr to `log`) on a free port, once /healthz answers."""
    port = free_port()
    env = serve_env(tmp_path, LORAFORGE_EMBEDDED_WORKER="false", LORAFORGE_PORT=str(port), **extra)
    process = subprocess.Popen([sys.executable, "-m", "loraforge", "serve", "--no-access-log", *args],
                               env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, 60, log.read_text)
    except AssertionError:
        process.kill()
        raise
    return process

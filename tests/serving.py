"""A real `loraforge` subprocess on loopback: its environment, waiting for /healthz, stopping it.

Shared by every test (and bench/) that runs `loraforge serve` as users do. `loraforge_env(**extra)`
is this process's environment without any LORAFORGE_* variable, with the repository on PYTHONPATH
and the Hugging Face hub offline; `wait_healthy(url, process, timeout, log)` returns once
GET {url}/healthz answers 200 and raises AssertionError (with what `log()` returns) when the
process exits first or the timeout (seconds) passes; `stop(process)` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import socket
import subprocess
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

"""Real `loraforge serve` / `loraforge worker` subprocesses for crash and fleet tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import serving
from tests.support.serving import REPO, free_port

__all__ = ["API_KEY", "Client", "Process", "free_port", "group_alive", "has_torch", "job_child", "service_env",
           "wait_healthy"]


API_KEY = "e2e-test-key-0123456789"


def service_env(tmp_path: Path, tiny_models: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment of a `loraforge serve` / `worker` on loopback with the tiny models and fast leases."""
    env = {
        "LORAFORGE_DATA_DIR": str(tmp_path / "data"),
        "LORAFORGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LORAFORGE_HOST": "127.0.0.1",
        "LORAFORGE_PORT": str(port),
        "LORAFORGE_API_KEY": API_KEY,
        "LORAFORGE_SECRET_KEY": "e2e-secret-key-0123456789",
        "LORAFORGE_MODEL_FLUX": str(tiny_models / "flux-dev"),
        "LORAFORGE_MODEL_QWEN": str(tiny_models / "qwen-image"),
        "LORAFORGE_ALLOW_PRIVATE_URLS": "true",
        "LORAFORGE_LEASE_SECONDS": "10",
        "LORAFORGE_PROGRESS_INTERVAL_S": "0",
        "LORAFORGE_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@dataclass
class Process:
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> Process:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        log = self.log.with_suffix(f".{len(self.logs)}.log")
        self.logs.append(log)
        self.proc = subprocess.Popen([sys.executable, "-m", "loraforge", *self.args], env=env, cwd=REPO,
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            serving.stop(self.proc, 15)

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in self.logs if p.exists())


def job_child(data_dir: Path, job_id: str) -> int | None:
    """The pid of the job's running child, from the worker's pidfile DATA_DIR/work/{job_id}/child.pid."""
    try:
        return int(json.loads((data_dir / "work" / job_id / "child.pid").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def group_alive(pgid: int) -> bool:
    """Whether any process of process group `pgid` (a child and whatever it started) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def has_torch(pid: int) -> bool:
    """Whether process `pid` has libtorch mapped (torch imported), read from /proc/PID/maps."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def wait_healthy(url: str, process: Process, timeout: float = 60.0) -> None:
    assert process.proc is not None, "start() the process first"
    serving.wait_healthy(url, process.proc, timeout, process.tail)


class Client:
    """A tiny HTTP client for the seed endpoints of a live server."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30)

    def upload(self, data: bytes) -> str:
        r = self.http.request("GET", "/finetune/request/upload/pre-signed-url", json={"name": "photos"})
        assert r.status_code == 200, r.text
        up = r.json()
        put = httpx.put(up["presigned_url"], content=data, headers={"Content-Type": "application/zip"}, timeout=30)
        assert put.status_code in (200, 204), put.text
        return str(up["s3_url"])

    def submit(self, body: dict) -> str:
        r = self.http.post("/finetune/request/submit", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["request_id"])

    def details(self, job_id: str) -> dict:
        r = self.http.get("/finetune/request/details", params={"request_id": job_id})
        assert r.status_code == 200, r.text
        return dict(r.json()["finetune"])

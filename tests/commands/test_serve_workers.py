"""`loraforge serve --workers N` is refused before anything starts where each process would train.

Every API process without a broker runs its own embedded worker, so `--workers 2` on the default
SQLite database used to start two trainers on one GPU writing one database file, and on PostgreSQL
two trainers on one GPU.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.databases import POSTGRES_SERVER
from tests.support.serving import free_port, loraforge_env


def serve(data_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = loraforge_env(LORAFORGE_DATA_DIR=str(data_dir), LORAFORGE_PORT=str(free_port()), **settings)
    return subprocess.run([sys.executable, "-m", "loraforge", "serve", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(("workers", "expected"), [
    ("2", ("error: --workers 2: with SQLite (here SQLite file {db}) every API process would run its own "
           "embedded worker: 2 trainers on one GPU and one database file. Serve one process (--workers 1), or "
           "use PostgreSQL (LORAFORGE_DATABASE_URL) with a broker (LORAFORGE_BROKER_URL) and `loraforge worker`")),
    ("0", "error: --workers: must be at least 1, got 0"),
])
def test_serve_refuses_several_workers_on_sqlite_before_starting(tmp_path: Path, workers: str,
                                                                 expected: str) -> None:
    data_dir = tmp_path / "data"
    result = serve(data_dir, "--workers", workers)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == expected.format(db=data_dir.resolve() / "loraforge.db")
    assert result.stdout == "" and not data_dir.exists(), "no key printed, no database made"


def test_serve_refuses_several_embedded_workers_on_postgresql(tmp_path: Path) -> None:
    """On PostgreSQL without a broker each process would still train: refused before any connection."""
    data_dir = tmp_path / "data"
    result = serve(data_dir, "--workers", "2", LORAFORGE_DATABASE_URL=f"{POSTGRES_SERVER}/postgres")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: --workers 2: without a broker every API process runs its own embedded worker: 2 trainers on "
        "one GPU. Set LORAFORGE_BROKER_URL and run `loraforge worker`, or LORAFORGE_EMBEDDED_WORKER=false for "
        "API-only processes")

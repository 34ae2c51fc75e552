"""A warm spare child gets a job only while it runs the worker's code and that code is still on disk.

Real spare children (`python -m loraforge.worker.child.main --spare`) of a real SparePool. The code is a
copy of the loraforge package that the children import through PYTHONPATH; the upgrade is a file
written into that copy while the spare waits, as a `git pull` on a running worker would do.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

import loraforge
from loraforge.worker.processes import SparePool, start_time

TASK = {"job_id": "handshake", "settings": {}, "stages": []}  # never run: each child is ended at once


@pytest.fixture
def code_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the loraforge package, the one children started from here import."""
    root = tmp_path / "code"
    shutil.copytree(Path(loraforge.__file__).resolve().parent, root / "loraforge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.chdir(tmp_path)  # `python -m` puts the working directory first on sys.path
    return root / "loraforge"


def spare_pid(work_root: Path) -> int:
    [pidfile] = work_root.glob("spare-*/child.pid")
    return int(json.loads(pidfile.read_text())["pid"])


def test_a_spare_gets_a_job_only_while_it_runs_the_code_of_the_worker_and_the_disk(
        tmp_path: Path, code_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="loraforge.worker.processes")
    work = tmp_path / "work"
    pool = SparePool(work, code_root=code_copy)
    try:
        pool.refill()
        warm = spare_pid(work)
        with pool.take(TASK, work / "job-1") as child:
            assert child.pid == warm, "the spare running the worker's code did not get the job"
        assert not caplog.records

        pool.refill()
        stale = spare_pid(work)
        with (code_copy / "worker" / "child" / "main.py").open("a") as source:
            source.write("\n# upgraded while the worker runs\n")
        with pool.take(TASK, work / "job-2") as child:
            assert child.pid != stale, "the job went to a spare whose code is not on disk any more"
            assert child.work_dir == work / "job-2"
        assert start_time(stale) is None, "the refused spare is still running"
        assert not list(work.glob("spare-*")), "the refused spare's work dir is left behind"

        pool.refill()  # the code on disk is not the worker's: a spare would be refused, so none starts
        assert not list(work.glob("spare-*"))
        warnings = [r.getMessage() for r in caplog.records]
        assert any(f"spare child {stale}" in w and "fresh child takes the job" in w for w in warnings), warnings
        restart = [w for w in warnings if "restart the worker" in w]
        assert len(restart) == 1 and pool.version in restart[0], warnings  # once per change, both versions
    finally:
        pool.close()

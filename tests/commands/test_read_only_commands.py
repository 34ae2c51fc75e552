"""Read-only commands on a data dir that has no database yet make nothing and say so.

`loraforge doctor` used to make the data dir, `secret.key`, `storage/` and leave empty
`storage/health/` folders from its write probe; `keys list` and `keys revoke` never did, and
this keeps it so. Run as subprocesses, as users run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving import free_port, loraforge_env


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = loraforge_env(LORAFORGE_DATA_DIR=str(data_dir),
                        LORAFORGE_PUBLIC_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    return subprocess.run([sys.executable, "-m", "loraforge", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def everything_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("made", [False, True], ids=["no-data-dir", "empty-data-dir"])
def test_doctor_and_keys_on_a_fresh_data_dir_make_nothing_and_say_there_is_no_database(
    tmp_path: Path, made: bool
) -> None:
    data_dir = tmp_path / "data"
    if made:
        data_dir.mkdir()
    doctor = run(data_dir, "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert f"✗ database: no database yet: SQLite file {data_dir.resolve()}/loraforge.db does not exist" \
        in doctor.stdout
    assert "`loraforge serve` creates and migrates it" in doctor.stdout
    assert "✓ storage: " in doctor.stdout and "not made yet" in doctor.stdout
    assert "✓ disk: " in doctor.stdout
    for args in (("keys", "list"), ("keys", "revoke", "alice")):
        keys = run(data_dir, *args)
        assert keys.returncode == 2 and "no loraforge database at SQLite file" in keys.stderr, keys.stderr
    assert data_dir.exists() == made
    assert (everything_under(data_dir) if made else []) == [], "a read-only command made files"

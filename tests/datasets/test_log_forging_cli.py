"""Names cannot forge log lines or recolour a terminal, through `loraforge train --dry-run`
(issue 20, finding 7).

The dataset ZIP's own name carries a newline and a fake log line, and an entry name an ANSI
escape; the log lines that name them (zipsafe's and prepare's) and the `warning:` lines stay one
line each, the control characters written as escapes. One dry run: 48 s here with the tiny models' setup.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import samples
from tests.support.cli import run_cli

FORGED = "2026-01-01 00:00:00,000 ERROR loraforge.api: forged"


def test_names_with_newlines_and_ansi_escapes_stay_on_their_own_line(tiny_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / f"set\n{FORGED}"
    folder.mkdir()
    archive = samples.make_zip(folder / f"photos\n{FORGED}.zip", {
        "a.jpg": samples.jpeg(seed=1), "b.jpg": samples.jpeg(seed=2), "\x1b[31mred.jpg": b"not a jpeg",
    })
    result = run_cli("train", str(archive), "--base-model", "FLUX", "--model", str(tiny_models / "flux-dev"),
                     "--trigger-word", "TOK", "--resolution", "64", "--out", str(tmp_path / "out"), "--dry-run",
                     env={"LORAFORGE_LOG_LEVEL": "INFO"})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not any(line.startswith(FORGED) for line in lines), result.stderr
    assert "\x1b" not in result.stderr
    assert any(f"photos\\n{FORGED}.zip" in line and "loraforge.datasets" in line for line in lines), result.stderr
    assert "warning: \\x1b[31mred.jpg was dropped: not a readable image (unrecognised or corrupt data)" in lines

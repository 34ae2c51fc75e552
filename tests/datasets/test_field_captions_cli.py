"""Captions as the field writes them, through `loraforge train --dry-run` (issue 19, kinds 3 and 4).

The WD14 tagger names a caption after the whole image file name (`a.jpg.txt`); some tools write
several captions in one file, one per line; ai-toolkit writes `[trigger]` where the trigger word
goes; people write the trigger word in another case. Each dry run is the CLI called in-process
(tests/support/dry_runs.py), made when its test first asks for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import samples
from tests.support.dry_runs import Case, DryRuns, captions


def wd14(folder: Path) -> Path:
    return samples.make_zip(folder / "wd14.zip", {
        "a.jpg": samples.jpeg(), "a.jpg.txt": "TOK, 1girl, red hat",
        "b.png": samples.png(), "b.png.txt": "TOK, 1boy, blue coat",
        # c.txt could be the caption of c.jpg or c.png: both take it, and a warning names them
        "c.jpg": samples.jpeg(seed=2), "c.png": samples.png(seed=3), "c.txt": "TOK, shared",
        # d.jpg has its own d.jpg.txt; d.txt goes unused, with a warning
        "d.jpg": samples.jpeg(seed=4), "d.jpg.txt": "TOK, the whole name", "d.txt": "TOK, the stem",
        "e.jpg.txt": "TOK, no such image",
    })


def several_lines(folder: Path) -> Path:
    for i in range(2):
        (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
    (folder / "img0.txt").write_text("TOK, a woman in a red coat\n\nTOK, smiling\r\nTOK, outdoors\n")
    (folder / "img1.txt").write_text("TOK, one caption\n")
    return folder


def trigger_spellings(folder: Path) -> Path:
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
    (folder / "img0.txt").write_text("tok in a red hat")
    (folder / "img1.txt").write_text("a photo of [trigger] on a beach")
    (folder / "img2.txt").write_text("[Trigger], studio light")
    return folder


CASES = {build.__name__: Case(build) for build in (wd14, several_lines, trigger_spellings)}


@pytest.fixture(scope="module")
def runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> DryRuns:
    return DryRuns(tiny_models, tmp_path_factory.mktemp("field-captions"), CASES)


def test_wd14_captions_pair_with_the_whole_file_name_and_shared_ones_are_named(runs) -> None:
    run = runs["wd14"]
    assert captions(run.report) == {
        "a.jpg": ("TOK, 1girl, red hat", "txt"), "b.png": ("TOK, 1boy, blue coat", "txt"),
        "c.jpg": ("TOK, shared", "txt"), "c.png": ("TOK, shared", "txt"),
        "d.jpg": ("TOK, the whole name", "txt"),
    }
    assert {k["source"]: k["caption_file"] for k in run.report["kept"]}["a.jpg"] == "a.jpg.txt"
    assert any("c.txt" in w and "c.jpg" in w and "c.png" in w for w in run.warnings), run.warnings
    assert any(w.startswith("warning: d.txt was not used: d.jpg takes its caption from d.jpg.txt")
               for w in run.warnings), run.warnings
    assert any("e.jpg.txt was not used: no image is named 'e.jpg'" in w for w in run.warnings), run.warnings
    assert not any("a.jpg.txt" in w or "b.png.txt" in w for w in run.warnings), run.warnings
    ignored = {d["source"] for d in run.report["ignored"]}
    assert ignored == {"d.txt", "e.jpg.txt"}


def test_a_file_of_several_captions_gives_its_first_line_with_a_warning(runs) -> None:
    run = runs["several_lines"]
    assert captions(run.report) == {"img0.jpg": ("TOK, a woman in a red coat", "txt"),
                                    "img1.jpg": ("TOK, one caption", "txt")}
    assert any("img0.txt holds 3 captions" in w and "other 2" in w for w in run.warnings), run.warnings
    assert not any("img1.txt" in w for w in run.warnings), run.warnings


def test_the_trigger_word_in_another_case_or_as_a_placeholder_is_not_added_again(runs) -> None:
    run = runs["trigger_spellings"]
    assert captions(run.report) == {
        "img0.jpg": ("tok in a red hat", "txt"),
        "img1.jpg": ("a photo of TOK on a beach", "txt"),
        "img2.jpg": ("TOK, studio light", "txt"),
    }

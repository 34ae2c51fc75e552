"""Captions and names as people really send them, through `loraforge train --dry-run` (no training).

Each test is one example of issue 10: a caption file in a legacy encoding or with a byte-order
mark, kohya's `.caption` files, Hugging Face imagefolder metadata, a text file that goes unused.
Each dry run is the `train --dry-run` command called in-process (tests/support/cli.py,
`cli_in_process`): what is under test is how the data is read, not the process, so no test pays a
subprocess's seconds of imports; `dry_runs` runs a case when a test first asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import samples
from tests.support.dry_runs import Case, DryRun, DryRuns, captions

PORTRAIT = "ñandú’s portrait, standing in a café garden"


CASES: dict[str, Case] = {}


def case(trigger: str = "TOK", base_model: str = "FLUX", model: str = "flux-dev", name: str = ""
         ) -> Callable[[Callable[[Path], Path]], Callable[[Path], Path]]:
    def register(build: Callable[[Path], Path]) -> Callable[[Path], Path]:
        CASES[name or build.__name__] = Case(build, trigger, base_model, model)
        return build
    return register


@pytest.fixture(scope="module")
def dry_runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> DryRuns:
    return DryRuns(tiny_models, tmp_path_factory.mktemp("conventions"), CASES)


def dry_run(dry_runs: DryRuns, name: str) -> DryRun:
    return dry_runs[name]


@case(trigger="ñandú")
def cp1252_captions(folder: Path) -> Path:
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
        (folder / f"img{i}.txt").write_bytes(PORTRAIT.encode("cp1252"))
    return folder


def test_windows_1252_captions_are_read_right_and_named_in_a_warning(dry_runs) -> None:
    run = dry_run(dry_runs, "cp1252_captions")
    assert captions(run.report) == {f"img{i}.jpg": (PORTRAIT, "txt") for i in range(3)}
    for i in range(3):
        assert any(f"img{i}.txt" in w and "cp1252" in w for w in run.warnings), run.warnings


BOMS = {"utf-8-sig": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}


def _bom_captions(encoding: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        for i in range(2):
            (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
            (folder / f"img{i}.txt").write_bytes(BOMS[encoding] + f"{PORTRAIT}\x00".encode(encoding))
        return folder
    return build


for _encoding in BOMS:
    case(trigger="ñandú", name=f"bom {_encoding}")(_bom_captions(_encoding))


@pytest.mark.parametrize("encoding", list(BOMS))
def test_byte_order_marks_decide_the_encoding(dry_runs, encoding: str) -> None:
    report = dry_run(dry_runs, f"bom {encoding}").report
    assert captions(report) == {f"img{i}.jpg": (PORTRAIT, "txt") for i in range(2)}
    assert not any("\ufffd" in c or "\x00" in c for c, _ in captions(report).values())


@case()
def kohya(folder: Path) -> Path:
    return samples.make_zip(folder / "kohya.zip", {
        **{f"img{i}.jpg": samples.jpeg(seed=i) for i in range(3)},
        **{f"img{i}.caption": f"TOK on a red bike, view {i}" for i in range(3)},
    })


def test_kohya_caption_files_are_read(dry_runs) -> None:
    run = dry_run(dry_runs, "kohya")
    assert captions(run.report) == {f"img{i}.jpg": (f"TOK on a red bike, view {i}", "caption") for i in range(3)}
    assert run.report["ignored"] == [] and run.warnings == []


@case()
def imagefolder(folder: Path) -> Path:
    rows = [{"file_name": f"img{i}.jpg", "text": f"TOK in the rain {i}"} for i in range(2)]
    return samples.make_zip(folder / "hf.zip", {
        "train/img0.jpg": samples.jpeg(), "train/img1.jpg": samples.jpeg(seed=1),
        "train/metadata.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n",
        "val/a.png": samples.png(), "val/metadata.csv": 'file_name,text\na.png,"TOK, smiling"\nmissing.png,x\n',
    })


def test_imagefolder_metadata_jsonl_and_csv_give_captions(dry_runs) -> None:
    run = dry_run(dry_runs, "imagefolder")
    assert captions(run.report) == {
        "train/img0.jpg": ("TOK in the rain 0", "metadata"), "train/img1.jpg": ("TOK in the rain 1", "metadata"),
        "val/a.png": ("TOK, smiling", "metadata"),
    }
    assert any("val/metadata.csv row 3" in w and "missing.png" in w for w in run.warnings), run.warnings


@case()
def mixed(folder: Path) -> Path:
    return samples.make_zip(folder / "mixed.zip", {
        "a.jpg": samples.jpeg(), "b.jpg": samples.jpeg(seed=1),
        "a.txt": "TOK from the txt", "a.caption": "TOK from the caption file",
        "notes.txt": "remember to crop", "captions.json": "{}",
        "__MACOSX/._a.jpg": b"x", ".DS_Store": b"x", "Thumbs.db": b"x",
    })


def test_every_unused_text_file_is_named_and_os_junk_stays_quiet(dry_runs) -> None:
    run = dry_run(dry_runs, "mixed")
    report, warnings = run.report, run.warnings
    assert captions(report)["a.jpg"] == ("TOK from the txt", "txt")
    named = {name for name in ("a.caption", "notes.txt", "captions.json") if any(name in w for w in warnings)}
    assert named == {"a.caption", "notes.txt", "captions.json"}, warnings
    assert not any(junk in w for w in warnings for junk in ("__MACOSX", ".DS_Store", "Thumbs.db")), warnings
    assert {d["source"] for d in report["ignored"]} >= {"a.caption", "notes.txt", "captions.json", "Thumbs.db"}


@case()
def shift_jis(folder: Path) -> Path:
    return samples.legacy_names_zip(folder / "jp.zip", {
        "ソ.jpg": samples.jpeg(), "ソ.txt": "TOK, a cat on a wall", "表.jpg": samples.jpeg(seed=1),
        "犬.jpg": samples.jpeg(seed=2), "犬.txt": "TOK, a dog in the snow",
    }, "cp932")


def test_shift_jis_names_from_windows_compressed_folders_lose_no_photo(dry_runs) -> None:
    run = dry_run(dry_runs, "shift_jis")
    assert captions(run.report) == {
        "ソ.jpg": ("TOK, a cat on a wall", "txt"), "表.jpg": ("TOK", "trigger_word"),
        "犬.jpg": ("TOK, a dog in the snow", "txt"),
    }
    assert run.report["ignored"] == [] and run.report["dropped"] == []
    assert any("cp932" in w for w in run.warnings), run.warnings


@case()
def big5(folder: Path) -> Path:
    return samples.legacy_names_zip(folder / "tw.zip", {
        "許可.jpg": samples.jpeg(), "許可.txt": "TOK, permit photo", "功能.jpg": samples.jpeg(seed=1),
    }, "big5")


def test_big5_names_whose_second_byte_is_a_backslash_keep_their_photos(dry_runs) -> None:
    run = dry_run(dry_runs, "big5")
    assert b"\xb3\\" in run.data.read_bytes()  # 許: its second byte is 0x5C
    assert captions(run.report) == {"許可.jpg": ("TOK, permit photo", "txt"), "功能.jpg": ("TOK", "trigger_word")}
    assert run.report["ignored"] == []


@case()
def utf8_names(folder: Path) -> Path:
    return samples.legacy_names_zip(folder / "mac.zip", {
        "café.jpg": samples.jpeg(), "café.txt": "TOK at the café", "ñu.jpg": samples.jpeg(seed=1),
    }, "utf-8")


def test_utf8_names_without_the_flag_are_utf8(dry_runs) -> None:
    run = dry_run(dry_runs, "utf8_names")
    assert captions(run.report) == {"café.jpg": ("TOK at the café", "txt"), "ñu.jpg": ("TOK", "trigger_word")}
    assert run.warnings == []


LONG_CAPTIONS = [("FAST_FLUX", "flux-dev", 128, 25),  # ~150 words
                 ("QWEN", "qwen-image", 512, 60)]


def _long_captions(words: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data = folder / "data"
        data.mkdir()
        long = "TOK " + " ".join(f"detail{i} of the embroidered velvet jacket" for i in range(words))
        for i in range(2):
            (data / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
        (data / "img0.txt").write_text(long)
        (data / "img1.txt").write_text("TOK, short")
        return data
    return build


for _base_model, _model, _limit, _words in LONG_CAPTIONS:
    case(base_model=_base_model, model=_model, name=f"long {_base_model}")(_long_captions(_words))


@pytest.mark.parametrize(("base_model", "folder", "limit", "words"), LONG_CAPTIONS)
def test_captions_over_the_text_encoders_limit_are_named_with_their_count(
    dry_runs, base_model: str, folder: str, limit: int, words: int
) -> None:
    run = dry_run(dry_runs, f"long {base_model}")
    tokens = {k["source"]: k["caption_tokens"] for k in run.report["kept"]}
    assert tokens["img0.jpg"] > limit >= tokens["img1.jpg"]
    warned = [line for line in run.result.stderr.splitlines() if "tokens" in line]
    assert warned == [(f"warning: img0.jpg: its caption is {tokens['img0.jpg']} tokens; {base_model} reads "
                       f"{limit}, the rest is cut off in training")]

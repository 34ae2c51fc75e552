"""Captions and names as people really send them, through `loraforge train --dry-run` (no training).

Each test is one example of issue 10: a caption file in a legacy encoding or with a byte-order
mark, kohya's `.caption` files, Hugging Face imagefolder metadata, a text file that goes unused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.datasets import samples
from tests.training.test_train_cli import run_cli

PORTRAIT = "ñandú’s portrait, standing in a café garden"


@pytest.fixture(scope="module")
def flux(tiny_models: Path) -> str:
    return str(tiny_models / "flux-dev")


def dry_run(model: str, data: Path, out: Path, trigger: str = "TOK") -> tuple[dict, list[str]]:
    """(the dataset report, the `warning:` lines) of `loraforge train --dry-run`."""
    result = run_cli("train", str(data), "--base-model", "FLUX", "--model", model, "--trigger-word", trigger,
                     "--resolution", "64", "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    return report, warnings


def captions(report: dict) -> dict[str, tuple[str, str]]:
    return {k["source"]: (k["caption"], k["caption_source"]) for k in report["kept"]}


def test_windows_1252_captions_are_read_right_and_named_in_a_warning(flux: str, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
        (folder / f"img{i}.txt").write_bytes(PORTRAIT.encode("cp1252"))
    report, warnings = dry_run(flux, folder, tmp_path / "out", "ñandú")
    assert captions(report) == {f"img{i}.jpg": (PORTRAIT, "txt") for i in range(3)}
    for i in range(3):
        assert any(f"img{i}.txt" in w and "cp1252" in w for w in warnings), warnings


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be"])
def test_byte_order_marks_decide_the_encoding(flux: str, tmp_path: Path, encoding: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    bom = {"utf-8-sig": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    for i in range(2):
        (folder / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
        (folder / f"img{i}.txt").write_bytes(bom + f"{PORTRAIT}\x00".encode(encoding))
    report, _ = dry_run(flux, folder, tmp_path / "out", "ñandú")
    assert captions(report) == {f"img{i}.jpg": (PORTRAIT, "txt") for i in range(2)}
    assert not any("\ufffd" in c or "\x00" in c for c, _ in captions(report).values())


def test_kohya_caption_files_are_read(flux: str, tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "kohya.zip", {
        **{f"img{i}.jpg": samples.jpeg(seed=i) for i in range(3)},
        **{f"img{i}.caption": f"TOK on a red bike, view {i}" for i in range(3)},
    })
    report, warnings = dry_run(flux, archive, tmp_path / "out")
    assert captions(report) == {f"img{i}.jpg": (f"TOK on a red bike, view {i}", "caption") for i in range(3)}
    assert report["ignored"] == [] and warnings == []


def test_imagefolder_metadata_jsonl_and_csv_give_captions(flux: str, tmp_path: Path) -> None:
    rows = [{"file_name": f"img{i}.jpg", "text": f"TOK in the rain {i}"} for i in range(2)]
    archive = samples.make_zip(tmp_path / "hf.zip", {
        "train/img0.jpg": samples.jpeg(), "train/img1.jpg": samples.jpeg(seed=1),
        "train/metadata.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n",
        "val/a.png": samples.png(), "val/metadata.csv": 'file_name,text\na.png,"TOK, smiling"\nmissing.png,x\n',
    })
    report, warnings = dry_run(flux, archive, tmp_path / "out")
    assert captions(report) == {
        "train/img0.jpg": ("TOK in the rain 0", "metadata"), "train/img1.jpg": ("TOK in the rain 1", "metadata"),
        "val/a.png": ("TOK, smiling", "metadata"),
    }
    assert any("val/metadata.csv row 3" in w and "missing.png" in w for w in warnings), warnings


def test_every_unused_text_file_is_named_and_os_junk_stays_quiet(flux: str, tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "mixed.zip", {
        "a.jpg": samples.jpeg(), "b.jpg": samples.jpeg(seed=1),
        "a.txt": "TOK from the txt", "a.caption": "TOK from the caption file",
        "notes.txt": "remember to crop", "captions.json": "{}",
        "__MACOSX/._a.jpg": b"x", ".DS_Store": b"x", "Thumbs.db": b"x",
    })
    report, warnings = dry_run(flux, archive, tmp_path / "out")
    assert captions(report)["a.jpg"] == ("TOK from the txt", "txt")
    named = {name for name in ("a.caption", "notes.txt", "captions.json") if any(name in w for w in warnings)}
    assert named == {"a.caption", "notes.txt", "captions.json"}, warnings
    assert not any(junk in w for w in warnings for junk in ("__MACOSX", ".DS_Store", "Thumbs.db")), warnings
    assert {d["source"] for d in report["ignored"]} >= {"a.caption", "notes.txt", "captions.json", "Thumbs.db"}


def test_shift_jis_names_from_windows_compressed_folders_lose_no_photo(flux: str, tmp_path: Path) -> None:
    archive = samples.legacy_names_zip(tmp_path / "jp.zip", {
        "ソ.jpg": samples.jpeg(), "ソ.txt": "TOK, a cat on a wall", "表.jpg": samples.jpeg(seed=1),
        "犬.jpg": samples.jpeg(seed=2), "犬.txt": "TOK, a dog in the snow",
    }, "cp932")
    report, warnings = dry_run(flux, archive, tmp_path / "out")
    assert captions(report) == {
        "ソ.jpg": ("TOK, a cat on a wall", "txt"), "表.jpg": ("TOK", "trigger_word"),
        "犬.jpg": ("TOK, a dog in the snow", "txt"),
    }
    assert report["ignored"] == [] and report["dropped"] == []
    assert any("cp932" in w for w in warnings), warnings


def test_big5_names_whose_second_byte_is_a_backslash_keep_their_photos(flux: str, tmp_path: Path) -> None:
    archive = samples.legacy_names_zip(tmp_path / "tw.zip", {
        "許可.jpg": samples.jpeg(), "許可.txt": "TOK, permit photo", "功能.jpg": samples.jpeg(seed=1),
    }, "big5")
    assert b"\xb3\\" in archive.read_bytes()  # 許: its second byte is 0x5C
    report, _ = dry_run(flux, archive, tmp_path / "out")
    assert captions(report) == {"許可.jpg": ("TOK, permit photo", "txt"), "功能.jpg": ("TOK", "trigger_word")}
    assert report["ignored"] == []


def test_utf8_names_without_the_flag_are_utf8(flux: str, tmp_path: Path) -> None:
    archive = samples.legacy_names_zip(tmp_path / "mac.zip", {
        "café.jpg": samples.jpeg(), "café.txt": "TOK at the café", "ñu.jpg": samples.jpeg(seed=1),
    }, "utf-8")
    report, warnings = dry_run(flux, archive, tmp_path / "out")
    assert captions(report) == {"café.jpg": ("TOK at the café", "txt"), "ñu.jpg": ("TOK", "trigger_word")}
    assert warnings == []


@pytest.mark.parametrize(("base_model", "folder", "limit", "words"), [
    ("FAST_FLUX", "flux-dev", 128, 25),  # ~150 words
    ("QWEN", "qwen-image", 512, 60),
])
def test_captions_over_the_text_encoders_limit_are_named_with_their_count(
    tiny_models: Path, tmp_path: Path, base_model: str, folder: str, limit: int, words: int
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    long = "TOK " + " ".join(f"detail{i} of the embroidered velvet jacket" for i in range(words))
    for i in range(2):
        (data / f"img{i}.jpg").write_bytes(samples.jpeg(seed=i))
    (data / "img0.txt").write_text(long)
    (data / "img1.txt").write_text("TOK, short")
    result = run_cli("train", str(data), "--base-model", base_model, "--model", str(tiny_models / folder),
                     "--trigger-word", "TOK", "--resolution", "64", "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stderr
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    tokens = {k["source"]: k["caption_tokens"] for k in report["kept"]}
    assert tokens["img0.jpg"] > limit >= tokens["img1.jpg"]
    warned = [line for line in result.stderr.splitlines() if "tokens" in line]
    assert warned == [(f"warning: img0.jpg: its caption is {tokens['img0.jpg']} tokens; {base_model} reads "
                       f"{limit}, the rest is cut off in training")]

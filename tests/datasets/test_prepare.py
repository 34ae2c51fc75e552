"""Awkward but valid datasets come out as RGB PNGs of their bucket's size, captioned and reported."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loraforge.datasets.prepare import PreparedDataset, prepare_dataset
from loraforge.errors import DatasetError, ValidationError
from tests.support import samples

AWKWARD: dict[str, bytes | str] = {
    "set/people/Ann.JPG": samples.jpeg((96, 80), 1),
    "set/people/Ann.txt": "a woman in a red coat",
    "set/Bob.PNG": samples.png((80, 96), 2),
    "set/Bob.TXT": "TOK standing by a lake",
    "set/deep/er/Cat.WebP": samples.webp((96, 96), 3),
    "set/cmyk.jpeg": samples.cmyk_jpeg(),
    "set/rgba.png": samples.rgba_png(),
    "set/gray16.png": samples.gray16_png(),
    "set/palette.png": samples.palette_png(),
    "set/la.png": samples.la_png(),
    "set/rotated.jpg": samples.exif_rotated_jpeg(),
    "set/фото Ünï.jpg": samples.jpeg((80, 80), 7),
    "set/фото Ünï.txt": "TOK à Paris",
    "__MACOSX/set/._Ann.JPG": b"\0\5\x16\7junk",
    "set/.DS_Store": b"\0\0\0\1Bud1",
    "set/Thumbs.db": b"junk",
    "set/notes.pdf": b"%PDF-1.4",
}


def prepare(source: Path, work: Path, **kwargs: object) -> PreparedDataset:
    options: dict[str, object] = {
        "trigger_word": "TOK",
        "instance_prompt": "a photo of TOK",
        "resolution": 64,
    }
    options.update(kwargs)
    return prepare_dataset(source, work, **options)  # type: ignore[arg-type]


@pytest.fixture()
def awkward_zip(tmp_path: Path) -> Path:
    return samples.make_zip(tmp_path / "awkward.zip", AWKWARD)


def by_source(dataset: PreparedDataset) -> dict[str, object]:
    return {item.source_name: item for item in dataset.items}


def test_an_awkward_zip_yields_every_image_as_rgb_png_of_its_bucket(
    awkward_zip: Path, tmp_path: Path
) -> None:
    dataset = prepare(awkward_zip, tmp_path / "work")
    images = sorted(
        name
        for name in AWKWARD
        if name.startswith("set/") and not name.lower().endswith((".txt", ".ds_store", ".db", ".pdf"))
    )
    assert sorted(item.source_name for item in dataset.items) == images
    for item in dataset.items:
        with Image.open(item.image_path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", item.bucket)
        assert item.image_path.parent == tmp_path / "work" / "images"
    # The user's notes.pdf is named; OS junk (__MACOSX, .DS_Store, Thumbs.db) is not.
    assert len(dataset.warnings) == 1 and dataset.warnings[0].startswith("set/notes.pdf was not used: not an image")
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["dataset_report.json", "images"]


def test_junk_entries_are_ignored_and_listed_in_the_report(awkward_zip: Path, tmp_path: Path) -> None:
    dataset = prepare(awkward_zip, tmp_path / "work")
    ignored = {
        entry["source"]: entry["reason"] for entry in json.loads(dataset.report_path.read_text())["ignored"]
    }
    assert ignored["__MACOSX/set/._Ann.JPG"].startswith("macOS metadata")
    assert ignored["set/.DS_Store"] == "operating-system metadata"
    assert ignored["set/Thumbs.db"] == "operating-system metadata"
    assert "not an image" in ignored["set/notes.pdf"]


def test_captions_come_from_txt_files_else_the_instance_prompt_and_all_hold_the_trigger(
    awkward_zip: Path, tmp_path: Path
) -> None:
    items = by_source(prepare(awkward_zip, tmp_path / "work"))
    assert items["set/people/Ann.JPG"].caption == "TOK, a woman in a red coat"
    assert items["set/Bob.PNG"].caption == "TOK standing by a lake"
    assert items["set/cmyk.jpeg"].caption == "a photo of TOK"
    assert items["set/фото Ünï.jpg"].caption == "TOK à Paris"
    assert all(" TOK" in f" {item.caption}" for item in items.values())


def test_without_an_instance_prompt_the_caption_is_the_trigger_word(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "d.zip", {"a.jpg": samples.jpeg(), "b.jpg": samples.jpeg(seed=1)})
    dataset = prepare(archive, tmp_path / "work", instance_prompt=None, trigger_word="zxq")
    assert [item.caption for item in dataset.items] == ["zxq", "zxq"]


def test_a_trigger_word_inside_another_word_does_not_count(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip", {"a.jpg": samples.jpeg(), "a.txt": "TOKYO at night", "b.jpg": samples.jpeg()}
    )
    assert by_source(prepare(archive, tmp_path / "work"))["a.jpg"].caption == "TOK, TOKYO at night"


def test_the_captioner_captions_images_without_txt_and_gets_the_trigger_word(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip", {"a.jpg": samples.jpeg(), "a.txt": "from file", "b.png": samples.png()}
    )
    seen: list[tuple[str, tuple[int, int]]] = []

    def captioner(image: Image.Image) -> str:
        seen.append((image.mode, image.size))
        return "  a  blue   gradient "

    items = by_source(prepare(archive, tmp_path / "work", captioner=captioner))
    assert items["a.jpg"].caption == "TOK, from file"
    assert items["b.png"].caption == "TOK, a blue gradient"
    assert seen == [("RGB", items["b.png"].bucket)]


def test_a_failing_captioner_falls_back_with_a_warning(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "d.zip", {"a.jpg": samples.jpeg(), "b.png": samples.png()})

    def captioner(image: Image.Image) -> str:
        raise RuntimeError("out of memory")

    dataset = prepare(archive, tmp_path / "work", captioner=captioner)
    assert [item.caption for item in dataset.items] == ["a photo of TOK"] * 2
    assert any("a.jpg: auto-captioning failed (out of memory)" in w for w in dataset.warnings)


def test_exif_orientation_is_applied(awkward_zip: Path, tmp_path: Path) -> None:
    item = by_source(prepare(awkward_zip, tmp_path / "work"))["set/rotated.jpg"]
    assert item.bucket[1] > item.bucket[0], "stored landscape, shown portrait"
    pixels = np.asarray(Image.open(item.image_path)).astype(int)
    top, bottom = pixels[:8].mean(axis=(0, 1)), pixels[-8:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60, "the red left edge is now the top"
    assert bottom[2] > 200 and bottom[0] < 60


def test_transparency_is_composited_on_white_and_16_bit_keeps_its_range(
    awkward_zip: Path, tmp_path: Path
) -> None:
    items = by_source(prepare(awkward_zip, tmp_path / "work"))
    rgba = np.asarray(Image.open(items["set/rgba.png"].image_path)).astype(int)
    assert rgba[:, :4].min() >= 250, "the transparent half is white"
    gray = np.asarray(Image.open(items["set/gray16.png"].image_path)).astype(int)
    assert gray[:, :3].mean() < 30 and gray[:, -3:].mean() > 225, "a 0..65535 ramp is not clipped to white"


def test_buckets_follow_each_images_aspect_and_group_items(awkward_zip: Path, tmp_path: Path) -> None:
    dataset = prepare(awkward_zip, tmp_path / "work")
    items = by_source(dataset)
    assert items["set/people/Ann.JPG"].bucket == (64, 64)  # 96x80 is closest to square
    assert items["set/rotated.jpg"].bucket == (48, 80)  # 60x120 portrait
    assert set(dataset.buckets) == {item.bucket for item in dataset.items}
    assert sum(len(group) for group in dataset.buckets.values()) == len(dataset.items)
    for width, height in dataset.buckets:
        assert width % 16 == 0 and height % 16 == 0


def test_a_wide_image_lands_in_a_landscape_bucket(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip", {"wide.png": samples.png((400, 200)), "b.png": samples.png()}
    )
    dataset = prepare(archive, tmp_path / "work", resolution=256)
    width, height = by_source(dataset)["wide.png"].bucket
    assert width > height and abs(width / height - 2.0) < 0.15 and abs(width * height / 256**2 - 1) < 0.1


def test_the_report_lists_kept_and_dropped_images_with_sizes_captions_and_hash(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip",
        {"a.jpg": samples.jpeg((96, 80)), "a.txt": "cap", "b.png": samples.png(), "bad.jpg": b"nope"},
    )
    dataset = prepare(archive, tmp_path / "work")
    report = json.loads((tmp_path / "work" / "dataset_report.json").read_text())
    assert dataset.report_path == tmp_path / "work" / "dataset_report.json"
    kept = {entry["source"]: entry for entry in report["kept"]}
    assert kept["a.jpg"]["original_size"] == [96, 80] and kept["a.jpg"]["bucket"] == [64, 64]
    assert kept["a.jpg"]["caption"] == "TOK, cap" and kept["a.jpg"]["caption_source"] == "txt"
    assert kept["b.png"]["caption_source"] == "instance_prompt"
    assert report["dropped"] == [
        {"source": "bad.jpg", "reason": "not a readable image (unrecognised or corrupt data)"}
    ]
    assert report["warnings"] == list(dataset.warnings) and "bad.jpg" in dataset.warnings[0]
    assert report["dataset_sha256"] == dataset.dataset_sha256 and len(dataset.dataset_sha256) == 64
    assert report["counts"] == {"kept": 2, "dropped": 1, "ignored": 0}
    assert report["buckets"] == {"64x64": 2}


def test_the_dataset_hash_is_stable_and_the_same_for_a_folder_and_its_zip(
    awkward_zip: Path, tmp_path: Path
) -> None:
    first = prepare(awkward_zip, tmp_path / "one").dataset_sha256
    again = prepare(awkward_zip, tmp_path / "one").dataset_sha256  # re-run in the same folder
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(awkward_zip) as archive:
        archive.extractall(folder)
    assert first == again == prepare(folder, tmp_path / "two").dataset_sha256


def test_changing_a_caption_changes_the_hash(tmp_path: Path) -> None:
    entries = {"a.jpg": samples.jpeg(), "b.png": samples.png(), "a.txt": "one"}
    first = prepare(samples.make_zip(tmp_path / "1.zip", entries), tmp_path / "w1").dataset_sha256
    second = prepare(
        samples.make_zip(tmp_path / "2.zip", entries | {"a.txt": "two"}), tmp_path / "w2"
    ).dataset_sha256
    assert first != second


def test_a_rerun_replaces_the_previous_images(tmp_path: Path) -> None:
    prepare(
        samples.make_zip(tmp_path / "1.zip", {f"{i}.jpg": samples.jpeg(seed=i) for i in range(3)}),
        tmp_path / "w",
    )
    dataset = prepare(
        samples.make_zip(tmp_path / "2.zip", {"x.png": samples.png(), "y.png": samples.png()}), tmp_path / "w"
    )
    assert sorted(p.name for p in (tmp_path / "w" / "images").iterdir()) == sorted(
        i.image_path.name for i in dataset.items
    )


def test_a_folder_source_skips_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(samples.jpeg())
    (folder / "b.png").write_bytes(samples.png())
    (folder / "link.jpg").symlink_to(folder / "a.jpg")
    dataset = prepare(folder, tmp_path / "work")
    assert sorted(item.source_name for item in dataset.items) == ["a.jpg", "b.png"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"trigger_word": "  "}, "trigger_word"),
        ({"resolution": 100}, "resolution"),
        ({"min_images": 0}, "min_images"),
    ],
)
def test_bad_arguments_name_the_field(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    archive = samples.make_zip(tmp_path / "d.zip", {"a.jpg": samples.jpeg()})
    with pytest.raises(ValidationError, match=field):
        prepare(archive, tmp_path / "work", **kwargs)


def test_a_missing_source_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        prepare(tmp_path / "nope.zip", tmp_path / "work")
    shutil.rmtree(tmp_path / "work")


def test_a_work_folder_inside_the_source_folder_is_not_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(samples.jpeg())
    (folder / "b.png").write_bytes(samples.png())
    first = prepare(folder, folder / "out")
    second = prepare(folder, folder / "out")
    assert len(second.items) == 2 and first.dataset_sha256 == second.dataset_sha256


def test_a_fifo_in_a_folder_source_is_skipped_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(samples.jpeg())
    (folder / "b.png").write_bytes(samples.png())
    os.mkfifo(folder / "c.jpg")
    dataset = prepare(folder, tmp_path / "work")
    ignored = json.loads(dataset.report_path.read_text())["ignored"]
    assert ignored == [{"source": "c.jpg", "reason": "not a regular file"}]


def test_a_failing_rerun_leaves_no_stale_images_behind(tmp_path: Path) -> None:
    good = samples.make_zip(tmp_path / "good.zip", {"a.jpg": samples.jpeg(), "b.png": samples.png()})
    prepare(good, tmp_path / "w")
    bad = samples.make_zip(tmp_path / "bad.zip", {"a.jpg": b"broken", "b.png": samples.png()})
    with pytest.raises(DatasetError, match="1 usable image but needs at least 2"):
        prepare(bad, tmp_path / "w")
    assert not (tmp_path / "w" / "images").exists()
    assert json.loads((tmp_path / "w" / "dataset_report.json").read_text())["error"].startswith(
        "the dataset has 1"
    )

"""Image checks: corrupt, oversized, tiny and unsupported files are dropped with a reason that names them."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from loraforge.datasets.images import ImageRejected, load_image, to_rgb
from loraforge.datasets.limits import DatasetLimits
from loraforge.datasets.prepare import prepare_dataset
from tests.support import samples


def prepare(source: Path, work: Path, **kwargs: object):
    return prepare_dataset(source, work, trigger_word="TOK", instance_prompt=None, resolution=64, **kwargs)


def test_a_mix_with_some_corrupt_images_keeps_the_good_ones_and_warns_naming_the_bad(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "mix.zip",
        {
            "good1.jpg": samples.jpeg(),
            "good2.png": samples.png(),
            "good3.webp": samples.webp(),
            "cut.jpg": samples.jpeg()[:200],
            "noise.png": b"\x89PNG\r\n\x1a\nnot really",
            "empty.webp": b"",
        },
    )
    dataset = prepare(archive, tmp_path / "work")
    assert sorted(item.source_name for item in dataset.items) == ["good1.jpg", "good2.png", "good3.webp"]
    for name in ("cut.jpg", "noise.png", "empty.webp"):
        assert any(w.startswith(f"{name} was dropped") for w in dataset.warnings), name


def test_a_pixel_bomb_is_dropped_from_its_header_without_decoding(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip",
        {
            "bomb.png": samples.pixel_bomb_png(),
            "a.jpg": samples.jpeg(),
            "b.jpg": samples.jpeg(seed=1),
        },
    )
    dataset = prepare(archive, tmp_path / "work")
    report = json.loads(dataset.report_path.read_text())
    [dropped] = report["dropped"]
    assert dropped["source"] == "bomb.png" and "megapixel cap" in dropped["reason"]


def test_the_pixel_cap_is_a_parameter(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip", {"a.jpg": samples.jpeg((96, 80)), "b.jpg": samples.jpeg((64, 64))}
    )
    dataset = prepare(archive, tmp_path / "work", min_images=1, limits=DatasetLimits(max_image_pixels=5000))
    assert [item.source_name for item in dataset.items] == ["b.jpg"]
    assert "a.jpg was dropped: 96x80" in dataset.warnings[0]


def test_a_gif_renamed_to_jpg_is_dropped_as_unsupported(tmp_path: Path) -> None:
    gif = samples.encode(samples.gradient((64, 64)), "GIF")
    archive = samples.make_zip(
        tmp_path / "d.zip", {"a.jpg": gif, "b.jpg": samples.jpeg(), "c.png": samples.png()}
    )
    dataset = prepare(archive, tmp_path / "work")
    assert "a.jpg was dropped: unsupported format GIF; use JPEG, PNG, WEBP, HEIC or AVIF" in dataset.warnings


def test_a_png_named_jpg_is_accepted_by_its_content(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "d.zip", {"a.jpg": samples.png(), "b.jpg": samples.jpeg()})
    assert len(prepare(archive, tmp_path / "work").items) == 2


def test_an_image_under_a_quarter_of_the_resolution_is_dropped(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip",
        {
            "small.png": samples.png((300, 200)),
            "ok.png": samples.png((600, 400)),
            "ok2.jpg": samples.jpeg((512, 512)),
        },
    )
    dataset = prepare_dataset(
        archive, tmp_path / "work", trigger_word="TOK", instance_prompt=None, resolution=1024
    )
    assert [w for w in dataset.warnings if "small.png" in w] == [
        "small.png was dropped: too small (300x200); the short side needs at least 256 px at resolution 1024"
    ]


def test_every_pillow_mode_converts_to_rgb() -> None:
    for mode in ("1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F", "HSV", "LAB"):
        image = Image.new(mode, (8, 8))
        assert to_rgb(image).mode == "RGB", mode


def test_load_image_reports_the_stored_size_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.jpg"
    path.write_bytes(samples.exif_rotated_jpeg((120, 60)))
    loaded = load_image(path, max_pixels=10**6)
    assert loaded.original_size == (120, 60) and loaded.image.size == (60, 120)
    assert (loaded.format, loaded.mode, loaded.image.mode) == ("JPEG", "RGB", "RGB")
    path.write_bytes(b"")
    try:
        load_image(path, max_pixels=10**6)
    except ImageRejected as exc:
        assert "not a readable image" in exc.reason
    else:
        raise AssertionError("an empty file must be rejected")


def test_an_embedded_colour_profile_is_mapped_to_srgb(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(samples.red_png_with_profile(samples.swapped_primaries_profile()))
    red, green, _ = load_image(path, max_pixels=10**6).image.getpixel((10, 10))
    assert green > 200 and red < 60, "the profile says channel 1 is green, so sRGB sees green"


def test_a_broken_colour_profile_keeps_the_image_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(samples.red_png_with_profile(b"not an icc profile"))
    loaded = load_image(path, max_pixels=10**6)
    assert loaded.image.getpixel((10, 10)) == (255, 0, 0)
    assert "colour profile could not be applied" in loaded.notes[0]

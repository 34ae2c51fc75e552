"""Hostile or broken archives are refused with a DatasetError a person can act on, and leave nothing behind."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from loraforge.datasets.limits import DatasetLimits
from loraforge.datasets.prepare import prepare_dataset
from loraforge.errors import DatasetError
from tests.support import samples


def prepare(source: Path, work: Path, **kwargs: object):
    return prepare_dataset(source, work, trigger_word="TOK", instance_prompt=None, resolution=64, **kwargs)


def assert_refused(source: Path, work: Path, match: str, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as caught:
        prepare(source, work, **kwargs)
    assert not (work / "images").exists(), "a refused dataset must not leave an images folder"
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == [], "scratch dirs are cleaned"
    return caught.value


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "bomb.zip", {"photo.png": b"\0" * (20 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    assert_refused(archive, tmp_path / "work", r"photo\.png.*compresses \d+:1.*ZIP bomb")


def test_many_small_entries_that_add_up_to_a_bomb_are_refused(tmp_path: Path) -> None:
    entries: dict[str, bytes | str] = {f"p{i}.png": b"\0" * (512 * 1024) for i in range(20)}
    archive = samples.make_zip(tmp_path / "bombs.zip", entries)
    assert_refused(archive, tmp_path / "work", r"compress \d+:1 taken together.*ZIP bomb")


def test_an_entry_whose_header_lies_about_its_size_is_caught_while_streaming(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "liar.zip", {"a.png": samples.png(), "b.png": b"\0" * 3_000_000})
    samples.lie_about_size(archive, 1000)
    error = assert_refused(archive, tmp_path / "work", r"headers lie about the sizes")
    assert "a.png" in error.message or "b.png" in error.message


def test_an_entry_over_the_per_file_cap_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "big.zip", {"a.png": samples.png(), "b.png": samples.png(seed=1)})
    limits = DatasetLimits(max_entry_bytes=1000)
    assert_refused(archive, tmp_path / "work", r"'a.png' is .* MiB uncompressed, over the", limits=limits)


def test_an_archive_over_the_total_cap_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "big.zip", {"a.png": samples.png(), "b.png": samples.png(seed=1)})
    size = len(samples.png())
    limits = DatasetLimits(max_total_bytes=size + 10)
    assert_refused(archive, tmp_path / "work", r"add up to more than", limits=limits)


def test_an_archive_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "big.zip", {"a.png": samples.png(), "b.png": samples.png(seed=1)})
    assert_refused(
        archive,
        tmp_path / "work",
        r"the archive is .* MiB, over",
        limits=DatasetLimits(max_archive_bytes=100),
    )


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "photos/../../evil.png", "/etc/evil.png", "C:/evil.png", "C:\\evil.png", "..\\evil.png"],
)
def test_a_path_that_escapes_the_archive_is_refused(tmp_path: Path, name: str) -> None:
    archive = samples.make_zip(tmp_path / "trav.zip", {"ok.png": samples.png()})
    samples.add_raw_name(archive, name, samples.png(seed=2))
    assert_refused(archive, tmp_path / "work", r"(outside the archive|absolute path)")
    assert not (tmp_path / "evil.png").exists()


def test_a_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "link.zip", {"ok.png": samples.png(), "ok2.png": samples.png(seed=1)}
    )
    samples.add_symlink(archive, "passwd.png", "/etc/passwd")
    assert_refused(archive, tmp_path / "work", r"'passwd.png' is a symbolic link")


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    entries: dict[str, bytes | str] = {f"c{i}.txt": "x" for i in range(6)}
    archive = samples.make_zip(tmp_path / "many.zip", entries)
    assert_refused(
        archive, tmp_path / "work", r"6 entries, over the cap of 5", limits=DatasetLimits(max_entries=5)
    )


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "data.zip"
    fake.write_text("this is not an archive")
    assert_refused(fake, tmp_path / "work", r"'data.zip' is not a ZIP archive .* of JPEG, PNG, WEBP, HEIC or AVIF images")


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "cut.zip", {"a.png": samples.png(), "b.png": samples.png(seed=1)})
    archive.write_bytes(archive.read_bytes()[:-30])
    assert_refused(archive, tmp_path / "work", r"'cut.zip' is (not a ZIP archive|a corrupt ZIP)")


def test_an_encrypted_entry_is_refused(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "enc.zip", {"a.png": samples.png()})
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 0x1  # the "encrypted" general-purpose flag
    archive.write_bytes(bytes(data))
    assert_refused(archive, tmp_path / "work", r"password-protected")


def test_a_zip_without_images_says_so(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "none.zip", {"readme.md": "hi", "__MACOSX/._a.png": b"x", "a.txt": "cap"}
    )
    error = assert_refused(archive, tmp_path / "work", r"holds no images .* add at least 2")
    assert "3 other entries were ignored (readme.md: a text file in no caption layout" in error.message
    assert "__MACOSX/._a.png: macOS metadata" in error.message
    assert "a.txt: caption file with no image of the same name" in error.message


def test_a_zip_of_fake_heic_photos_names_each_one(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "heic.zip", {"IMG_0001.HEIC": b"....ftypheic", "IMG_0002.heic": b"x"}
    )
    assert_refused(archive, tmp_path / "work", r"IMG_0001.HEIC: not a readable image")


def test_phone_heic_and_avif_photos_are_used(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "phone.zip", {"IMG_0001.HEIC": samples.heic(), "IMG_0002.avif": samples.avif(seed=1)}
    )
    dataset = prepare(archive, tmp_path / "work")
    assert sorted(item.source_name for item in dataset.items) == ["IMG_0001.HEIC", "IMG_0002.avif"]


def test_an_all_corrupt_dataset_names_every_file_and_the_minimum(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "bad.zip",
        {"one.jpg": b"garbage", "two.png": samples.png()[:60], "three.webp": b"RIFF0000WEBPjunk"},
    )
    error = assert_refused(archive, tmp_path / "work", r"0 usable images but needs at least 2.*add more JPEG, PNG, WEBP, HEIC or AVIF images")
    for name in ("one.jpg", "two.png", "three.webp"):
        assert name in error.message
    assert "found 3, dropped 3" in error.message


def test_too_few_images_after_drops_reports_counts_and_reasons(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "few.zip",
        {
            "good.jpg": samples.jpeg(),
            "tiny.png": samples.png(size=(8, 8)),
            "broken.jpg": samples.jpeg()[:100],
        },
    )
    error = assert_refused(archive, tmp_path / "work", r"1 usable image but needs at least 3", min_images=3)
    assert "tiny.png: too small (8x8)" in error.message
    assert "broken.jpg: corrupt or truncated" in error.message
    assert (tmp_path / "work" / "dataset_report.json").exists(), "the report explains the refusal"


def test_the_uncompressed_stored_entries_of_a_plain_zip_pass_the_ratio_check(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "stored.zip",
        {"a.png": samples.png(), "b.jpg": samples.jpeg()},
        compression=zipfile.ZIP_STORED,
    )
    assert len(prepare(archive, tmp_path / "work").items) == 2


def test_an_end_record_claiming_a_huge_directory_is_refused_before_parsing(tmp_path: Path) -> None:
    archive = samples.make_zip(tmp_path / "dir.zip", {"a.png": samples.png(), "b.png": samples.png(seed=1)})
    data = bytearray(archive.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60000).to_bytes(2, "little") * 2  # entries on this disk, in total
    archive.write_bytes(bytes(data))
    assert_refused(archive, tmp_path / "work", r"60000 entries, over the cap of 5000")


def test_a_file_and_a_folder_of_the_same_name_is_a_clear_error(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "clash.zip", {"a.jpg": samples.jpeg(), "a.jpg/b.jpg": samples.jpeg()}
    )
    assert_refused(archive, tmp_path / "work", r"'a.jpg/b.jpg' could not be written")


def _long_names_zip(path: Path, entries: int, name_chars: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(entries):
            archive.writestr(f"{i:03d}" + "n" * (name_chars - 7) + ".jpg", b"x")
    return path


def test_a_directory_just_under_its_byte_cap_is_read_and_its_long_names_are_not_used(tmp_path: Path) -> None:
    # 99 entries of 51,650-character names: a 5,117,904-byte directory, under the 5000 x 1024 bytes
    # cap (0.3 s here); every name is over the 1024-character cap, so each is listed, cut to 200.
    archive = _long_names_zip(tmp_path / "long.zip", 99, 51_650)
    error = assert_refused(archive, tmp_path / "work", r"the dataset holds no images")
    assert "its name is 51650 characters long, over the cap of 1024" in error.message
    assert len(error.message) < 2000, len(error.message)


def test_a_directory_over_its_byte_cap_is_refused_for_its_size_not_its_entries(tmp_path: Path) -> None:
    # 101 such entries: 5,221,296 bytes, over the cap; once refused as "101 entries, over the cap of 5000"
    archive = _long_names_zip(tmp_path / "long.zip", 101, 51_650)
    error = assert_refused(archive, tmp_path / "work", r"the archive's directory of 101 entries is 5221296 bytes, "
                                                       r"over the cap of 5120000 bytes .*names .* far too long")
    assert "over the cap of 5000" not in error.message

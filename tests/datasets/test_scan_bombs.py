"""A progressive JPEG of thousands of scans is dropped before decoding (issue 20, finding 4).

Through the real dataset preparation: the bomb is dropped with a warning naming it and the
reason, and the rest of the dataset is used. Measured on this box (2 shared cores): the issue's
kind of bomb, 16 megapixels and 3000 scans in 187 KB, took 17 s to decode at only 300 scans, and
is now refused in 0.03 s (the scans are counted in one read of the file); the worst JPEG the
bounds let through, 100 scans at 10.0 megapixels, decodes in 2.7 s.
"""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

from loraforge.datasets.images import MAX_JPEG_SCANS, MAX_SCAN_MEGAPIXELS, count_scans
from loraforge.datasets.prepare import prepare_dataset
from loraforge.datasets.report import read_report
from tests.support import samples


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG's segments after SOI: (marker, bytes), a scan's entropy-coded data with its SOS."""
    out, i = [], 2
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, data[i:i + 2]))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7:
                    break
                end += 2
        out.append((marker, data[i:end]))
        i = end
    return out


def scan_bomb(size: tuple[int, int], scans: int) -> bytes:
    """A progressive JPEG of a flat grey `size` whose last scan (a few bytes) is repeated to `scans`."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, "JPEG", progressive=True, quality=90)
    segments = _segments(buffer.getvalue())
    starts = [k for k, (marker, _) in enumerate(segments) if marker == 0xDA]
    last = starts[-1]
    repeated = segments[last][1] * (scans - len(starts) + 1)
    return b"\xff\xd8" + b"".join(s for _, s in segments[:last]) + repeated + b"".join(
        s for _, s in segments[last + 1:])


def _prepare(tmp_path: Path, bomb: bytes) -> tuple[dict, float]:
    entries: dict[str, bytes | str] = {"a.png": samples.png(seed=1), "b.png": samples.png(seed=2), "bomb.jpg": bomb}
    archive = samples.make_zip(tmp_path / "set.zip", entries)
    started = time.perf_counter()
    prepare_dataset(archive, tmp_path / "work", trigger_word="TOK", resolution=64)
    return read_report(tmp_path / "work" / "dataset_report.json"), time.perf_counter() - started


def test_a_normal_progressive_jpeg_is_far_under_the_bounds(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(samples.jpeg((96, 80), progressive=True))
    assert 1 < count_scans(path) <= 12


@pytest.mark.parametrize(("size", "scans"), [((1000, 1000), MAX_JPEG_SCANS), ((3162, 3162), MAX_JPEG_SCANS)])
def test_a_jpeg_just_under_the_bounds_is_used(tmp_path: Path, size: tuple[int, int], scans: int) -> None:
    assert scans * size[0] * size[1] / 1e6 <= MAX_SCAN_MEGAPIXELS
    report, seconds = _prepare(tmp_path, scan_bomb(size, scans))
    assert "bomb.jpg" in {k["source"] for k in report["kept"]}, report["dropped"]
    assert seconds < 60, seconds  # 2.7 s to decode the 10-megapixel one here


@pytest.mark.parametrize(("size", "scans"), [((1000, 1000), MAX_JPEG_SCANS + 1), ((3163, 3163), MAX_JPEG_SCANS),
                                             ((4000, 4000), 3000)])
def test_a_jpeg_over_the_bounds_is_dropped_naming_it_and_why(tmp_path: Path, size: tuple[int, int],
                                                            scans: int) -> None:
    report, seconds = _prepare(tmp_path, scan_bomb(size, scans))
    assert [d["source"] for d in report["dropped"]] == ["bomb.jpg"]
    reason = report["dropped"][0]["reason"]
    assert reason.startswith(f"a JPEG of {scans} scans at {size[0] * size[1] / 1e6:.1f} megapixels, over the cap")
    assert f"bomb.jpg was dropped: {reason}" in report["warnings"]
    assert len(report["kept"]) == 2
    assert seconds < 10, seconds  # the 16-megapixel, 3000-scan bomb: refused in 0.03 s, not decoded

"""face_crop centres the crop on the largest face OpenCV's cascade finds, or falls back to a centre crop and warns."""

from __future__ import annotations

import json
from pathlib import Path

from loraforge.datasets.face_crop import FaceFinder, face_box
from loraforge.datasets.prepare import prepare_dataset
from tests.support import samples


def test_a_face_is_found_and_the_crop_follows_it(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip",
        {
            "face.png": samples.drawn_face((640, 480), centre=(480, 200)),
            "plain.jpg": samples.jpeg((320, 240)),
        },
    )
    dataset = prepare_dataset(
        archive, tmp_path / "work", trigger_word="TOK", instance_prompt=None, resolution=64, face_crop=True
    )
    kept = {entry["source"]: entry for entry in json.loads(dataset.report_path.read_text())["kept"]}
    face = kept["face.png"]["face"]
    assert face is not None
    left, top, right, bottom = face
    assert left < 480 < right and top < 200 < bottom, "the detected box holds the drawn face"
    box = kept["face.png"]["crop_box"]
    assert box[0] > 0 and box[2] == 640, "the crop moved right, off the centre, to the face"
    assert box[3] - box[1] < 384, "tighter than the centre crop (640x384) would be"
    assert box[0] <= left and right <= box[2] and box[1] <= top and bottom <= box[3]
    assert kept["plain.jpg"]["face"] is None
    assert dataset.warnings == ("plain.jpg: no face found for face_crop; used a centre crop",)


def test_without_face_crop_the_same_image_is_centre_cropped(tmp_path: Path) -> None:
    archive = samples.make_zip(
        tmp_path / "d.zip",
        {
            "face.png": samples.drawn_face((640, 480), centre=(480, 200)),
            "plain.jpg": samples.jpeg((320, 240)),
        },
    )
    dataset = prepare_dataset(
        archive, tmp_path / "work", trigger_word="TOK", instance_prompt=None, resolution=64
    )
    kept = {entry["source"]: entry for entry in json.loads(dataset.report_path.read_text())["kept"]}
    assert kept["face.png"]["face"] is None and dataset.warnings == ()
    assert kept["face.png"]["crop_box"] == [0, 48, 640, 432]


def test_the_face_box_keeps_the_bucket_aspect_and_stays_inside_the_image() -> None:
    for face, size, bucket in [
        ((0, 0, 50, 50), (400, 300), (80, 48)),
        ((350, 250, 400, 300), (400, 300), (48, 80)),
        ((10, 10, 390, 290), (400, 300), (64, 64)),
    ]:
        left, top, right, bottom = face_box(face, size, bucket)
        assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
        assert abs((right - left) / (bottom - top) - bucket[0] / bucket[1]) < 0.05


def test_the_finder_sees_no_face_in_noise() -> None:
    assert FaceFinder().largest_face(samples.gradient((256, 256))) is None

"""Face-centred crops with OpenCV's bundled Haar cascade (no download, no hub).

`FaceFinder` loads the frontal-face cascade that opencv-python ships once and finds the largest
face in an image; `face_box` turns that face into a crop window of the bucket's aspect ratio,
with room around the head, kept inside the image. When no face is found the caller falls back
to a centre crop and warns, naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from loraforge.datasets.buckets import Box, Size
from loraforge.errors import DatasetError

logger = logging.getLogger(__name__)

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_MAX_SIDE = 1024  # detection runs on a downscaled copy: faster, and as reliable
FACE_SHARE = 0.4  # the face's height as a share of the crop's height


class FaceFinder:
    """The largest frontal face in an image, found by OpenCV's Haar cascade."""

    def __init__(self) -> None:
        path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or "") / CASCADE
        classifier = cv2.CascadeClassifier(str(path)) if path.is_file() else None
        if classifier is None or classifier.empty():
            raise DatasetError(
                f"face_crop needs OpenCV's bundled {CASCADE}, which this install lacks "
                "(opencv-python-headless 5 no longer ships it); install opencv-python-headless<5 "
                "or turn face_crop off"
            )
        self._classifier = classifier

    def largest_face(self, image: Image.Image) -> Box | None:
        """The biggest face as (left, top, right, bottom) in `image`'s pixels, or None."""
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = (
            image
            if scale == 1.0
            else image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.BILINEAR,
            )
        )
        gray = cv2.equalizeHist(np.asarray(small.convert("L")))
        min_side = max(24, round(min(gray.shape) * 0.08))
        faces = self._classifier.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return (
            round(x / scale),
            round(y / scale),
            round((x + w) / scale),
            round((y + h) / scale),
        )


def face_box(face: Box, size: Size, bucket: Size) -> Box:
    """A crop of the bucket's aspect ratio around `face`, with margin, inside an image of `size`."""
    width, height = size
    aspect = bucket[0] / bucket[1]
    face_w, face_h = face[2] - face[0], face[3] - face[1]
    crop_h = max(face_h / FACE_SHARE, face_w / FACE_SHARE / aspect, bucket[1])
    crop_w = crop_h * aspect
    # Shrink to fit the image if needed, keeping the aspect ratio.
    shrink = min(1.0, width / crop_w, height / crop_h)
    crop_w, crop_h = max(1, round(crop_w * shrink)), max(1, round(crop_h * shrink))
    centre_x = (face[0] + face[2]) / 2
    centre_y = (face[1] + face[3]) / 2 + crop_h * 0.05  # a little headroom above the face
    left = min(max(0, round(centre_x - crop_w / 2)), width - crop_w)
    top = min(max(0, round(centre_y - crop_h / 2)), height - crop_h)
    return (left, top, left + crop_w, top + crop_h)

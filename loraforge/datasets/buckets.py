"""Aspect-ratio buckets: a handful of training sizes of about the same area.

`make_buckets(resolution)` lists (width, height) pairs whose area is close to resolution²,
whose sides are multiples of 16 (the VAE's 8x downscale times the transformers' 2x2 patches, for
both Qwen-Image and FLUX) and whose aspect ratio lies between 1:2 and 2:1. Each image goes to
the bucket nearest its own aspect ratio, so it is cropped as little as possible;
`center_box` and `fit_to_bucket` cut and scale it to exactly that size.
"""

from __future__ import annotations

import math

from PIL import Image

SIDE_MULTIPLE = 16
MAX_RATIO = 2.0

Size = tuple[int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom


def bucket_step(resolution: int) -> int:
    """Side step between buckets: finer for small sizes, coarser (fewer buckets) for large ones."""
    return SIDE_MULTIPLE * max(1, round(resolution / 256))


def make_buckets(resolution: int) -> list[Size]:
    """Buckets for a square training resolution (a multiple of 16), sorted by aspect ratio."""
    step = bucket_step(resolution)
    area = resolution * resolution
    buckets = {(resolution, resolution)}
    # Landscape sizes on a grid of widths, each mirrored into its portrait twin.
    width = resolution + step
    while width <= resolution * math.sqrt(MAX_RATIO):
        height = (area // width) // SIDE_MULTIPLE * SIDE_MULTIPLE
        if width / height <= MAX_RATIO:
            buckets.update({(width, height), (height, width)})
        width += step
    return sorted(buckets, key=lambda size: size[0] / size[1])


def nearest_bucket(size: Size, buckets: list[Size]) -> Size:
    """The bucket whose aspect ratio is closest (in log space) to that of `size`."""
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


def center_box(size: Size, bucket: Size) -> Box:
    """The largest centred box of `size` that has the bucket's aspect ratio."""
    width, height = size
    target = bucket[0] / bucket[1]
    if width / height > target:
        crop_w, crop_h = max(1, round(height * target)), height
    else:
        crop_w, crop_h = width, max(1, round(width / target))
    left = (width - crop_w) // 2
    top = (height - crop_h) // 2
    return (left, top, left + crop_w, top + crop_h)


def fit_to_bucket(image: Image.Image, bucket: Size, box: Box) -> Image.Image:
    """Cut `box` out of `image` and resize it to exactly `bucket`."""
    return image.resize(bucket, Image.Resampling.LANCZOS, box=box)

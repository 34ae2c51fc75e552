"""Image encoding for responses and files: PNG or JPEG bytes, their media types, base64 text.

One place decides how an image leaves the service, so the HTTP route and the CLI write the same
bytes for the same request. JPEG has no alpha channel, so images are converted to RGB first.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
JPEG_QUALITY = 92


def encode_image(image: Image.Image, image_format: str) -> bytes:
    """The image as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_base64(image: Image.Image, image_format: str) -> str:
    return base64.b64encode(encode_image(image, image_format)).decode("ascii")

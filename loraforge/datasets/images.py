"""Decoding and checking one dataset image with Pillow.

`load_image` verifies the file's structure, checks the pixel count against the cap before any
pixel is decoded (a decompression bomb is refused from its header), bounds a JPEG's decode work by
its scan count (`check_scans`: a progressive JPEG of thousands of scans, 156 KB at 16 megapixels,
once took 31 s to decode), fully decodes it (only the first frame of an animated or multi-picture
file: later frames cost nothing), applies
the EXIF orientation (HEIC: libheif applies the container's rotation itself), maps an embedded ICC colour profile to sRGB and converts any mode (CMYK,
RGBA and LA composited on white, 16-bit grayscale, palette, bilevel...) to 8-bit RGB. A file
that cannot be used raises `ImageRejected` with a reason a person can act on; the caller decides
whether that is a warning or an error. Broken EXIF or colour profiles only add a note.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# MPO: phone JPEGs with extra frames; HEIF: iPhone photos (pillow-heif); AVIF: Pillow's own (>= 11.3).
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "AVIF"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# A progressive JPEG's decoder passes over every block once per scan: its time grows with scans x
# pixels (about 3.6 ms per scan and megapixel here). Cameras and encoders write 1 (baseline) to
# about 12 scans per picture, plus the EXIF thumbnail's and an MPO's second picture's, so these
# bounds refuse no photo while they cap the decode at about 100 scans x 10 MP, or 3.6 s here.
MAX_JPEG_SCANS = 100
MAX_SCAN_MEGAPIXELS = 1000  # scans x megapixels
_SOS = b"\xff\xda"  # start of scan: 0xFF in entropy-coded data is always followed by 0x00 or RSTn


class ImageRejected(Exception):
    """One file is unusable; `reason` says why (not a LoraforgeError: it is never shown alone)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for cropping: RGB pixels after EXIF rotation, and what it was before."""

    image: Image.Image
    original_size: tuple[int, int]  # as stored in the file, before EXIF rotation
    format: str
    mode: str
    notes: tuple[str, ...] = ()  # things a person should know but that did not cost the image


def _high_bit_to_l(image: Image.Image) -> Image.Image:
    """16/32-bit grayscale to 8-bit: scale by the container's range rather than clip at 255."""
    pixels = np.asarray(image)
    if image.mode == "F":
        peak = float(pixels.max()) if pixels.size else 1.0
        scaled = pixels / max(1.0, peak) * 255.0
    else:
        peak = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        scaled = pixels.astype(np.float64) / peak * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency is composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT or image.mode == "F":
        return _high_bit_to_l(image).convert("RGB")
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("PA", "RGBa", "La"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (iPhones' default format) through pillow-heif, once per process."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def count_scans(path: Path, chunk: int = 1024 * 1024) -> int:
    """Start-of-scan markers in the JPEG at `path`, embedded thumbnails' included; read in chunks."""
    count, carry = 0, b""
    with open(path, "rb") as fp:
        while block := fp.read(chunk):
            data = carry + block
            count += data.count(_SOS)
            carry = data[-1:] if data[-1:] == b"\xff" else b""  # a marker split across two chunks
    return count


def check_scans(path: Path, width: int, height: int) -> None:
    """ImageRejected if the JPEG at `path` has more than MAX_JPEG_SCANS scans, or more scans x
    megapixels than MAX_SCAN_MEGAPIXELS: its decode time would have no useful bound."""
    scans = count_scans(path)
    megapixels = width * height / 1e6
    if scans > MAX_JPEG_SCANS or scans * megapixels > MAX_SCAN_MEGAPIXELS:
        raise ImageRejected(
            f"a JPEG of {scans} scans at {megapixels:.1f} megapixels, over the cap of {MAX_JPEG_SCANS} scans "
            f"and {MAX_SCAN_MEGAPIXELS} scans x megapixels (a photo has 1 to about 12); re-save it as a "
            "baseline JPEG"
        )


def _decode(path: Path, max_pixels: int) -> Image.Image:
    """Check the header and structure, then decode every pixel; ImageRejected if unusable."""
    _register_heif()
    try:
        with warnings.catch_warnings():
            # Our own pixel cap decides; Pillow's bomb warning would only add noise to the logs.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                fmt = probe.format or "unknown"
                if fmt not in ACCEPTED_FORMATS:
                    raise ImageRejected(f"unsupported format {fmt}; use JPEG, PNG, WEBP, HEIC or AVIF")
                width, height = probe.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                        f"{max_pixels / 1e6:.0f} megapixel cap; downscale it"
                    )
                if fmt in ("JPEG", "MPO"):
                    check_scans(path, width, height)
                probe.verify()
            # verify() leaves the image unusable, so decode from a fresh handle.
            image = Image.open(path)
            image.load()
            return image
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(f"too many pixels (over the {max_pixels / 1e6:.0f} megapixel cap)") from None
    except UnidentifiedImageError:
        raise ImageRejected("not a readable image (unrecognised or corrupt data)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow signals corrupt data with many exception types
        raise ImageRejected(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from None


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """Colours from an embedded ICC profile (Display P3 phone photos, print CMYK) mapped to sRGB."""
    if not icc or image.mode not in ("RGB", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, _srgb(), outputMode="RGB") or image
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        notes.append(f"its colour profile could not be applied ({exc}); colours may be off")
        return image


def load_image(path: Path, *, max_pixels: int) -> LoadedImage:
    """Decode `path` fully and return it as sRGB RGB, or raise ImageRejected saying why not."""
    image = _decode(path, max_pixels)
    notes: list[str] = []
    with image:
        fmt, mode, size = image.format or "unknown", image.mode, image.size
        icc = image.info.get("icc_profile")
        try:
            oriented = ImageOps.exif_transpose(image) or image
        except Exception as exc:  # noqa: BLE001 - broken EXIF must not cost a good photo
            notes.append(f"its EXIF orientation could not be read ({exc}); used as stored")
            oriented = image
        rgb = to_rgb(_to_srgb(oriented, icc, notes))
        rgb.load()
    return LoadedImage(image=rgb, original_size=size, format=fmt, mode=mode, notes=tuple(notes))

"""Builders for test datasets: images in every awkward mode and ZIPs, honest or hostile."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def gradient(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A face-less RGB image with structure (so resizing and hashing see real pixels)."""
    rng = np.random.default_rng(seed)
    width, height = size
    xs = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    ys = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    base = np.concatenate([xs + 0 * ys, ys + 0 * xs, (xs + ys) / 2], axis=2)
    noise = rng.integers(0, 30, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (96, 80), seed: int = 0, **params: object) -> bytes:
    return encode(gradient(size, seed), "JPEG", quality=90, **params)


def png(size: tuple[int, int] = (80, 96), seed: int = 0) -> bytes:
    return encode(gradient(size, seed), "PNG")


def webp(size: tuple[int, int] = (96, 96), seed: int = 0) -> bytes:
    return encode(gradient(size, seed), "WEBP", quality=90)


def heic(size: tuple[int, int] = (96, 80), seed: int = 0) -> bytes:
    """An iPhone-style HEIC photo (HEVC in HEIF), written with pillow-heif."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(gradient(size, seed), "HEIF", quality=90)


def avif(size: tuple[int, int] = (96, 80), seed: int = 0) -> bytes:
    return encode(gradient(size, seed), "AVIF", quality=90)


def cmyk_jpeg(size: tuple[int, int] = (96, 96)) -> bytes:
    return encode(gradient(size, 3).convert("CMYK"), "JPEG")


def rgba_png(size: tuple[int, int] = (96, 96)) -> bytes:
    """Fully transparent left half: composited on white it must come out white there."""
    image = gradient(size, 4).convert("RGBA")
    alpha = np.full((size[1], size[0]), 255, np.uint8)
    alpha[:, : size[0] // 2] = 0
    image.putalpha(Image.fromarray(alpha, "L"))
    return encode(image, "PNG")


def gray16_png(size: tuple[int, int] = (96, 96)) -> bytes:
    ramp = np.tile(np.linspace(0, 65535, size[0], dtype=np.uint16), (size[1], 1))
    return encode(Image.fromarray(ramp), "PNG")


def palette_png(size: tuple[int, int] = (96, 96)) -> bytes:
    return encode(gradient(size, 5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


def la_png(size: tuple[int, int] = (96, 96)) -> bytes:
    return encode(gradient(size, 6).convert("LA"), "PNG")


def exif_rotated_jpeg(size: tuple[int, int] = (120, 60)) -> bytes:
    """Stored landscape with a red left edge, EXIF orientation 6: shown portrait, red at the top."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 4, size[1]))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def drawn_face(size: tuple[int, int] = (320, 240), centre: tuple[int, int] = (220, 120)) -> bytes:
    """A cartoon face OpenCV's frontal-face cascade recognises, off-centre on a plain ground."""
    canvas = np.full((size[1], size[0]), 90, np.uint8)
    cx, cy = centre
    cv2.ellipse(canvas, (cx, cy), (45, 60), 0, 0, 360, 200, -1)  # head
    cv2.ellipse(canvas, (cx, cy - 45), (47, 22), 0, 180, 360, 40, -1)  # hair
    for dx in (-21, 21):
        cv2.ellipse(canvas, (cx + dx, cy - 21), (12, 4), 0, 180, 360, 50, -1)  # brows
        cv2.ellipse(canvas, (cx + dx, cy - 10), (10, 5), 0, 0, 360, 60, -1)  # eyes
        cv2.circle(canvas, (cx + dx, cy - 10), 3, 20, -1)
    cv2.ellipse(canvas, (cx, cy + 10), (7, 4), 0, 0, 360, 140, -1)  # nose
    cv2.ellipse(canvas, (cx, cy + 30), (16, 5), 0, 0, 360, 70, -1)  # mouth
    canvas = cv2.GaussianBlur(canvas, (5, 5), 0)
    return encode(Image.fromarray(canvas, "L").convert("RGB"), "PNG")


def make_zip(path: Path, entries: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def add_symlink(path: Path, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, target)


def add_raw_name(path: Path, name: str, data: bytes) -> None:
    """An entry whose name is written as given (zipfile would sanitise it on extraction only)."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(name), data)


def legacy_names_zip(path: Path, entries: dict[str, bytes | str], encoding: str) -> Path:
    """A ZIP whose names are in `encoding` without the UTF-8 flag, as Windows' "Compressed folder" writes.

    zipfile always writes non-ASCII names as flagged UTF-8, so each entry is written under an ASCII
    stand-in of the same byte length, then the stand-in's bytes are replaced in every header.
    """
    raw = {name: name.encode(encoding) for name in entries}
    stand_ins = {name: f"{i:0{len(b)}d}".encode() for i, (name, b) in enumerate(raw.items())}
    make_zip(path, {stand_ins[name].decode(): data for name, data in entries.items()})
    data = path.read_bytes()
    for name, stand_in in stand_ins.items():
        for header in (b"PK\x03\x04", b"PK\x01\x02"):
            start = 0
            while (at := data.find(header, start)) != -1:
                local = header == b"PK\x03\x04"
                name_at = at + (30 if local else 46)
                (length,) = struct.unpack_from("<H", data, at + (26 if local else 28))
                if length == len(stand_in) and data[name_at:name_at + length] == stand_in:
                    data = data[:name_at] + raw[name] + data[name_at + len(stand_in):]
                start = at + 4
    path.write_bytes(data)
    return path


def lie_about_size(path: Path, declared: int) -> None:
    """Rewrite every local and central header so each entry claims `declared` bytes uncompressed."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(signature, start)) != -1:
            struct.pack_into("<I", data, at + offset, declared)
            start = at + 4
    path.write_bytes(bytes(data))


def pixel_bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG whose header claims a huge canvas: decoding it would need gigabytes."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\0" * (width + 1) * 16)  # a few rows; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def swapped_primaries_profile() -> bytes:
    """An RGB ICC profile whose red and green primaries are exchanged (sRGB's, re-labelled)."""
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack_from(">I", data, 128)
    tags = {}
    for i in range(count):
        at = 132 + 12 * i
        tags[bytes(data[at : at + 4])] = at
    red, green = tags[b"rXYZ"], tags[b"gXYZ"]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = (
        data[green + 4 : green + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)


def red_png_with_profile(icc: bytes) -> bytes:
    return encode(Image.new("RGB", (96, 96), (255, 0, 0)), "PNG", icc_profile=icc)

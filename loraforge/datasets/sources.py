"""Where a dataset's files come from: a ZIP archive (extracted safely) or a local folder.

`gather_files` turns either into one mapping from a relative POSIX name (`people/ann.jpg`) to a
file on disk, holding only images and caption files (see caption_files), plus the list of
entries it skipped and why (`is_os_junk` tells the ones not worth a warning). Names are the dataset's identity in warnings, the report and the dataset hash, so a
folder and a ZIP of the same folder yield the same names.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from loraforge.datasets.caption_files import is_caption_file
from loraforge.datasets.limits import DatasetLimits
from loraforge.datasets.zipsafe import Extraction, extract_zip
from loraforge.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif"})
# Files an OS writes by itself; skipped without a word (everything else skipped is named).
OS_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".localized"})
OS_JUNK_FOLDERS = frozenset({"__MACOSX", ".Spotlight-V100", ".Trashes", ".fseventsd", ".TemporaryItems"})
# Text a user may have meant as captions in a layout loraforge does not read.
TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".tsv", ".md", ".tags", ".text", ".yaml", ".yml"})
# Image formats people do upload (phones, scanners, the web); named so the report can say "convert".
OTHER_IMAGE_SUFFIXES = frozenset(
    {
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".jxl",
        ".jp2",
        ".raw",
        ".dng",
        ".cr2",
        ".nef",
    }
)


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def is_os_junk(name: str) -> bool:
    """Files the OS leaves behind (`__MACOSX/`, `.DS_Store`, `._a.jpg`, `Thumbs.db`): never warned about."""
    path = PurePosixPath(name)
    if any(part in OS_JUNK_FOLDERS for part in path.parts[:-1]):
        return True
    return path.name.lower() in OS_JUNK_NAMES or path.name.startswith("._")


def skip_reason(name: str) -> str | None:
    """Why a dataset file is not used (OS junk, hidden, other types), or None to keep it."""
    path = PurePosixPath(name)
    if path.parts and path.parts[0] == "__MACOSX":
        return "macOS metadata (__MACOSX)"
    if is_os_junk(name):
        return "operating-system metadata"
    if any(part.startswith(".") for part in path.parts):
        return "hidden file"
    suffix = path.suffix.lower()
    if suffix in OTHER_IMAGE_SUFFIXES:
        return f"unsupported image format ({suffix}); convert it to JPEG, PNG, WEBP, HEIC or AVIF"
    if suffix in TEXT_SUFFIXES and not is_caption_file(name):
        return ("a text file in no caption layout loraforge reads (IMAGE.txt, IMAGE.caption, "
                "metadata.jsonl or metadata.csv with file_name and text)")
    if suffix not in IMAGE_SUFFIXES and not is_caption_file(name):
        return ("not an image or caption (.jpg, .jpeg, .png, .webp, .heic, .heif, .avif; .txt, .caption, "
                "metadata.jsonl/.csv)")
    return None


def _walk_folder(folder: Path, limits: DatasetLimits, exclude: Path) -> Extraction:
    out = Extraction()
    count = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        # The work folder may sit inside the source (`train ./photos --out ./photos/out`).
        dirs[:] = sorted(d for d in dirs if (Path(root) / d).resolve() != exclude)
        for filename in sorted(files):
            path = Path(root) / filename
            name = path.relative_to(folder).as_posix()
            count += 1
            if count > limits.max_entries:
                raise DatasetError(f"the folder has more than {limits.max_entries} files; use fewer files")
            reason = skip_reason(name)
            if reason is None and path.is_symlink():
                reason = "symbolic link"
            if reason is None and not path.is_file():
                reason = "not a regular file"
            if reason is None and path.stat().st_size > limits.max_entry_bytes:
                reason = f"larger than the {limits.max_entry_bytes // (1024 * 1024)} MiB cap per file"
            if reason is not None:
                out.ignored.append((name, reason))
            else:
                out.files[name] = path
    return out


def gather_files(source: Path, scratch: Path, work_dir: Path, limits: DatasetLimits) -> Extraction:
    """Images and captions of `source` (a .zip or a folder); a ZIP is extracted under `scratch`."""
    if not source.exists():
        raise DatasetError(f"dataset {str(source)!r} does not exist")
    if source.is_dir():
        return _walk_folder(source, limits, exclude=work_dir.resolve())
    return extract_zip(source, scratch, limits, skip_reason)

"""Finding each image's caption among a dataset's text files, in the conventions trainers use.

Three conventions, most specific first: a same-name `.txt` beside the image (`dir/a.jpg` and
`dir/a.txt`, any case), a same-name `.caption` (kohya's sd-scripts), and a Hugging Face
`imagefolder` metadata file (`metadata.jsonl` or `metadata.csv` with `file_name` and `text`
columns, `file_name` relative to the metadata file's folder; read with a bound on rows,
datasets.metadata_files). Every file is decoded by
loraforge.datasets.text (BOMs, else UTF-8, else detected, with a warning). A text file that could
hold captions but is not used (no image of that name, or an image whose caption comes from a more
specific file, or a file that cannot be read) is listed in `unused` with the reason and warned
about, so nothing a user wrote is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from loraforge.datasets.metadata_files import metadata_rows
from loraforge.datasets.text import decode_text
from loraforge.datasets.warning_log import WarningLog
from loraforge.textsafe import shown

CAPTION_SUFFIXES = (".txt", ".caption")  # most specific first; the value is the report's source
METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
MAX_CAPTION_FILE_BYTES = 64 * 1024  # a caption is at most 2000 characters; more is not a caption
MAX_METADATA_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FoundCaption:
    """An image's caption text and where it came from: `source` txt | caption | metadata, `file`."""

    text: str
    source: str
    file: str


@dataclass
class CaptionPlan:
    captions: dict[str, FoundCaption] = field(default_factory=dict)  # image name -> caption
    unused: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    warnings: WarningLog = field(default_factory=WarningLog)


def caption_key(name: str) -> str:
    """The key pairing `dir/a.JPG` with `dir/a.txt`: the path without its suffix."""
    return str(PurePosixPath(name).with_suffix(""))


def is_caption_file(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in CAPTION_SUFFIXES or path.name.lower() in METADATA_NAMES


def _read(name: str, path: Path, cap: int, plan: CaptionPlan) -> str | None:
    data = path.read_bytes()
    if len(data) > cap:
        plan.unused.append((name, f"larger than {cap // 1024} KiB: not a caption file"))
        plan.warnings.append(f"{name} was not used: larger than {cap // 1024} KiB, too big for captions")
        return None
    decoded = decode_text(data)
    if decoded is None:
        plan.unused.append((name, "not text in any encoding"))
        plan.warnings.append(f"{name} was not used: it is not text in any encoding (a binary file?)")
        return None
    if decoded.detected:
        plan.warnings.append(f"{name}: not UTF-8; read as {decoded.encoding} (save captions as UTF-8 to be sure)")
    if decoded.removed:
        plan.warnings.append(f"{name}: removed {decoded.removed} NUL or U+FFFD replacement character(s)")
    return decoded.text


def _metadata(name: str, path: Path, images: set[str], plan: CaptionPlan) -> dict[str, FoundCaption]:
    text = _read(name, path, MAX_METADATA_BYTES, plan)
    if text is None:
        return {}
    folder = PurePosixPath(name).parent
    found: dict[str, FoundCaption] = {}
    for where, row in metadata_rows(name, text, plan.warnings):
        file_name, caption = row.get("file_name"), row.get("text")
        if not isinstance(file_name, str) or not isinstance(caption, str):
            plan.warnings.append(f"{where} was skipped: file_name and text must both be strings")
            continue
        image = str(folder / file_name.replace("\\", "/").lstrip("/")).removeprefix("./")
        if image not in images:
            plan.warnings.append(f"{where} was skipped: the dataset has no image '{shown(file_name)}'")
        elif image in found:
            plan.warnings.append(f"{where} was skipped: '{shown(file_name)}' already has a caption in {name}")
        else:
            found[image] = FoundCaption(caption, "metadata", name)
    if not found:
        plan.unused.append((name, "no row names an image of the dataset"))
    return found


def find_captions(files: Mapping[str, Path], images: list[str]) -> CaptionPlan:
    """Each image's caption from the dataset's caption files (see the module doc); the rest unused."""
    plan = CaptionPlan()
    by_key = {caption_key(name): name for name in images}
    image_set = set(images)
    from_metadata: dict[str, FoundCaption] = {}
    per_image: dict[str, list[tuple[int, str]]] = {}
    for name in sorted(files):
        path = PurePosixPath(name)
        if path.name.lower() in METADATA_NAMES:
            for image, found in _metadata(name, files[name], image_set, plan).items():
                from_metadata.setdefault(image, found)
        elif path.suffix.lower() in CAPTION_SUFFIXES:
            image = by_key.get(caption_key(name))
            if image is None:
                plan.unused.append((name, "caption file with no image of the same name"))
                plan.warnings.append(f"{name} was not used: no image has the name {path.stem!r}")
            else:
                per_image.setdefault(image, []).append((CAPTION_SUFFIXES.index(path.suffix.lower()), name))
    for image in images:
        candidates = sorted(per_image.get(image, []))
        if candidates:
            _, chosen = candidates[0]
            text = _read(chosen, files[chosen], MAX_CAPTION_FILE_BYTES, plan)
            if text is not None:
                suffix = PurePosixPath(chosen).suffix.lower().lstrip(".")
                plan.captions[image] = FoundCaption(text, suffix, chosen)
            for _, other in candidates[1:]:
                plan.unused.append((other, f"{image} takes its caption from {chosen}"))
                plan.warnings.append(f"{other} was not used: {image} takes its caption from {chosen}")
        if image in from_metadata:
            found = from_metadata[image]
            if image in plan.captions:
                plan.warnings.append(
                    f"{found.file}: the text for {image} was not used; its caption comes from "
                    f"{plan.captions[image].file}"
                )
            else:
                plan.captions[image] = found
    return plan

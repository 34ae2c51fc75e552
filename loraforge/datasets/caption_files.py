"""Finding each image's caption among a dataset's text files, in the conventions trainers use.

Three conventions, most specific first: a `.txt` beside the image named after it, either the whole
file name (`dir/a.jpg.txt`, as the WD14 tagger writes) or the name without its extension
(`dir/a.txt`, any case), then the same two `.caption` names (kohya's sd-scripts), then a Hugging
Face `imagefolder` metadata file (`metadata.jsonl` or `metadata.csv` with `file_name` and `text`
columns, `file_name` relative to the metadata file's folder; read with a bound on rows,
datasets.metadata_files). A caption file that two images could
claim (`a.txt` beside `a.jpg` and `a.png`) goes to each that has no more specific one, with a
warning naming them. A caption file of several lines gives its first non-empty line, as sd-scripts
does without `--enable_wildcard`, with a warning naming the file and the lines not used (joining
them would repeat the trigger word). Every file is decoded by loraforge.datasets.text (BOMs, else
UTF-8, else detected, with a warning). A text file that could hold captions but is not used (no
image of that name, an image whose caption comes from a more specific file, a file that cannot be
read) is listed in `unused` with the reason and warned about, so nothing a user wrote is silently
dropped.
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


def _first_line(name: str, text: str, plan: CaptionPlan) -> str:
    """The first non-empty line of a caption file; the other lines are named in a warning."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text
    plan.warnings.append(
        f"{name} holds {len(lines)} captions, one per line; used the first ({lines[0][:60]!r}) and not the "
        f"other {len(lines) - 1}: give each image one caption, or one line per image in metadata.jsonl"
    )
    return lines[0]


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


def _claimants(name: str, image_set: set[str], by_stem: Mapping[str, list[str]]) -> list[tuple[int, str]]:
    """(specificity, image) of each image a caption file may belong to: 0 for its whole name
    (`a.jpg.txt` -> `a.jpg`), 1 for its name without extension (`a.txt` -> `a.jpg`, `a.png`)."""
    key = caption_key(name)
    whole = [(0, key)] if key in image_set else []
    return whole + [(1, image) for image in by_stem.get(key, []) if image != key]


def _pair_files(files: Mapping[str, Path], images: list[str], plan: CaptionPlan) -> dict[str, str]:
    """image -> its caption file among the `.txt`/`.caption` files; the rest unused, by name."""
    image_set = set(images)
    by_stem: dict[str, list[str]] = {}
    for image in images:
        by_stem.setdefault(caption_key(image), []).append(image)
    candidates: dict[str, list[tuple[int, int, str]]] = {}
    claimants: dict[str, list[str]] = {}
    for name in sorted(files):
        path = PurePosixPath(name)
        if path.suffix.lower() not in CAPTION_SUFFIXES or path.name.lower() in METADATA_NAMES:
            continue
        claims = _claimants(name, image_set, by_stem)
        claimants[name] = [image for _, image in claims]
        if not claims:
            stem = PurePosixPath(caption_key(name)).name
            plan.unused.append((name, "caption file with no image of the same name"))
            plan.warnings.append(f"{name} was not used: no image is named {stem!r} or {stem + '.*'!r}")
        rank = CAPTION_SUFFIXES.index(path.suffix.lower())
        for specificity, image in claims:
            candidates.setdefault(image, []).append((specificity, rank, name))
    chosen = {image: min(options)[2] for image, options in candidates.items()}
    takers: dict[str, list[str]] = {}
    for image, name in sorted(chosen.items()):
        takers.setdefault(name, []).append(image)
    for name, images_of in claimants.items():
        if not images_of:
            continue
        if name not in takers:
            taken = ", ".join(f"{image} takes its caption from {chosen[image]}" for image in images_of)
            plan.unused.append((name, taken))
            plan.warnings.append(f"{name} was not used: {taken}")
        elif len(takers[name]) > 1:
            plan.warnings.append(
                f"{name} is the caption of {len(takers[name])} images ({', '.join(takers[name])}), which share "
                f"its name; name a caption after each image's whole file name ({takers[name][0]}.txt) to "
                "tell them apart"
            )
    return chosen


def find_captions(files: Mapping[str, Path], images: list[str]) -> CaptionPlan:
    """Each image's caption from the dataset's caption files (see the module doc); the rest unused.

    Never raises for what a file holds: every problem is a warning in the plan, naming the file.
    """
    plan = CaptionPlan()
    image_set = set(images)
    from_metadata: dict[str, FoundCaption] = {}
    for name in sorted(files):
        if PurePosixPath(name).name.lower() in METADATA_NAMES:
            for image, found in _metadata(name, files[name], image_set, plan).items():
                from_metadata.setdefault(image, found)
    chosen = _pair_files(files, images, plan)
    texts: dict[str, str | None] = {}
    for image in images:
        file = chosen.get(image)
        if file is not None:
            if file not in texts:  # a file shared by several images is read (and warned about) once
                text = _read(file, files[file], MAX_CAPTION_FILE_BYTES, plan)
                texts[file] = _first_line(file, text, plan) if text is not None else None
            if texts[file] is not None:
                suffix = PurePosixPath(file).suffix.lower().lstrip(".")
                plan.captions[image] = FoundCaption(texts[file] or "", suffix, file)
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

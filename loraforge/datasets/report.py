"""The dataset report and the dataset hash.

`DatasetReport` collects what happened to every file: images kept (original and final size,
bucket, caption and where it came from, the face box when face_crop found one), images dropped
and why, entries ignored, and warnings (the first 1000 and their total, datasets.warning_log).
`write` saves it as JSON atomically (temporary name, then rename), so a report on disk is always
complete, and never larger than MAX_REPORT_BYTES (16 MiB): past it, the lists are cut and
`truncated` says so; `read_report` refuses a file over that cap before reading it, so no process
reads an unbounded report into memory. `DatasetDigest` hashes the processed
inputs (names, captions, buckets, pixels) in name order: identical data gives the identical
hash on every run, and any change to an image or caption changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from loraforge.datasets.warning_log import WarningLog
from loraforge.textsafe import shown

REPORT_NAME = "dataset_report.json"
# Within the caps a report stays far below this: 5000 entries with 1 KiB names and 2000-character
# captions, and 1000 warnings of at most 1000 characters, is under 15 MB.
MAX_REPORT_BYTES = 16 * 1024 * 1024


@dataclass
class KeptImage:
    source: str
    image: str
    format: str
    mode: str
    original_size: tuple[int, int]
    oriented_size: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    bucket: tuple[int, int]
    caption: str
    caption_source: str
    caption_file: str | None = None  # the dataset file the caption was read from
    caption_tokens: int | None = None  # as the family's text encoder counts them
    face: tuple[int, int, int, int] | None = None


@dataclass
class DroppedFile:
    source: str
    reason: str
    os_junk: bool = False  # __MACOSX, .DS_Store, Thumbs.db: listed, never warned about


@dataclass
class DatasetReport:
    source: str
    trigger_word: str
    instance_prompt: str | None
    resolution: int
    face_crop: bool
    auto_caption: bool
    min_images: int
    kept: list[KeptImage] = field(default_factory=list)
    dropped: list[DroppedFile] = field(default_factory=list)
    ignored: list[DroppedFile] = field(default_factory=list)
    warnings: WarningLog = field(default_factory=WarningLog)
    dataset_sha256: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        data["warnings_total"] = self.warnings.total
        for key in ("dropped", "ignored"):  # `os_junk` only where it is true
            data[key] = [{k: v for k, v in entry.items() if k != "os_junk" or v} for entry in data[key]]
        buckets: dict[str, int] = {}
        for item in self.kept:
            key = f"{item.bucket[0]}x{item.bucket[1]}"
            buckets[key] = buckets.get(key, 0) + 1
        data["buckets"] = dict(sorted(buckets.items()))
        data["counts"] = {
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "ignored": len(self.ignored),
        }
        return data

    def write(self, path: Path, max_bytes: int = MAX_REPORT_BYTES) -> Path:
        """Save the report as JSON at `path`, at most `max_bytes` bytes (lists cut past that)."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(_bounded_json(self.to_json(), max_bytes))
        os.replace(tmp, path)
        return path


def _bounded_json(data: dict[str, Any], max_bytes: int) -> bytes:
    """`data` as indented JSON; over `max_bytes`, its lists halved until it fits (counts stay whole)."""
    lists = ("kept", "dropped", "ignored", "warnings")
    while True:
        encoded = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        if len(encoded) <= max_bytes:
            return encoded
        longest = max(lists, key=lambda key: len(data[key]))
        if not data[longest]:  # nothing left to cut: the scalars alone are too big (never within the caps)
            return json.dumps({"error": data.get("error"), "counts": data.get("counts"), "truncated": True}
                              ).encode("utf-8")
        data = {**data, longest: data[longest][: len(data[longest]) // 2], "truncated": True}


class ReportTooLarge(Exception):
    """A report file over MAX_REPORT_BYTES: not read (our writer never makes one)."""


def read_report(path: Path, max_bytes: int = MAX_REPORT_BYTES) -> dict[str, Any]:
    """The report at `path` as a dict; ReportTooLarge if the file is over `max_bytes`, checked
    while reading (never more than `max_bytes` + 1 bytes are read); OSError from reading it,
    ValueError if it is not JSON, TypeError if it is JSON but not an object."""
    with open(path, "rb") as fp:
        data = fp.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ReportTooLarge(f"{path.name} is over {max_bytes} bytes")
    report = json.loads(data)
    if not isinstance(report, dict):
        raise TypeError(f"{path.name} does not hold a JSON object")
    return report


SUMMARY_LIST_MAX = 100  # files and warnings listed in a summary; the counts are always whole


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report (`DatasetReport.to_json()`) a job's details show, lists capped.

    Keys: images_used, dropped and not_used (each `{file, reason}`; OS junk only counted, in
    os_junk_skipped), caption_sources (source -> images), buckets ("WxH" -> images), warnings,
    counts, and error when the dataset was refused.
    """
    kept = report.get("kept", [])
    sources: dict[str, int] = {}
    for item in kept:
        sources[item["caption_source"]] = sources.get(item["caption_source"], 0) + 1
    ignored = report.get("ignored", [])
    user_files = [d for d in ignored if not d.get("os_junk")]
    dropped = report.get("dropped", [])
    warnings = report.get("warnings", [])
    return {
        "images_used": len(kept),
        "dropped": [{"file": shown(d["source"]), "reason": d["reason"]} for d in dropped[:SUMMARY_LIST_MAX]],
        "not_used": [{"file": shown(d["source"]), "reason": d["reason"]} for d in user_files[:SUMMARY_LIST_MAX]],
        "os_junk_skipped": len(ignored) - len(user_files),
        "caption_sources": dict(sorted(sources.items())),
        "buckets": report.get("buckets", {}),
        "warnings": warnings[:SUMMARY_LIST_MAX],
        "counts": {"images_used": len(kept), "dropped": len(dropped), "not_used": len(user_files),
                   "warnings": report.get("warnings_total", len(warnings))},
        "error": report.get("error"),
    }


def counts_line(summary: dict[str, Any]) -> str:
    """`dataset: 3 images used, 2 dropped, 1 file not used, 4 warnings; captions: 2 txt, 1 instance_prompt`."""
    counts = summary["counts"]
    captions = ", ".join(f"{n} {source}" for source, n in summary["caption_sources"].items()) or "none"
    return (f"dataset: {_count(counts['images_used'], 'image')} used, {counts['dropped']} dropped, "
            f"{_count(counts['not_used'], 'file')} not used, {_count(counts['warnings'], 'warning')}; "
            f"captions: {captions}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class DatasetDigest:
    """Running sha256 over processed items, fed in a stable order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, source: str, caption: str, bucket: tuple[int, int], image: Image.Image) -> None:
        header = json.dumps([source, caption, list(bucket), image.mode], ensure_ascii=False)
        self._hash.update(header.encode("utf-8") + b"\0")
        self._hash.update(hashlib.sha256(image.tobytes()).digest())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

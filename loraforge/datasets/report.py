"""The dataset report and the dataset hash.

`DatasetReport` collects what happened to every file: images kept (original and final size,
bucket, caption and where it came from, the face box when face_crop found one), images dropped
and why, entries ignored, and warnings. `write` saves it as JSON atomically (temporary name,
then rename), so a report on disk is always complete. `DatasetDigest` hashes the processed
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

REPORT_NAME = "dataset_report.json"


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
    warnings: list[str] = field(default_factory=list)
    dataset_sha256: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
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

    def write(self, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


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
        "dropped": [{"file": d["source"], "reason": d["reason"]} for d in dropped[:SUMMARY_LIST_MAX]],
        "not_used": [{"file": d["source"], "reason": d["reason"]} for d in user_files[:SUMMARY_LIST_MAX]],
        "os_junk_skipped": len(ignored) - len(user_files),
        "caption_sources": dict(sorted(sources.items())),
        "buckets": report.get("buckets", {}),
        "warnings": warnings[:SUMMARY_LIST_MAX],
        "counts": {"images_used": len(kept), "dropped": len(dropped), "not_used": len(user_files),
                   "warnings": len(warnings)},
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

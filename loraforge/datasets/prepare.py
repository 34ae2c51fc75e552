"""`prepare_dataset`: from a user's ZIP or folder to cropped, captioned, bucketed training images.

This is the one entry point the training engine and the worker call. It gathers the files
(extracting a ZIP safely), decodes and checks every image, drops unusable ones with a reason,
picks each image's aspect-ratio bucket, crops (around the largest face when face_crop is on) and
resizes it to that bucket, saves it as RGB PNG under `work_dir/images`, chooses its caption
(always containing the trigger word), and writes `work_dir/dataset_report.json`. The images
folder appears only when the whole dataset succeeded, so a half-prepared folder never looks
complete.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from loraforge.datasets.buckets import Size, center_box, fit_to_bucket, make_buckets, nearest_bucket
from loraforge.datasets.caption_files import find_captions
from loraforge.datasets.captions import Captioner, choose_caption
from loraforge.datasets.face_crop import FaceFinder, face_box
from loraforge.datasets.images import ImageRejected, load_image
from loraforge.datasets.limits import DatasetLimits
from loraforge.datasets.report import REPORT_NAME, DatasetDigest, DatasetReport, DroppedFile, KeptImage
from loraforge.datasets.sources import gather_files, is_image_name, is_os_junk
from loraforge.errors import DatasetError, ValidationError
from loraforge.textsafe import shown

logger = logging.getLogger(__name__)

DEFAULT_MIN_IMAGES = 2
IMAGES_DIR = "images"


@dataclass(frozen=True)
class DatasetItem:
    """One training example: a processed RGB PNG of exactly `bucket` size, and its caption."""

    image_path: Path
    caption: str
    bucket: Size
    source_name: str


@dataclass(frozen=True)
class PreparedDataset:
    """The result of prepare_dataset; `buckets` groups the items by training size."""

    items: tuple[DatasetItem, ...]
    warnings: tuple[str, ...]
    report_path: Path
    dataset_sha256: str
    resolution: int
    trigger_word: str

    @property
    def buckets(self) -> dict[Size, tuple[DatasetItem, ...]]:
        groups: dict[Size, list[DatasetItem]] = {}
        for item in self.items:
            groups.setdefault(item.bucket, []).append(item)
        return {bucket: tuple(items) for bucket, items in sorted(groups.items())}


def _check_arguments(trigger_word: str, resolution: int, min_images: int) -> str:
    trigger = trigger_word.strip() if isinstance(trigger_word, str) else ""
    if not trigger:
        raise ValidationError("trigger_word must not be empty: it is the word that calls up the LoRA")
    if not isinstance(resolution, int) or resolution < 16 or resolution > 4096 or resolution % 16:
        raise ValidationError(f"resolution must be a multiple of 16 between 16 and 4096, got {resolution!r}")
    if min_images < 1:
        raise ValidationError(f"min_images must be at least 1, got {min_images!r}")
    return trigger


def _output_name(index: int, source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(source).stem).strip("._")[:60]
    return f"{index:04d}-{stem or 'image'}.png"


def _too_few_message(report: DatasetReport, found: int, min_images: int) -> str:
    if found == 0:
        listed = "; ".join(f"{shown(d.source)}: {d.reason}" for d in report.ignored[:5])
        more = f" and {len(report.ignored) - 5} more" if len(report.ignored) > 5 else ""
        ignored = len(report.ignored)
        verb = "entry was" if ignored == 1 else "entries were"
        others = f"; {ignored} other {verb} ignored ({listed}{more})" if listed else ""
        return f"the dataset holds no images (.jpg, .jpeg, .png, .webp, .heic, .heif or .avif){others}; add at least {min_images}"
    dropped = "; ".join(f"{shown(d.source)}: {d.reason}" for d in report.dropped[:10])
    more = f" (and {len(report.dropped) - 10} more)" if len(report.dropped) > 10 else ""
    why = f" ({dropped}{more})" if dropped else ""
    # Skipped files may be the photos the user counted on (an unsupported format, say): name them.
    skipped = [d for d in report.ignored if not d.os_junk]
    listed = "; ".join(f"{shown(d.source)}: {d.reason}" for d in skipped[:10])
    more_skipped = f" (and {len(skipped) - 10} more)" if len(skipped) > 10 else ""
    also = f"; not used: {listed}{more_skipped}" if listed else ""
    return (
        f"the dataset has {len(report.kept)} usable image{'' if len(report.kept) == 1 else 's'} "
        f"but needs at least {min_images}: "
        f"found {found}, dropped {len(report.dropped)}{why}{also}; add more JPEG, PNG, WEBP, HEIC or AVIF images "
        "or replace the broken ones"
    )


def _omitted(report: DatasetReport) -> tuple[str, ...]:
    omitted = report.warnings.omitted
    return (f"and {omitted} more warnings, counted in {REPORT_NAME}",) if omitted else ()


def _batch_warning(batch_size: int, images: int) -> str:
    # Training draws each batch from one bucket with replacement (training.engine), so it runs,
    # but a step then sees the same image several times: say so rather than refuse.
    return (f"batch_size {batch_size} is more than the {images} usable images: every step repeats images "
            f"within its batch; set batch_size (train_batch_size) to {images} or less, or add images")


def prepare_dataset(
    source: Path,
    work_dir: Path,
    *,
    trigger_word: str,
    instance_prompt: str | None = None,
    resolution: int,
    face_crop: bool = False,
    captioner: Captioner | None = None,
    min_images: int = DEFAULT_MIN_IMAGES,
    limits: DatasetLimits | None = None,
    count_tokens: Callable[[str], int] | None = None,
    token_limit: tuple[int, str] | None = None,
    batch_size: int = 1,
) -> PreparedDataset:
    """Prepare `source` (a .zip or a folder) for training in `work_dir`; DatasetError if unusable.

    With `count_tokens` and `token_limit` (tokens, whose: `(128, "FAST_FLUX")`), each caption's
    token count goes into the report and a caption over the limit gets a warning naming the image.
    A `batch_size` (images per training step) over the usable images gets a warning too.
    """
    trigger = _check_arguments(trigger_word, resolution, min_images)
    limits = limits or DatasetLimits()
    source, work_dir = Path(source), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = DatasetReport(
        source=source.name,
        trigger_word=trigger,
        instance_prompt=instance_prompt,
        resolution=resolution,
        face_crop=face_crop,
        auto_caption=captioner is not None,
        min_images=min_images,
    )
    report_path = work_dir / REPORT_NAME
    images_dir = work_dir / IMAGES_DIR
    if source.resolve().is_relative_to(images_dir.resolve()):
        raise ValidationError(f"the dataset {str(source)!r} must not lie inside {str(images_dir)!r}")
    # A previous run's output must not outlive a failing re-run and pass for its result.
    report_path.unlink(missing_ok=True)
    shutil.rmtree(images_dir, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=work_dir))
    staging = Path(tempfile.mkdtemp(prefix=".images-", dir=work_dir))
    try:
        gathered = gather_files(source, scratch, work_dir, limits)
        report.ignored = [DroppedFile(name, reason, is_os_junk(name)) for name, reason in gathered.ignored]
        report.warnings += [f"{shown(d.source)} was not used: {d.reason}" for d in report.ignored if not d.os_junk]
        if gathered.name_encoding:
            report.warnings.append(f"the archive's file names are not marked UTF-8; read them as "
                                   f"{gathered.name_encoding}")
        names = sorted(name for name in gathered.files if is_image_name(name))
        captions = find_captions(gathered.files, names)
        report.ignored += [DroppedFile(name, reason) for name, reason in captions.unused]
        report.warnings += captions.warnings
        finder = FaceFinder() if face_crop else None
        buckets = make_buckets(resolution)
        min_side = max(1, resolution // 4)
        digest = DatasetDigest()
        items: list[DatasetItem] = []
        for name in names:
            try:
                loaded = load_image(gathered.files[name], max_pixels=limits.max_image_pixels)
                if min(loaded.image.size) < min_side:
                    raise ImageRejected(
                        f"too small ({loaded.image.width}x{loaded.image.height}); the short side "
                        f"needs at least {min_side} px at resolution {resolution}"
                    )
            except ImageRejected as exc:
                report.dropped.append(DroppedFile(name, exc.reason))
                report.warnings.append(f"{shown(name)} was dropped: {exc.reason}")
                continue
            image = loaded.image
            report.warnings.extend(f"{shown(name)}: {note}" for note in loaded.notes)
            bucket = nearest_bucket(image.size, buckets)
            face = finder.largest_face(image) if finder is not None else None
            if finder is not None and face is None:
                report.warnings.append(f"{shown(name)}: no face found for face_crop; used a centre crop")
            box = face_box(face, image.size, bucket) if face else center_box(image.size, bucket)
            processed = fit_to_bucket(image, bucket, box)
            found = captions.captions.get(name)
            caption, caption_source = choose_caption(
                found=found,
                image=processed,
                captioner=captioner,
                instance_prompt=instance_prompt,
                trigger_word=trigger,
                warnings=report.warnings,
                name=name,
            )
            tokens = count_tokens(caption) if count_tokens is not None else None
            if tokens is not None and token_limit is not None and tokens > token_limit[0]:
                report.warnings.append(
                    f"{shown(name)}: its caption is {tokens} tokens; {token_limit[1]} reads {token_limit[0]}, "
                    "the rest is cut off in training"
                )
            out_name = _output_name(len(items), name)
            processed.save(staging / out_name, format="PNG", compress_level=1)
            digest.add(name, caption, bucket, processed)
            items.append(DatasetItem(work_dir / IMAGES_DIR / out_name, caption, bucket, name))
            report.kept.append(
                KeptImage(
                    source=name,
                    image=f"{IMAGES_DIR}/{out_name}",
                    format=loaded.format,
                    mode=loaded.mode,
                    original_size=loaded.original_size,
                    oriented_size=image.size,
                    crop_box=box,
                    bucket=bucket,
                    caption=caption,
                    caption_source=caption_source,
                    caption_file=found.file if found is not None and caption_source == found.source else None,
                    caption_tokens=tokens,
                    face=face,
                )
            )
        if len(items) < min_images:
            report.error = _too_few_message(report, len(names), min_images)
            report.write(report_path)
            raise DatasetError(report.error)
        if batch_size > len(items):
            report.warnings.append(_batch_warning(batch_size, len(items)))
        report.dataset_sha256 = digest.hexdigest()
        os.replace(staging, images_dir)
        report.write(report_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "prepared %s: %d images kept, %d dropped, sha256 %s",
        source.name,
        len(items),
        len(report.dropped),
        report.dataset_sha256[:12],
    )
    return PreparedDataset(
        items=tuple(items),
        warnings=tuple(report.warnings) + _omitted(report),
        report_path=report_path,
        dataset_sha256=report.dataset_sha256,
        resolution=resolution,
        trigger_word=trigger,
    )

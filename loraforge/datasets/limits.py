"""Caps that keep a hostile or oversized dataset from exhausting disk, memory or time.

One small frozen dataclass, `DatasetLimits`, passed to `prepare_dataset`; the defaults suit a
LoRA dataset of a few dozen to a few hundred photos. ZIP caps are checked against the declared
sizes in the archive's directory first and again against the bytes actually written while
streaming, so a header that lies cannot get past them.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class DatasetLimits:
    """Size, count and ratio caps for one dataset (archive or folder)."""

    max_archive_bytes: int = 1024 * MIB
    max_entry_bytes: int = 100 * MIB
    max_total_bytes: int = 2048 * MIB
    max_entries: int = 5000
    # Photos barely compress (JPEG/PNG/WEBP are already compressed), so a high ratio means a bomb.
    max_compression_ratio: float = 100.0
    # Small entries may compress well (a caption of repeated words) without being a threat.
    ratio_check_min_bytes: int = 1 * MIB
    max_image_pixels: int = 50_000_000

"""The tiny random-weight pipelines of every registered family, written as diffusers folders.

Each family builds its own (`loraforge/families/<key>/tiny.py`: the real architecture's shapes
where the code depends on them, a few MB, built locally with no hub) for CPU tests and the
embedded demo. `write_tiny_models(dir)` writes `dir/<tiny_name>` of each family (qwen-image,
flux-dev) atomically (built in a temp folder, then renamed) so a half-written model is never
picked up.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from loraforge.families.registry import FAMILIES

logger = logging.getLogger(__name__)

TINY_NAMES = {f.key: f.tiny_name for f in FAMILIES}


def write_tiny_models(dir: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write `dir/<tiny_name>` of every family; existing complete folders are kept unless overwrite."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for family in FAMILIES:
        name = family.tiny_name
        final = dir / name
        written[family.key] = final
        if (final / "model_index.json").exists() and not overwrite:
            continue
        tiny = family.tiny()
        pipe = tiny.build_pipeline()
        with tempfile.TemporaryDirectory(dir=dir, prefix=f".{name}-") as tmp:
            staged = Path(tmp) / name
            pipe.save_pretrained(staged)
            tiny.write_extras(staged, pipe)
            if final.exists():
                shutil.rmtree(final)
            staged.rename(final)
        logger.info("wrote tiny %s model to %s", family.key, final)
    return written

"""Captions for dataset images, each of which contains the trigger word.

The order of preference is: a same-name `.txt` beside the image (`dir/a.jpg` and `dir/a.txt`,
any extension case), then the captioner when auto-captioning is on, then the instance prompt,
then the trigger word alone. `with_trigger` prepends the trigger word when a caption lacks it
as a whole word, so the LoRA always learns to respond to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from PIL import Image

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 2000
Captioner = Callable[[Image.Image], str]


def clean(text: str) -> str:
    """One line, single spaces, at most MAX_CAPTION_CHARS characters."""
    return " ".join(text.split())[:MAX_CAPTION_CHARS].strip()


def has_word(caption: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", caption) is not None


def with_trigger(caption: str, trigger_word: str) -> str:
    """`caption` with the trigger word prepended unless it is already there as a word."""
    caption = clean(caption)
    if not caption:
        return trigger_word
    if has_word(caption, trigger_word):
        return caption
    return f"{trigger_word}, {caption}"


def caption_key(name: str) -> str:
    """The key pairing `dir/a.JPG` with `dir/a.txt`: the path without its suffix."""
    return str(PurePosixPath(name).with_suffix(""))


def caption_files(files: Mapping[str, Path]) -> dict[str, Path]:
    """The `.txt` files among a dataset's files, keyed by caption_key."""
    return {
        caption_key(name): path
        for name, path in files.items()
        if PurePosixPath(name).suffix.lower() == ".txt"
    }


def read_caption_file(path: Path) -> str:
    """A caption file's text; a BOM is dropped and undecodable bytes replaced, never fatal."""
    return clean(path.read_bytes()[: MAX_CAPTION_CHARS * 4].decode("utf-8-sig", errors="replace"))


def choose_caption(
    *,
    caption_file: Path | None,
    image: Image.Image,
    captioner: Captioner | None,
    instance_prompt: str | None,
    trigger_word: str,
    warnings: list[str],
    name: str,
) -> tuple[str, str]:
    """The caption for one image and where it came from (txt, captioner, instance_prompt, trigger_word)."""
    if caption_file is not None:
        text = read_caption_file(caption_file)
        if text:
            return with_trigger(text, trigger_word), "txt"
        warnings.append(f"{name}: its caption file is empty; using the default caption")
    if captioner is not None:
        try:
            text = clean(captioner(image))
        except Exception as exc:  # noqa: BLE001 - a captioner failing on one image must not end the job
            logger.warning("captioner failed on %s: %s", name, exc)
            warnings.append(f"{name}: auto-captioning failed ({exc}); using the default caption")
            text = ""
        if text:
            return with_trigger(text, trigger_word), "captioner"
    if instance_prompt and clean(instance_prompt):
        return with_trigger(instance_prompt, trigger_word), "instance_prompt"
    return trigger_word, "trigger_word"

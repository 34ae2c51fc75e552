"""Captions for dataset images, each of which contains the trigger word.

The order of preference is: the image's caption file (`.txt`, `.caption` or a metadata row, see
loraforge.datasets.caption_files), then the captioner when auto-captioning is on, then the instance
prompt, then the trigger word alone. `with_trigger` replaces ai-toolkit's `[trigger]` placeholder
with the trigger word, then prepends the trigger word when a caption lacks it as a whole word in any
case (`tok in a red hat` already has `TOK`: adding it again would teach two spellings), so the LoRA
always learns to respond to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from PIL import Image

from loraforge.datasets.caption_files import FoundCaption
from loraforge.datasets.warning_log import WarningLog
from loraforge.textsafe import shown

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 2000
Captioner = Callable[[Image.Image], str]


def clean(text: str) -> str:
    """One line, single spaces, at most MAX_CAPTION_CHARS characters, no U+FFFD or NUL."""
    text = text.replace("\ufffd", " ").replace("\x00", " ")
    return " ".join(text.split())[:MAX_CAPTION_CHARS].strip()


# ai-toolkit's captions name the trigger word by this placeholder, filled in at training time.
TRIGGER_PLACEHOLDER = re.compile(r"\[trigger\]", re.IGNORECASE)


def has_word(caption: str, word: str) -> bool:
    """Whether `word` is in `caption` as a whole word, in any case."""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", caption, re.IGNORECASE) is not None


def with_trigger(caption: str, trigger_word: str) -> str:
    """`caption` with `[trigger]` filled in and the trigger word prepended unless already there as a word."""
    caption = clean(TRIGGER_PLACEHOLDER.sub(lambda _: trigger_word, caption))
    if not caption:
        return trigger_word
    if has_word(caption, trigger_word):
        return caption
    return f"{trigger_word}, {caption}"


def choose_caption(
    *,
    found: FoundCaption | None,
    image: Image.Image,
    captioner: Captioner | None,
    instance_prompt: str | None,
    trigger_word: str,
    warnings: WarningLog | list[str],
    name: str,
) -> tuple[str, str]:
    """The caption for one image and where it came from.

    Sources: txt, caption, metadata (see caption_files), captioner, instance_prompt, trigger_word.
    """
    if found is not None:
        text = clean(found.text)
        if text:
            return with_trigger(text, trigger_word), found.source
        warnings.append(f"{shown(name)}: its caption in {shown(found.file)} is empty; using the default caption")
    if captioner is not None:
        try:
            text = clean(captioner(image))
        except Exception as exc:  # noqa: BLE001 - a captioner failing on one image must not end the job
            logger.warning("captioner failed on %s: %s", name, exc)
            warnings.append(f"{shown(name)}: auto-captioning failed ({exc}); using the default caption")
            text = ""
        if text:
            return with_trigger(text, trigger_word), "captioner"
    if instance_prompt and clean(instance_prompt):
        return with_trigger(instance_prompt, trigger_word), "instance_prompt"
    return trigger_word, "trigger_word"

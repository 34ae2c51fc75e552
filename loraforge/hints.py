"""Naming the field a person meant: unknown keys are refused with "did you mean ...?".

`closest(name, known, synonyms)` picks the intended field: first from `synonyms` (names other
services use for the same thing, e.g. `steps` for `num_inference_steps`, which no string distance
finds), then by difflib's similarity ratio (cutoff 0.6, difflib's default). `check_known` raises
ValidationError for the first unknown key of a request body, naming it and the closest field.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from loraforge.errors import ValidationError


def closest(name: str, known: Iterable[str], synonyms: Mapping[str, str] | None = None) -> str | None:
    choices = sorted(known)
    lowered = name.strip().lower()
    if synonyms and lowered in synonyms:
        return synonyms[lowered]
    matches = difflib.get_close_matches(lowered, [c.lower() for c in choices], n=1, cutoff=0.6)
    if not matches:
        return None
    return next(c for c in choices if c.lower() == matches[0])


def check_known(body: Mapping[str, object], known: Iterable[str], *, prefix: str = "",
                synonyms: Mapping[str, str] | None = None) -> None:
    """Raise ValidationError naming the first key of `body` not in `known` (sorted order)."""
    allowed = set(known)
    for key in sorted(str(k) for k in body):
        if key in allowed:
            continue
        guess = closest(key, allowed, synonyms)
        hint = f"; did you mean {prefix}{guess}?" if guess else f"; the fields are {', '.join(sorted(allowed))}"
        raise ValidationError(f"{prefix}{key}: unknown field{hint}")

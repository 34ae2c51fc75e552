"""Making user-controlled text safe to show: file names and messages in details, the console and logs.

A user chooses the names inside a ZIP (any length, any characters: newlines, ANSI escapes, bidi
overrides), and those names end up in warnings, `error_message`, details and log lines. `escape`
writes every control or format character as a visible escape (`\\n`, `\\x1b`, `\\u202e`), so a name
can neither start a forged log line nor recolour a terminal; `shown` also cuts a name to
MAX_NAME_CHARS (200) characters, keeping its end, where the suffix is (`aaaa…aaa.jpg`); `clip` cuts
a whole message to a length, saying how much was cut. None of them ever raises.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 200
ELLIPSIS = "…"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """`text` with every control (Cc), format (Cf: bidi overrides, zero-width) and line/paragraph
    separator (Zl, Zp) character written as a backslash escape; other text unchanged."""
    if text.isprintable():  # the common case, in C: nothing to escape
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)


def shown(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """A name as messages show it: escaped (see `escape`), at most `limit` characters, the middle
    replaced by `…` when longer, so the start and the suffix stay readable."""
    text = escape(str(name))
    if len(text) <= limit:
        return text
    tail = max(1, limit // 4)
    return text[: limit - tail - 1] + ELLIPSIS + text[-tail:]


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (plus a note of how many were cut)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{ELLIPSIS} ({len(text) - limit} more characters)"

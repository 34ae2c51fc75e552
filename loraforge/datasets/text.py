"""Decoding the text files of a dataset (captions, metadata) whatever encoding they were saved in.

A byte-order mark decides first (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE). Without one, text that is
valid UTF-8 is UTF-8. Anything else is detected with charset-normalizer; among the candidates that
read equally cleanly (the same "chaos" score) the legacy code page most used for that script wins
(`PREFERRED`: Windows-1252 before the Central European and Baltic pages, which read Western text
just as cleanly but wrongly, e.g. `ñ` as `ń`). The caller warns naming the file and the encoding.
Decoded text never holds U+FFFD or NUL: both are removed and reported.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

BOMS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"),
)
# The Windows code pages (and their DOS/ISO siblings) by how much text is saved in them: a tie in
# charset-normalizer's chaos score goes to the first one listed that reads the bytes the same.
PREFERRED = ("cp1252", "cp932", "cp1251", "gb18030", "cp949", "big5", "cp1250", "cp1253", "cp1254",
             "cp1255", "cp1256", "cp1257", "cp1258", "cp874", "cp866", "cp437", "cp850")
TIE = 0.01  # chaos scores closer than this read equally cleanly


@dataclass(frozen=True)
class DecodedText:
    """`text` as read; `encoding` is set when the bytes were not plain UTF-8 (BOM or detection)."""

    text: str
    encoding: str | None = None
    detected: bool = False  # the encoding was guessed, not marked: worth a warning
    removed: int = 0  # U+FFFD and NUL characters dropped


def _clean(text: str) -> tuple[str, int]:
    removed = text.count("\ufffd") + text.count("\x00")
    return text.replace("\ufffd", "").replace("\x00", ""), removed


def detect_encoding(data: bytes, preferred: tuple[str, ...] = PREFERRED,
                    candidates: tuple[str, ...] | None = None) -> str | None:
    """The legacy encoding `data` most likely uses, or None if it is not text.

    Ties in charset-normalizer's chaos score go to the first of `preferred` that reads the bytes
    the same; `candidates` limits the encodings considered (None: all it knows).
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data, cp_isolation=list(candidates) if candidates else None))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least + TIE]
    for name in preferred:
        for match in tied:
            if name in match.could_be_from_charset:
                return name
    return str(tied[0].encoding)


def decode_text(data: bytes) -> DecodedText | None:
    """`data` as text, or None when no encoding reads it as text (a binary file)."""
    for bom, codec, label in BOMS:
        if data.startswith(bom):
            text, removed = _clean(data[len(bom):].decode(codec, errors="replace"))
            return DecodedText(text, None if label == "UTF-8" else label, False, removed)
    try:
        text, removed = _clean(data.decode("utf-8"))
        return DecodedText(text, None, False, removed)
    except UnicodeDecodeError:
        pass
    encoding = detect_encoding(data)
    if encoding is None:
        return None
    text, removed = _clean(data.decode(encoding, errors="replace"))
    return DecodedText(text, encoding, True, removed)

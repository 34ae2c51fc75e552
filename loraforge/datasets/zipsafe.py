"""Safe extraction of a user's dataset ZIP.

Entry names without the UTF-8 flag are read in the archive's own code page (`name_encoding`), so
a photo is never skipped for what a misread name seems to say. `extract_zip` refuses, before
writing anything, archives that are too big, have too many
entries, declare entries or a total that is too large, compress suspiciously well, hold a path
that escapes the destination (`../`, absolute, drive letter) or a symbolic link, or are
encrypted. It then streams the entries the caller wants to disk (the rest are listed with the
caller's reason), counting the bytes really written so that an entry whose header lies about its
size is caught. Every refusal is a DatasetError saying what is wrong and how to fix the archive.
"""

from __future__ import annotations

import logging
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from loraforge.datasets.limits import MIB, DatasetLimits
from loraforge.datasets.text import detect_encoding
from loraforge.errors import DatasetError
from loraforge.textsafe import shown

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MAX_DIRECTORY_ENTRY_BYTES = 1024  # a central directory record with a generous name and extras
# An entry's name: at most MAX_ENTRY_NAME_CHARS characters in all and NAME_MAX (255) bytes of UTF-8
# per folder or file name, what Linux can write; a longer one is skipped with that reason.
MAX_ENTRY_NAME_CHARS = 1024
NAME_MAX = 255
_DRIVE = re.compile(r"^[A-Za-z]:")
# What archivers write unflagged names in: the system's OEM code page (Windows' "Compressed folder",
# DOS-era tools). A tie goes to the first listed: the double-byte pages first, since misreading
# them costs files (their second bytes include 0x5C, a backslash), misreading the others only
# spells a name oddly. CP437 is the ZIP default that zipfile already uses.
OEM_CODE_PAGES = ("cp932", "gb18030", "cp949", "big5", "cp437", "cp850", "cp866", "cp852", "cp857",
                  "cp862", "cp737", "cp775", "cp855", "cp869", "cp874")
DOUBLE_BYTE_PAGES = ("cp932", "gb18030", "cp949", "big5")
_LEAD_THEN_5C = re.compile(rb"[\x81-\xfe]\x5c")  # a lead byte, then a trail byte that is a backslash


@dataclass
class Extraction:
    """What came out of an archive: files written (relative names) and entries skipped, with why."""

    files: dict[str, Path] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    name_encoding: str | None = None  # the legacy code page the names were read in, if not UTF-8


def safe_name(raw: str) -> str:
    """The entry's name as a clean relative POSIX path; DatasetError if it could escape."""
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise DatasetError(f"ZIP entry '{shown(raw)}' has a NUL byte in its name; re-create the archive")
    if name.startswith("/") or _DRIVE.match(name):
        raise DatasetError(
            f"ZIP entry '{shown(raw)}' has an absolute path; re-create the archive with relative paths"
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(
            f"ZIP entry '{shown(raw)}' points outside the archive ('..'); re-create the archive "
            "from inside the image folder"
        )
    return "/".join(parts)


def name_too_long(name: str) -> str | None:
    """Why an entry's name is too long to use (see MAX_ENTRY_NAME_CHARS, NAME_MAX), or None."""
    if len(name) > MAX_ENTRY_NAME_CHARS:
        return f"its name is {len(name)} characters long, over the cap of {MAX_ENTRY_NAME_CHARS}"
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in re.split(r"[/\\]", name)), default=0)
    if longest > NAME_MAX:
        return f"a folder or file name in its path is {longest} bytes long, over the cap of {NAME_MAX}"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix tools store the st_mode in the high 16 bits of external_attr.
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_entry(info: zipfile.ZipInfo, name: str, limits: DatasetLimits) -> None:
    if info.flag_bits & 0x1:
        raise DatasetError(f"ZIP entry '{shown(name)}' is password-protected; upload an unencrypted archive")
    if info.file_size > limits.max_entry_bytes:
        raise DatasetError(
            f"ZIP entry '{shown(name)}' is {info.file_size / MIB:.1f} MiB uncompressed, over the "
            f"{limits.max_entry_bytes / MIB:.0f} MiB cap per file; shrink or remove it"
        )
    if info.file_size >= limits.ratio_check_min_bytes and info.file_size > limits.max_compression_ratio * max(
        info.compress_size, 1
    ):
        raise DatasetError(
            f"ZIP entry '{shown(name)}' compresses {info.file_size / max(info.compress_size, 1):.0f}:1, "
            f"over the {limits.max_compression_ratio:.0f}:1 cap; this looks like a ZIP bomb, "
            "not photos"
        )


def _directory_size(archive: Path) -> tuple[int, int] | None:
    """(entry count, central directory bytes) from the end record, read before zipfile parses it.

    zipfile builds an object per entry up front, so a small archive declaring millions of tiny
    entries would exhaust memory before any per-entry check ran.
    """
    with open(archive, "rb") as fp:
        end = fp.seek(0, 2)
        tail_len = min(end, 22 + 65535)  # the end record plus the longest archive comment
        fp.seek(end - tail_len)
        tail = fp.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        _, _, _, entries, cd_size = struct.unpack_from("<HHHHI", tail, at + 4)
        if (
            (entries == 0xFFFF or cd_size == 0xFFFFFFFF)
            and at >= 20
            and tail[at - 20 : at - 16] == b"PK\x06\x07"
        ):
            (zip64_at,) = struct.unpack_from("<Q", tail, at - 20 + 8)
            fp.seek(zip64_at)
            record = fp.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack_from("<QQ", record, 32)
        return entries, cd_size


def _open_archive(archive: Path, limits: DatasetLimits) -> zipfile.ZipFile:
    size = archive.stat().st_size
    if size > limits.max_archive_bytes:
        raise DatasetError(
            f"the archive is {size / MIB:.1f} MiB, over the {limits.max_archive_bytes / MIB:.0f} MiB "
            "cap; upload fewer or smaller images"
        )
    if not zipfile.is_zipfile(archive):
        raise DatasetError(
            f"'{shown(archive.name)}' is not a ZIP archive (or is damaged); upload a .zip file of JPEG, PNG, WEBP, HEIC or AVIF images"
        )
    declared = _directory_size(archive)
    if declared is not None:
        entries, cd_size = declared
        if entries > limits.max_entries:
            raise DatasetError(
                f"the archive has {entries} entries, over the cap of {limits.max_entries}; upload fewer files"
            )
        cap = limits.max_entries * MAX_DIRECTORY_ENTRY_BYTES
        if cd_size > cap:
            raise DatasetError(
                f"the archive's directory of {entries} entries is {cd_size} bytes, over the cap of "
                f"{cap} bytes ({MAX_DIRECTORY_ENTRY_BYTES} an entry): its file names or extra "
                "fields are far too long; re-create it with short names"
            )
    try:
        zf = zipfile.ZipFile(archive)
        encoding = name_encoding(zf)
        if encoding is None:
            return zf
        zf.close()
        return zipfile.ZipFile(archive, metadata_encoding=encoding)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise DatasetError(f"'{shown(archive.name)}' is a corrupt ZIP archive ({exc}); re-create it") from None


def name_encoding(zf: zipfile.ZipFile) -> str | None:
    """The encoding of the entry names not flagged UTF-8; None when they are all ASCII.

    The ZIP format says unflagged names are CP437, but archivers write the system's code page
    (Windows' "Compressed folder" writes Shift-JIS on a Japanese system, whose second bytes include
    0x5C, a backslash in CP437) or UTF-8 without the flag (Info-ZIP, macOS). So: all names valid
    UTF-8 means UTF-8; otherwise the OEM code page is detected once for the whole archive from all
    the unflagged names together (charset-normalizer, see datasets.text), kept only if it reads
    every one of them. A handful of short CJK names can read cleanly in several code pages: the
    tie goes by OEM_CODE_PAGES. Whatever is detected, a 0x5C that follows a double-byte lead byte
    is never read as a path separator: a double-byte page that reads it as part of a character
    wins over one that would split the name there. CP437 when nothing else fits.
    """
    # zipfile decoded unflagged names as CP437, which maps every byte: encoding back is lossless.
    raw = [info.orig_filename.encode("cp437") for info in zf.infolist() if not info.flag_bits & 0x800]
    if all(name.isascii() for name in raw):
        return None
    detected = detect_encoding(b"\n".join(raw), OEM_CODE_PAGES, OEM_CODE_PAGES)
    candidates = ["utf-8", detected] if detected not in (None, "cp437") else ["utf-8"]
    if _split_trail_bytes(raw, detected or "cp437"):
        candidates += [page for page in DOUBLE_BYTE_PAGES if not _split_trail_bytes(raw, page)]
    for candidate in candidates:
        if candidate is not None and _reads_all(raw, candidate):
            return candidate
    return "cp437"


def _reads_all(raw: list[bytes], encoding: str) -> bool:
    try:
        for name in raw:
            name.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _split_trail_bytes(raw: list[bytes], encoding: str) -> bool:
    """Whether reading `raw` in `encoding` turns a 0x5C after a byte >= 0x81 into a backslash."""
    suspect = [name for name in raw if _LEAD_THEN_5C.search(name)]
    if not suspect:
        return False
    if not _reads_all(suspect, encoding):
        return True
    return any(name.decode(encoding).count("\\") >= name.count(b"\\") for name in suspect)


def _plan(
    zf: zipfile.ZipFile, limits: DatasetLimits, skip_reason: Callable[[str], str | None], out: Extraction
) -> list[tuple[zipfile.ZipInfo, str]]:
    """Check every entry's name and header; return the entries to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise DatasetError(
            f"the archive has {len(infos)} entries, over the cap of {limits.max_entries}; upload fewer files"
        )
    chosen: list[tuple[zipfile.ZipInfo, str]] = []
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        too_long = name_too_long(info.filename)
        if too_long:
            out.ignored.append((shown(info.filename), too_long))
            continue
        name = safe_name(info.filename)
        if _is_symlink(info):
            raise DatasetError(
                f"ZIP entry '{shown(info.filename)}' is a symbolic link; re-create the archive without links"
            )
        if info.is_dir() or not name:
            continue
        reason = skip_reason(name)
        if reason is None and name in seen:
            reason = "duplicate name in the archive"
        if reason is not None:
            out.ignored.append((name, reason))
            continue
        _check_entry(info, name, limits)
        declared_total += info.file_size
        if declared_total > limits.max_total_bytes:
            raise DatasetError(
                f"the archive's files add up to more than {limits.max_total_bytes / MIB:.0f} MiB "
                "uncompressed; upload fewer or smaller images"
            )
        seen.add(name)
        chosen.append((info, name))
    compressed_total = sum(info.compress_size for info, _ in chosen)
    # Many entries each just under the per-entry ratio floor add up to a bomb too.
    if declared_total >= limits.ratio_check_min_bytes and declared_total > limits.max_compression_ratio * max(
        compressed_total, 1
    ):
        raise DatasetError(
            f"the archive's files compress {declared_total / max(compressed_total, 1):.0f}:1 taken "
            f"together, over the {limits.max_compression_ratio:.0f}:1 cap; this looks like a ZIP bomb, "
            "not photos"
        )
    return chosen


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, target: Path, budget: int) -> int:
    """Copy one entry to `target`; never writes more than its declared size or `budget` bytes."""
    cap = min(info.file_size, budget)
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > cap:
                    raise DatasetError(
                        f"ZIP entry '{shown(name)}' inflates past the size its header declares; "
                        "the archive is malformed or hostile"
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise DatasetError(
            f"ZIP entry '{shown(name)}' could not be extracted ({exc}); the archive is corrupt or its "
            "headers lie about the sizes: re-create it"
        ) from None
    except OSError as exc:
        raise DatasetError(f"ZIP entry '{shown(name)}' could not be written ({exc.strerror})") from None
    return written


def extract_zip(
    archive: Path, dest: Path, limits: DatasetLimits, skip_reason: Callable[[str], str | None]
) -> Extraction:
    """Check `archive` whole, then extract into `dest` the entries for which skip_reason is None."""
    out = Extraction()
    with _open_archive(archive, limits) as zf:
        encoding: str | None = zf.metadata_encoding  # type: ignore[attr-defined]  # 3.11+, not in typeshed
        out.name_encoding = encoding if encoding != "utf-8" else None
        plan = _plan(zf, limits, skip_reason, out)
        budget = limits.max_total_bytes
        for info, name in plan:
            target = dest.joinpath(*PurePosixPath(name).parts)
            budget -= _stream(zf, info, name, target, budget)
            out.files[name] = target
    logger.info("extracted %d files from %s (%d ignored)", len(out.files), archive.name, len(out.ignored))
    return out

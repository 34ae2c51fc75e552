"""Reading the rows of a Hugging Face `imagefolder` metadata file (metadata.jsonl or metadata.csv),
with a bound on the work a hostile file can cause.

`metadata_rows` yields `(where, row)` pairs (`metadata.jsonl line 3`, its object) lazily, reading at
most MAX_METADATA_ROWS (10,000: twice the 5000 entries a dataset may hold) non-blank lines; past
that it stops with one warning, so a file of millions of bad lines costs one pass over 10,000 of
them, not a warning each (4.2 million one-digit lines once made a 276 MB report). A line that is
not JSON, nested too deep to parse (RecursionError), or not an object is skipped with a warning
naming the file and line; a CSV that breaks the parser (a field over FIELD_LIMIT characters, a NUL)
stops there with a warning naming the file and line, keeping the rows before it. Warnings go to
the caller's list (a datasets.warning_log.WarningLog in practice).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol

from loraforge.textsafe import clip

MAX_METADATA_ROWS = 10_000
# The csv module's own default (131072 characters), stated: a caption is at most 2000 characters
# (datasets.captions), so a field this long is not a caption. Not set with csv.field_size_limit,
# which would change it for the whole process.
FIELD_LIMIT = csv.field_size_limit()


class Warnings(Protocol):
    def append(self, warning: str) -> None: ...


def _jsonl(name: str, text: str, warnings: Warnings) -> Iterator[tuple[str, dict[str, Any]]]:
    lines = (pair for pair in enumerate(io.StringIO(text), start=1) if pair[1].strip())
    for i, line in islice(lines, MAX_METADATA_ROWS):
        try:
            row = json.loads(line)
        except ValueError as exc:
            warnings.append(f"{name} line {i} was skipped: not JSON ({clip(str(exc), 200)})")
            continue
        except RecursionError:
            warnings.append(f"{name} line {i} was skipped: nested too deep to read")
            continue
        if isinstance(row, dict):
            yield f"{name} line {i}", row
        else:
            warnings.append(f"{name} line {i} was skipped: not a JSON object")
    if next(lines, None) is not None:
        warnings.append(f"{name}: only its first {MAX_METADATA_ROWS} lines were read; a dataset holds at "
                        "most 5000 files, so the rest cannot be captions")


def _csv(name: str, text: str, warnings: Warnings) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = reader.fieldnames
        if not {"file_name", "text"} <= set(columns or ()):
            shown_columns = clip(repr(columns), 300)
            warnings.append(f"{name}: needs the columns file_name and text; found {shown_columns}")
            return
        for count, row in enumerate(reader, start=1):
            if count > MAX_METADATA_ROWS:
                warnings.append(f"{name}: only its first {MAX_METADATA_ROWS} rows were read; a dataset "
                                "holds at most 5000 files, so the rest cannot be captions")
                return
            yield f"{name} row {count + 1}", row
    except csv.Error as exc:  # a field over FIELD_LIMIT, a bad quote: the rest is unreadable
        # line_num counts the lines consumed before the one that failed
        warnings.append(f"{name} line {reader.line_num + 1}: could not be read as CSV ({clip(str(exc), 200)}); "
                        "the rows after it were skipped")


def metadata_rows(name: str, text: str, warnings: Warnings) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of the metadata file `name` holding `text` (see the module doc);
    a `.csv` name is read as CSV, any other as JSON lines. Never raises for bad content."""
    if name.lower().endswith(".csv"):
        return _csv(name, text, warnings)
    return _jsonl(name, text, warnings)

"""The warnings of one dataset, counted: the first MAX_WARNINGS kept, every one counted.

A hostile metadata file of millions of bad lines once added a warning per line (a 276 MB report,
1.55 GB in the child). `WarningLog` keeps the first MAX_WARNINGS (1000) warnings, each cut to
MAX_WARNING_CHARS (1000) characters with control characters escaped (loraforge.textsafe), and
counts them all in `total`: memory is bounded whatever the input, and the report still says how
many there were. It behaves as the list it replaces (`append`, `extend`, `+=`, iteration, `len` of
the kept ones); extending by another WarningLog carries that log's uncounted rest over too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Self

from loraforge.textsafe import clip, escape

MAX_WARNINGS = 1000
MAX_WARNING_CHARS = 1000


class WarningLog:
    """At most `limit` warnings kept, in order; `total` counts every warning added."""

    def __init__(self, limit: int = MAX_WARNINGS) -> None:
        self.limit = limit
        self.kept: list[str] = []
        self.total = 0

    def append(self, warning: str) -> None:
        self.total += 1
        if len(self.kept) < self.limit:
            self.kept.append(clip(escape(warning), MAX_WARNING_CHARS))

    def extend(self, warnings: Iterable[str]) -> None:
        for warning in warnings:
            self.append(warning)
        if isinstance(warnings, WarningLog):  # what that log counted but did not keep
            self.total += warnings.total - len(warnings.kept)

    def __iadd__(self, warnings: Iterable[str]) -> Self:
        self.extend(warnings)
        return self

    @property
    def omitted(self) -> int:
        """Warnings counted but not kept."""
        return self.total - len(self.kept)

    def __iter__(self) -> Iterator[str]:
        return iter(self.kept)

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, index: int) -> str:
        return self.kept[index]

    def __deepcopy__(self, memo: dict[int, object]) -> WarningLog:  # dataclasses.asdict copies fields
        copy = WarningLog(self.limit)
        copy.kept, copy.total = list(self.kept), self.total
        return copy

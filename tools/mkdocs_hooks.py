"""mkdocs hooks (mkdocs.yml `hooks:`): `mkdocs build --strict` fails when a generated page is stale.

The pages themselves are written by `make reference` (tools/docs_reference.py), never by the build:
a build that rewrote them would hide a stale page from CI.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.docs_reference import REPO, stale


def on_pre_build(config: object) -> None:
    out_of_date = [str(path.relative_to(REPO)) for path in stale()]
    if out_of_date:
        raise PluginError(f"generated pages out of date: {', '.join(out_of_date)}; run `make reference`")


LIVE_FENCE = re.compile(r"^(\s*```(?:sh|python)) live$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """```sh live marks a block the docs test runs; to the renderer it is a plain ```sh block."""
    return LIVE_FENCE.sub(r"\1", markdown)

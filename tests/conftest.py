"""Shared pytest wiring: each fixture family lives in its own module under tests/fixtures/.

Parallel runs (pytest-xdist, `-n` in pyproject's addopts, `--dist loadgroup`): every test is kept on
one worker with the rest of its module, so that module-scoped fixtures (a database, a running app
and its warm child, a module's own server) are built once; a module whose tests share nothing costly
marks itself `pytestmark = pytest.mark.spread` and its tests go to whichever worker is free.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.databases",  # before backends, which imports it
    "tests.fixtures.backends",
    "tests.fixtures.apps",
    "tests.fixtures.models",
    "tests.fixtures.receiver",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spread: the module's tests may run on different xdist workers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("spread") is None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))

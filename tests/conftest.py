"""Shared pytest wiring: each fixture family lives in its own module under tests/fixtures/.

Parallel runs (pytest-xdist, `-n` and `--dist loadfile` in pyproject's addopts): every test is kept
on one worker with the rest of its module, so that module-scoped fixtures (a database, a running
app and its warm child, a module's own server) are built once.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.databases",  # before backends, which imports it
    "tests.fixtures.backends",
    "tests.fixtures.apps",
    "tests.fixtures.models",
    "tests.fixtures.receiver",
]


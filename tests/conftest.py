"""Shared pytest wiring: each fixture family lives in its own module under tests/fixtures/.

Parallel runs (pytest-xdist, `-n` and `--dist loadfile` in pyproject's addopts): every test is kept
on one worker with the rest of its module, so that module-scoped fixtures (a database, a running
app and its warm child, a module's own server) are built once.
"""

from __future__ import annotations

import os

# One intra-op thread per torch process under test (the workers and every child, server and CLI they
# start inherit it): three xdist workers each training in children on a 2-core machine ran torch's
# default of one thread per core in every process, and OpenMP's spin-waiting threads then burned the
# cores. On this machine the suite went from 22.4 CPU-minutes and 11:25 to 11.5 CPU-minutes and 6:28.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

pytest_plugins = [
    "tests.fixtures.databases",  # before backends, which imports it
    "tests.fixtures.backends",
    "tests.fixtures.apps",
    "tests.fixtures.models",
    "tests.fixtures.receiver",
]


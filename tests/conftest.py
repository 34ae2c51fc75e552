"""Shared pytest wiring: each fixture family lives in its own module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.backends",
    "tests.fixtures.databases",
    "tests.fixtures.apps",
    "tests.fixtures.models",
    "tests.fixtures.receiver",
]

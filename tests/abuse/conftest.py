"""Fixtures shared by the abuse tests: a loopback host serving a dataset ZIP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.datasets_host import ZipHost


@pytest.fixture(scope="module")
def zip_host() -> Iterator[ZipHost]:
    host = ZipHost()
    yield host
    host.stop()

"""Fixtures for tests that need a REAL Prometheus (see ``promfixture.py``).

``prometheus`` is module-scoped: one server per test module, backfilled with the
standard data set (bundled NASA trace slices as counters ending at ``prometheus_end``).
Tests that need other data or scrape targets call ``PrometheusServer.start`` directly.
Without the Debian ``prometheus`` package these tests skip loudly (fail under CI=true).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.promfixture import (
    PrometheusServer,
    aligned_now,
    require_prometheus,
    standard_backfill,
)


@pytest.fixture(scope="module")
def prometheus_end() -> int:
    """Unix time of the last backfilled sample (a whole minute, one minute ago)."""
    return aligned_now(60) - 60


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, prometheus_end: int
) -> Iterator[PrometheusServer]:
    require_prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    server = PrometheusServer.start(workdir, backfill=standard_backfill(prometheus_end))
    try:
        yield server
    finally:
        server.stop()

"""Shared fixtures of the controller tests: one REAL Prometheus for the whole session.

Backfilling the standard data set takes ~10 s (promtool), so the controller, CLI and
fault tests share one server; tests that kill or restart Prometheus start their own.
Tests place their injected clock relative to ``end`` (the last backfilled sample).
Modules that define their own ``end``/``prom`` fixtures override these.
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


@pytest.fixture(scope="session")
def end() -> int:
    """Unix time of the last backfilled sample (a whole minute, one minute ago)."""
    return aligned_now(60) - 60


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory, end: int) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(
        tmp_path_factory.mktemp("prom-controller"), backfill=standard_backfill(end)
    )
    try:
        yield server
    finally:
        server.stop()

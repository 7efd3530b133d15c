"""The named data-edge policies of ``PrometheusSource``, one test each, on REAL data.

The controller's fallback relies on these: "no data" must reach it as NaN / an absent
key (never as 0, which would scale the workload down), stale series must be flagged,
NaN/Inf/negative samples must not become load, an ambiguous query must be refused.
Every case is a real answer from a real Prometheus holding real stored samples
(backfilled gauges with NaN, +Inf and negative values; a series that stopped an hour
ago; a counter that restarts from zero). Policy names follow the table in
``autoscaler/sources/prometheus.py`` and docs/prometheus.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from autoscaler.sources.base import has_data, is_stale
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.settings import PrometheusSettings
from models.errors import InputError, PermanentError
from tests.integration.promfixture import (
    STALE_FOR_S,
    STALE_WORKLOAD,
    PrometheusServer,
    aligned_now,
    require_prometheus,
    standard_backfill,
)

pytestmark = pytest.mark.integration

RATE = "rate(http_requests_total[2m])"
HOUR = 3600


@pytest.fixture(scope="module")
def end() -> int:
    return aligned_now(60) - 60


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, end: int) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(
        tmp_path_factory.mktemp("prom-edges"), backfill=standard_backfill(end)
    )
    try:
        yield server
    finally:
        server.stop()


def make(prometheus: PrometheusServer, **kw: object) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings.model_validate({"url": prometheus.url, **kw}))


def test_empty_result_is_nan_and_absent_never_zero(prometheus: PrometheusServer, end: int) -> None:
    src = make(prometheus)
    one = src.history("sum(rate(no_such_metric_total[2m]))", end - HOUR, end, 60)
    assert len(one) == 61 and one.isna().all() and not has_data(one)
    assert src.history_by("rate(no_such_metric_total[2m])", end - HOUR, end, 60) == {}
    # A real zero stays zero, so the caller can tell "no data" from "no load".
    zero = src.history(
        '0 * sum(rate(http_requests_total{workload="web"}[2m]))', end - HOUR, end, 60
    )
    assert has_data(zero) and (zero.dropna() == 0).all() and zero.notna().all()


def test_gaps_are_nan_not_filled(prometheus: PrometheusServer, end: int) -> None:
    """Before the backfill starts there are no samples: NaN, neither 0 nor held."""
    src = make(prometheus)
    got = src.history_by(RATE, end - 4 * 86_400, end, 60)[("shop", "web")]
    first = got.first_valid_index()
    assert first is not None and first > got.index[0]
    assert got[:first].iloc[:-1].isna().all()


@pytest.mark.parametrize(
    ("case", "positions"),
    [
        pytest.param("nan", [i for i in range(120) if 40 <= i < 50], id="NaN"),
        pytest.param("inf", [i for i in range(120) if i % 30 == 0], id="Inf"),
    ],
)
def test_non_finite_samples_become_missing(
    prometheus: PrometheusServer, end: int, case: str, positions: list[int]
) -> None:
    src = make(prometheus)
    got = src.history(f'edge_load{{case="{case}"}}', end - 119 * 60, end, 60)
    assert len(got) == 120
    assert got.attrs["non_finite"] == len(positions)
    assert np.flatnonzero(got.isna().to_numpy()).tolist() == positions
    assert np.isfinite(got.dropna().to_numpy()).all()


def test_negative_samples_become_missing(prometheus: PrometheusServer, end: int) -> None:
    src = make(prometheus)
    got = src.history('edge_load{case="negative"}', end - 119 * 60, end, 60)
    positions = [i for i in range(120) if i % 25 == 0]
    assert got.attrs["negative"] == len(positions)
    assert np.flatnonzero(got.isna().to_numpy()).tolist() == positions
    assert (got.dropna() > 0).all()


def test_a_finite_gauge_is_untouched(prometheus: PrometheusServer, end: int) -> None:
    got = make(prometheus).history('edge_load{case="finite"}', end - 119 * 60, end, 60)
    assert got.attrs["non_finite"] == 0 and got.attrs["negative"] == 0
    assert got.tolist() == [float(10 + (i % 7)) for i in range(120)]


def test_a_workload_with_only_non_finite_samples_is_absent(
    prometheus: PrometheusServer, end: int
) -> None:
    src = make(prometheus)
    got = src.history_by('edge_load{case="nan"}', end - 79 * 60, end - 70 * 60, 60, by=("case",))
    assert got == {}


def test_several_series_where_one_was_expected(prometheus: PrometheusServer, end: int) -> None:
    query = 'rate(http_requests_total{workload="web"}[2m])'  # two pods
    with pytest.raises(PermanentError, match=r"2 series where one was expected.*pod=\"web-a\""):
        make(prometheus).history(query, end - HOUR, end, 60)
    summed = make(prometheus, multiple_series="sum").history(query, end - HOUR, end, 60)
    biggest = make(prometheus, multiple_series="max").history(query, end - HOUR, end, 60)
    total = make(prometheus).history(f"sum({query})", end - HOUR, end, 60)
    np.testing.assert_allclose(summed.to_numpy(), total.to_numpy(), rtol=1e-12)
    assert summed.attrs["combined"] == 2
    assert (biggest <= summed).all() and (biggest >= summed / 2 - 1e-9).all()


def test_stale_series_is_flagged_and_not_extended(prometheus: PrometheusServer, end: int) -> None:
    got = make(prometheus).history_by(RATE, end - 6 * HOUR, end, 60)
    stale = got[STALE_WORKLOAD]
    assert is_stale(stale)
    last = stale.attrs["last_sample"]
    assert end - STALE_FOR_S <= last <= end - STALE_FOR_S + 300
    assert stale[stale.index > stale.last_valid_index()].isna().all()
    assert not any(is_stale(s) for k, s in got.items() if k != STALE_WORKLOAD)


def test_stale_limit_is_a_setting(prometheus: PrometheusServer, end: int) -> None:
    got = make(prometheus, stale_after_seconds=2 * STALE_FOR_S).history_by(
        RATE, end - 6 * HOUR, end, 60
    )
    assert not is_stale(got[STALE_WORKLOAD])


def test_counter_without_rate_is_refused_or_warned(
    prometheus: PrometheusServer, end: int, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InputError, match="counter"):
        make(prometheus).history_by("http_requests_total", end - HOUR, end, 60)
    warned = make(prometheus, counter_check="warn")
    warned.history_by("http_requests_total", end - HOUR, end, 60)
    assert "looks like a counter" in caplog.text


def test_bad_promql_is_a_permanent_error_with_the_servers_message(
    prometheus: PrometheusServer, end: int
) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 400 bad_data: .*parse error"):
        make(prometheus).history("sum(rate(x[5m]", end - HOUR, end, 60)

"""PARTIAL_SERIES: "fewer series behind the sum" must be told apart from "less load".

Reproduced with a REAL Prometheus (``partial_scrape_backfill``): four pods of shop/web
report 25 req/s each for 6 h, then two of them stop being scraped for the last 4
minutes. The summed rate halves, and every remaining series is fresh, so neither the
STALE nor the PARTIAL (``warnings``) policy sees anything. ``history_by`` therefore
reports, per grouped series and per step, how many input series were behind the sum
(``series.attrs["series_count"]``), from the same single request.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from autoscaler.sources.base import is_stale
from autoscaler.sources.prometheus import AGG_LABEL, PrometheusSource, counted_sum
from autoscaler.sources.settings import PrometheusSettings
from tests.integration.promfixture import (
    PARTIAL_SCRAPE_GAP_S,
    PARTIAL_SCRAPE_INTERVAL_S,
    PARTIAL_SCRAPE_PODS,
    PARTIAL_SCRAPE_RATE_PER_POD,
    PARTIAL_SCRAPE_WORKLOAD,
    PrometheusServer,
    aligned_now,
    partial_scrape_backfill,
    require_prometheus,
)

pytestmark = pytest.mark.integration

RATE = "rate(http_requests_total[2m])"
STEP = PARTIAL_SCRAPE_INTERVAL_S


@pytest.fixture(scope="module")
def end() -> int:
    return aligned_now(60) - 60


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, end: int) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(
        tmp_path_factory.mktemp("prom-partial"), backfill=partial_scrape_backfill(end)
    )
    try:
        yield server
    finally:
        server.stop()


def test_series_count_drops_where_the_sum_halves(prometheus: PrometheusServer, end: int) -> None:
    src = PrometheusSource(PrometheusSettings(url=prometheus.url))
    got = src.history_by(RATE, end - 3600, end, STEP)
    assert src.requests_sent == 1  # load and counts in one round trip
    series = got[PARTIAL_SCRAPE_WORKLOAD]
    assert not is_stale(series)  # every remaining series is fresh: STALE sees nothing
    count = series.attrs["series_count"]
    assert isinstance(count, np.ndarray) and count.shape == (len(series),)
    assert not count.flags.writeable
    full = len(PARTIAL_SCRAPE_PODS) * PARTIAL_SCRAPE_RATE_PER_POD  # 100 req/s
    values = series.to_numpy()
    # Before the two pods stopped: 4 series, 100 req/s.
    before = series.index <= series.index[-1] - np.timedelta64(PARTIAL_SCRAPE_GAP_S, "s")
    assert np.all(count[before] == 4)
    assert np.allclose(values[before], full)
    # Wherever the sum is half, exactly 2 series are behind it, and vice versa.
    half = np.isclose(values, full / 2)
    assert half[-1] and half.sum() >= 6  # the last ~2 minutes
    assert np.array_equal(count == 2, half)
    assert set(np.unique(count).tolist()) == {2.0, 4.0}  # no NaN: every step has data
    # The drop is one step: 4 then 2 at the first halved step.
    first = int(np.flatnonzero(half)[0])
    assert count[first - 1] == 4 and np.all(count[first:] == 2)


def test_counts_are_nan_where_there_is_no_data(prometheus: PrometheusServer, end: int) -> None:
    """Steps without any input series: the sum is NaN and the count unknown (NaN)."""
    src = PrometheusSource(PrometheusSettings(url=prometheus.url))
    start = end - 7 * 3600  # the data begins 6 h before end
    got = src.history_by(RATE, start, end, 60)[PARTIAL_SCRAPE_WORKLOAD]
    count = got.attrs["series_count"]
    assert np.array_equal(np.isnan(count), got.isna().to_numpy())
    assert np.isnan(count[0]) and count[-1] == 2


def test_count_is_per_group_and_by_other_labels(prometheus: PrometheusServer, end: int) -> None:
    src = PrometheusSource(PrometheusSettings(url=prometheus.url))
    by_pod = src.history_by(RATE, end - 600, end, STEP, by=("pod",))
    assert set(by_pod) == {(p,) for p in PARTIAL_SCRAPE_PODS}
    assert all(np.nanmax(s.attrs["series_count"]) == 1 for s in by_pod.values())
    total = src.history_by(RATE, end - 600, end, STEP, by=())
    assert set(total) == {()}
    assert total[()].attrs["series_count"][-1] == 2
    assert AGG_LABEL not in "".join(k for key in total for k in key)


def test_the_expression_sent() -> None:
    assert counted_sum("rate(x_total[2m])", ("namespace", "workload")) == (
        "sum by (namespace, workload) (rate(x_total[2m])) or label_replace(count by "
        '(namespace, workload) (rate(x_total[2m])), "__autoscaler_agg__", "count", "", "")'
    )

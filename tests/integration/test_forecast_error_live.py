"""The forecast error is exported on a clock that runs like a live one.

The operator's problem: ``autoscaler_forecast_error_ratio`` never appeared on a running
controller. A forecast made at ``t`` for ``(t, t + lead]`` falls due at ``t + lead``,
but on a live clock the samples of that window arrive a scrape or two later (a sample
stamped ``s`` is in Prometheus at ``s + lag``). The loop used to pop every due forecast
and discard it when the newest sample did not reach its due time yet, which on a live
clock is always the case; the old unit test passed only because its simulated clock
ran hours behind the data, where every window is already observed.

Here the clock and the data run together: a REAL Prometheus holds the load (the
standard backfill), and the source only shows samples stamped at least ``lag`` seconds
before the controller's clock (``LaggingSource``), as a live Prometheus would. The
controller ticks every 15 s on a ``SimClock`` for 15 minutes. Every forecast whose
window the samples have covered must be scored, so after each tick the gauge holds the
score of the newest covered forecast, computed here independently from the data.

Also here: the forecast is exported at the median (``quantile="0.5"``) beside the risk
quantile (the dashboard's band), and the clamps counter carries the environment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from autoscaler.clock import Clock
from autoscaler.controller import Controller
from autoscaler.kube.cluster import StaticCluster
from autoscaler.ledger_store import LedgerStore
from autoscaler.metrics import ControllerMetrics
from autoscaler.settings import load_settings
from autoscaler.sources.base import DEFAULT_BY, TimeLike
from autoscaler.sources.prometheus import PrometheusSource, to_unix
from autoscaler.store import DecisionStore
from models.common import unix_seconds
from simulations.clock import SimClock
from tests.controller.test_controller import QUERY, budget_doc, deployment, pa_doc
from tests.integration.promfixture import PrometheusServer

STEP = 60
SYNC = 15.0
LEAD = 120.0
#: the loop's stale limit, and so how long an uncovered forecast may wait.
STALE = 300.0


class LaggingSource:
    """A ``MetricSource`` over a real Prometheus whose samples arrive ``lag`` seconds
    after their stamp: a step newer than ``clock.now() - lag`` is missing (NaN)."""

    def __init__(self, inner: PrometheusSource, clock: Clock, lag: float) -> None:
        self.inner = inner
        self.clock = clock
        self.lag = lag

    def _hide_future(self, series: pd.Series) -> pd.Series:
        visible = self.clock.now() - self.lag
        return series.where(unix_seconds(series.index) <= visible)

    def history(self, query: str, start: TimeLike, end: TimeLike, step: float) -> pd.Series:
        return self._hide_future(self.inner.history(query, start, end, step))

    def history_by(
        self,
        query: str,
        start: TimeLike,
        end: TimeLike,
        step: float,
        by: Sequence[str] = DEFAULT_BY,
    ) -> dict[tuple[str, ...], pd.Series]:
        answer = self.inner.history_by(query, start, end, step, by)
        return {key: self._hide_future(series) for key, series in answer.items()}


def controller(
    prom: PrometheusServer,
    tmp_path: Path,
    docs: list[dict[str, Any]],
    start: float,
    lag: float,
) -> tuple[Controller, SimClock, PrometheusSource]:
    settings = load_settings(
        None,
        prometheus={"url": prom.url, "step_seconds": STEP, "backfill_seconds": 6 * 3600},
        loop={"stale_after_seconds": STALE, "sync_seconds": SYNC},
        ledger={"path": tmp_path / "ledger.json"},
        shadow={"path": tmp_path / "shadow.jsonl"},
    )
    clock = SimClock(start)
    inner = PrometheusSource(settings.prometheus)
    ctl = Controller(
        settings,
        LaggingSource(inner, clock, lag),
        StaticCluster.from_documents(docs),
        DecisionStore(),
        clock,
        ControllerMetrics(),
        LedgerStore(settings.ledger.path),
    )
    return ctl, clock, inner


@pytest.mark.parametrize("lag", [30.0, 90.0], ids=["lag-half-a-step", "lag-a-step-and-a-half"])
def test_forecast_error_is_exported_on_a_live_clock(
    prometheus: PrometheusServer, prometheus_end: int, tmp_path: Path, lag: float
) -> None:
    docs = [pa_doc("shop", "web", leadTimeSeconds=LEAD), deployment("shop", "web", 3)]
    # 7 s past a step: no forecast falls due exactly on a sample's stamp.
    start = prometheus_end - 2 * 3600 + 7
    ctl, clock, inner = controller(prometheus, tmp_path, docs, start, lag)
    labels = {"namespace": "shop", "workload": "web"}
    forecasts: list[tuple[float, float, float]] = []  # (made, due, forecast)
    ticks = 60  # 15 minutes at 15 s
    seen: list[tuple[float, float | None]] = []
    for _ in range(ticks):
        report = ctl.reconcile()
        r = report.by_key()["shop/web"]
        assert not r.decision.fallback, r.decision.reason
        assert r.forecast_load is not None and r.forecast_load > 0
        forecasts.append((r.decision.time, r.decision.time + LEAD, r.forecast_load))
        value = ctl.metrics.registry.get_sample_value("autoscaler_forecast_error_ratio", labels)
        seen.append((clock.now(), value))
        clock.sleep(SYNC)
    # The truth: the same query over the whole run, every sample as it finally is.
    truth = inner.history_by(QUERY, start - 3600, clock.now(), STEP)[("shop", "web")]
    stamps = unix_seconds(truth.index)
    values = truth.to_numpy(dtype=float)

    def expected(now: float) -> float | None:
        """The score of the newest forecast whose window the samples cover at ``now``."""
        newest = math.floor((now - lag) / STEP) * STEP  # the newest sample in by now
        best = None
        for made, due, forecast in forecasts:
            if made > now or due > now or newest + STEP < due:
                continue
            window = values[(stamps > made) & (stamps <= due) & (stamps <= newest)]
            window = window[~pd.isna(window)]
            if window.size:
                best = (float(window.max()) - forecast) / forecast
        return best

    first = next((t for t, v in seen if v is not None), None)
    assert first is not None, (
        f"autoscaler_forecast_error_ratio never exported in {ticks} ticks with samples"
        f" arriving {lag:g} s after their stamp"
    )
    # Scored as soon as the samples cover the first window: a lead time, the lag and
    # at most a step and a tick later.
    assert first - start <= LEAD + lag + STEP + SYNC, first - start
    # After every tick, the gauge holds the newest covered forecast's score: none of
    # them was dropped for being due before its samples arrived.
    mismatches = [
        (t - start, v, expected(t))
        for t, v in seen
        if t >= first and (v is None or v != pytest.approx(expected(t), rel=1e-9))
    ]
    assert not mismatches, mismatches[:5]
    distinct = {v for _, v in seen if v is not None}
    assert len(distinct) >= (ticks * SYNC - (first - start)) / STEP - 1, "scored too seldom"


def test_forecast_exported_at_the_median_and_the_risk_quantile(
    prometheus: PrometheusServer, prometheus_end: int, tmp_path: Path
) -> None:
    """The dashboard's band runs from q0.5 to the risk quantile: both are exported."""
    docs = [pa_doc("shop", "web", riskQuantile=0.95), deployment("shop", "web", 3)]
    ctl, _, _ = controller(prometheus, tmp_path, docs, prometheus_end + 30, lag=0.0)
    r = ctl.reconcile().by_key()["shop/web"]
    assert r.decision.forecast is not None
    get = ctl.metrics.registry.get_sample_value
    labels = {"namespace": "shop", "workload": "web"}
    median = get("autoscaler_forecast_load", {**labels, "quantile": "0.5"})
    upper = get("autoscaler_forecast_load", {**labels, "quantile": "0.95"})
    assert median == pytest.approx(r.decision.forecast.quantile(0.5))
    assert upper == pytest.approx(r.forecast_load)
    assert median is not None and upper is not None and median <= upper


def test_clamps_carry_the_environment(
    prometheus: PrometheusServer, prometheus_end: int, tmp_path: Path
) -> None:
    """Budget clamps are counted under the CostBudget's name; a workload no budget
    covers under ``environment="none"`` (the budgets dashboard filters on it)."""
    docs = [
        pa_doc("shop", "web", capacityPerReplica=0.2),
        deployment("shop", "web", 3, cpu="1"),
        pa_doc("blog", "front", minReplicas=150),
        deployment("blog", "front", 3),
        budget_doc("shop-prod", ["shop"], hourly=0.04),  # about one replica
    ]
    ctl, _, _ = controller(prometheus, tmp_path, docs, prometheus_end + 30, lag=0.0)
    report = ctl.reconcile().by_key()
    assert report["shop/web"].decision.binding_constraint == "budget"
    assert report["blog/front"].decision.binding_constraint == "min"
    get = ctl.metrics.registry.get_sample_value
    budget = {"namespace": "shop", "workload": "web", "constraint": "budget"}
    assert get("autoscaler_clamps_total", {**budget, "environment": "shop-prod"}) == 1.0
    floor = {"namespace": "blog", "workload": "front", "constraint": "min"}
    assert get("autoscaler_clamps_total", {**floor, "environment": "none"}) == 1.0


def test_lagging_source_hides_what_has_not_arrived(
    prometheus: PrometheusServer, prometheus_end: int
) -> None:
    """The harness itself: a step newer than now - lag is NaN, older ones are data."""
    settings = load_settings(None, prometheus={"url": prometheus.url})
    clock = SimClock(prometheus_end - 600)
    source = LaggingSource(PrometheusSource(settings.prometheus), clock, lag=90.0)
    series = source.history_by(QUERY, prometheus_end - 1200, prometheus_end - 600, STEP)[
        ("shop", "web")
    ]
    stamps = unix_seconds(series.index)
    cut = to_unix(clock.now()) - 90.0
    assert series[stamps <= cut].notna().all()
    assert series[stamps > cut].isna().all() and (stamps > cut).sum() == 2

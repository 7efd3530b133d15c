"""PrometheusSource against a REAL Prometheus backfilled with bundled traces.

What is checked: one batched request returns every workload; the values are exactly
what ``rate()`` over the backfilled trace slices must give (computed here from the
trace, not copied from an answer); ranges past the 11,000-points limit are paged and
agree with unpaged answers; the start-up backfill; and the pure helpers (grid, page sizes,
the bare-counter heuristic, durations, settings validation).
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autoscaler.cli import build_app, main
from autoscaler.cli.forecast import run_forecast
from autoscaler.sources.base import MetricSource, has_data
from autoscaler.sources.prometheus import (
    PrometheusSource,
    bare_counters,
    grid,
    page_points,
)
from autoscaler.sources.settings import (
    PROMETHEUS_MAX_POINTS,
    PrometheusSettings,
    load_prometheus_settings,
    parse_duration,
)
from models.errors import InputError, PermanentError
from tests.integration.promfixture import (
    STANDARD_WORKLOADS,
    LoopbackServer,
    PrometheusServer,
    expected_increments,
    free_port,
    require_prometheus,
)

pytestmark = pytest.mark.integration

RATE = "rate(http_requests_total[2m])"
DAY = 86_400


def expected_rate_2m(prometheus: PrometheusServer, ns: str, wl: str) -> pd.Series:
    """``sum(rate(c[2m]))`` at each aligned minute t, from the trace alone.

    Samples every 60 s on the minute: the window [t-120, t] holds three samples and no
    extrapolation applies, so rate = (c(t) - c(t-120)) / 120 = (inc(t) + inc(t-60)) / 120,
    across counter resets too (rate() adds the value before the reset back).
    """
    inc = expected_increments(prometheus.backfilled, ns, wl)
    return ((inc + inc.shift(1)) / 120.0).iloc[1:]


@pytest.fixture
def source(prometheus: PrometheusServer) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings(url=prometheus.url))


def test_is_a_metric_source(source: PrometheusSource) -> None:
    assert isinstance(source, MetricSource)


def test_one_request_returns_every_workload_with_the_trace_values(
    prometheus: PrometheusServer, source: PrometheusSource, prometheus_end: int
) -> None:
    tick = source.history_by(RATE, prometheus_end - 900, prometheus_end, 60)
    assert source.requests_sent == 1  # a tick: every workload in one request
    assert set(STANDARD_WORKLOADS) <= set(tick)
    got = source.history_by(RATE, prometheus_end - 2 * DAY, prometheus_end, 60)
    assert source.requests_sent == 2  # the source now knows there are few series
    assert set(STANDARD_WORKLOADS) <= set(got)
    for (ns, wl), series in got.items():
        assert isinstance(series.index, pd.DatetimeIndex)
        assert str(series.index.tz) == "UTC"
        assert series.index.freq == pd.Timedelta("60s")
        assert series.index[-1].timestamp() == prometheus_end
        if (ns, wl) not in STANDARD_WORKLOADS:
            continue
        want = expected_rate_2m(prometheus, ns, wl).reindex(series.index)
        both = want.notna()
        assert both.sum() > 2 * 1440 - 5
        np.testing.assert_allclose(series[both].to_numpy(), want[both].to_numpy(), rtol=1e-9)


def test_counter_reset_is_absorbed_by_rate(
    prometheus: PrometheusServer, prometheus_end: int
) -> None:
    """shop/batch restarts from 0 half-way: rate() shows no dip; the raw counter does."""
    src = PrometheusSource(PrometheusSettings(url=prometheus.url, counter_check="off"))
    start = prometheus_end - 3 * DAY + 600
    rate = src.history_by(RATE, start, prometheus_end, 60)[("shop", "batch")]
    raw = src.history_by("http_requests_total", start, prometheus_end, 60)[("shop", "batch")]
    assert (np.diff(raw.dropna().to_numpy()) < 0).sum() == 1  # the reset is in the data
    want = expected_rate_2m(prometheus, "shop", "batch").reindex(rate.index)
    both = want.notna() & rate.notna()
    np.testing.assert_allclose(rate[both].to_numpy(), want[both].to_numpy(), rtol=1e-9)
    assert (rate.dropna() >= 0).all()


def test_history_of_one_series_equals_the_batched_key(
    source: PrometheusSource, prometheus_end: int
) -> None:
    start = prometheus_end - DAY
    one = source.history(
        'sum(rate(http_requests_total{namespace="shop",workload="api"}[2m]))',
        start,
        prometheus_end,
        60,
    )
    batched = source.history_by(RATE, start, prometheus_end, 60)[("shop", "api")]
    pd.testing.assert_series_equal(one, batched, check_names=False)


def recorded_pages(proxy: LoopbackServer) -> list[tuple[int, int, int]]:
    """(start, end, step) of every query_range the proxy forwarded."""
    out = []
    for path in proxy.requests:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        out.append((int(q["start"][0]), int(q["end"][0]), int(q["step"][0])))
    return out


@pytest.mark.parametrize(
    ("max_points", "max_samples"),
    [
        pytest.param(PROMETHEUS_MAX_POINTS, 1_000_000, id="defaults"),
        pytest.param(5000, 1_000_000, id="fewer-points"),
        pytest.param(PROMETHEUS_MAX_POINTS, 12_000, id="small-sample-budget"),
    ],
)
def test_long_ranges_are_paged_within_both_limits(
    prometheus: PrometheusServer, prometheus_end: int, max_points: int, max_samples: int
) -> None:
    start, step = prometheus_end - 3 * DAY, 15  # 17,281 points per series, 5 series
    want = grid(start, prometheus_end, step)
    assert len(want) > PROMETHEUS_MAX_POINTS
    reference = PrometheusSource(PrometheusSettings(url=prometheus.url))
    ref = reference.history_by(RATE, start, prometheus_end, step)
    with LoopbackServer(upstream=prometheus.url) as proxy:
        settings = PrometheusSettings(
            url=proxy.url, max_points=max_points, max_samples_per_request=max_samples
        )
        got = PrometheusSource(settings).history_by(RATE, start, prometheus_end, step)
    spans = recorded_pages(proxy)
    assert len(spans) > 1
    covered = [t for a, b, st in spans for t in range(a, b + st, st)]
    assert covered == want.tolist()  # contiguous, no overlap, nothing missing
    for k, (a, b, st) in enumerate(spans):
        points = (b - a) // st + 1
        assert points <= max_points
        if k > 0:  # the first page is sized for an assumed series count, later ones
            # for the series seen so far (all of them, once the range has been seen)
            before = pd.Timestamp(spans[k - 1][1], unit="s", tz="UTC")
            seen = sum(bool(series[:before].notna().any()) for series in ref.values())
            assert points * seen <= max_samples
    assert set(got) == set(ref)
    for key in ref:
        pd.testing.assert_series_equal(got[key], ref[key])
        assert len(got[key]) == len(want)


def test_without_paging_the_real_server_refuses(
    prometheus: PrometheusServer, prometheus_end: int
) -> None:
    """The 11,000-points limit is real; the error says which setting to change."""
    start, step = prometheus_end - 3 * DAY, 15
    unpaged = PrometheusSource(
        PrometheusSettings(url=prometheus.url, max_points=20_000, max_samples_per_request=10**8)
    )
    with pytest.raises(PermanentError, match="max_points"):
        unpaged.history_by(RATE, start, prometheus_end, step)


def test_backfill_loads_the_window_in_pages(
    prometheus: PrometheusServer, prometheus_end: int
) -> None:
    settings = PrometheusSettings(url=prometheus.url, max_points=1000, backfill_seconds=2 * DAY)
    src = PrometheusSource(settings)
    got = src.backfill(RATE, prometheus_end)
    n = len(grid(prometheus_end - 2 * DAY, prometheus_end, 60))
    assert src.requests_sent == -(-n // 1000)
    assert set(STANDARD_WORKLOADS) <= set(got)
    one = PrometheusSource(PrometheusSettings(url=prometheus.url))
    ref = one.history_by(RATE, prometheus_end - 2 * DAY, prometheus_end, 60)
    for key in STANDARD_WORKLOADS:
        assert len(got[key]) == n
        pd.testing.assert_series_equal(got[key], ref[key])
        assert has_data(got[key])


def test_other_grouping_labels(source: PrometheusSource, prometheus_end: int) -> None:
    by_ns = source.history_by(RATE, prometheus_end - 3600, prometheus_end, 60, by=("namespace",))
    assert {("shop",), ("blog",)} <= set(by_ns)
    total = source.history_by(RATE, prometheus_end - 3600, prometheus_end, 60, by=())
    assert list(total) == [()]
    with pytest.raises(InputError, match="label name"):
        source.history_by(RATE, prometheus_end - 3600, prometheus_end, 60, by=("a-b",))


# ------------------------------------------------------------------ pure helpers


def test_grid_is_aligned_to_the_step() -> None:
    g = grid(1_000_007, 1_003_000, 60)
    assert g[0] % 60 == 0 and g[0] >= 1_000_007 and g[-1] <= 1_003_000
    assert (np.diff(g) == 60).all()
    assert len(grid(1_000_021, 1_000_079, 60)) == 0


@pytest.mark.parametrize(
    ("series", "max_points", "max_samples", "want"),
    [
        pytest.param(1, 11_000, 1_000_000, 11_000, id="server-limit"),
        pytest.param(1000, 11_000, 1_000_000, 1000, id="sample-budget"),
        pytest.param(0, 11_000, 1_000_000, 11_000, id="no-series"),
        pytest.param(10**7, 11_000, 1_000_000, 1, id="at-least-one"),
    ],
)
def test_page_points(series: int, max_points: int, max_samples: int, want: int) -> None:
    assert page_points(series, max_points, max_samples) == want


@pytest.mark.parametrize(
    ("query", "bare"),
    [
        pytest.param("http_requests_total", ["http_requests_total"], id="bare-total"),
        pytest.param("rate(http_requests_total[5m])", [], id="rate"),
        pytest.param(
            'sum by (namespace) (increase(x_total{job="a_total"}[1h]))', [], id="increase"
        ),
        pytest.param(
            "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))", [], id="histogram"
        ),
        pytest.param("rate(a_total[5m]) / b_count", ["b_count"], id="one-side-bare"),
        pytest.param("sum(queue_depth)", [], id="gauge"),
        pytest.param("max_over_time(x_sum[5m])", ["x_sum"], id="over-time-is-not-rate"),
    ],
)
def test_bare_counter_heuristic(query: str, bare: list[str]) -> None:
    assert bare_counters(query) == bare


def test_bare_counter_is_refused_with_a_fix(source: PrometheusSource) -> None:
    with pytest.raises(InputError, match=r"rate\(http_requests_total\[5m\]\)"):
        source.history("sum(http_requests_total)", 0, 600, 60)
    assert source.requests_sent == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h30m", 5400), ("14d", 14 * DAY), ("1.5", 1.5), ("500ms", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, "--horizon") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-1", "2 m", "m", "1x", "0s", "inf"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--step"):
        parse_duration(text, "--step")


def test_settings_errors_name_the_field() -> None:
    with pytest.raises(InputError, match=r"prometheus\.timeout_seconds"):
        load_prometheus_settings({"timeout_seconds": -1})
    with pytest.raises(InputError, match=r"prometheus\.url"):
        load_prometheus_settings({"url": "prometheus:9090"})
    with pytest.raises(InputError, match=r"prometheus\.tls\.bogus"):
        load_prometheus_settings({"tls": {"bogus": True}})
    ok = load_prometheus_settings({"url": "https://mimir.example/prometheus/"})
    assert ok.url == "https://mimir.example/prometheus"


# ------------------------------------------------------------------ autoscaler forecast

WEB = 'sum(rate(http_requests_total{namespace="shop",workload="web"}[2m]))'


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    """``main()`` as the console script runs it (in-process: a subprocess re-imports
    every command module, seconds on the shared machine); returns (status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["autoscaler", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main()
    code = done.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def test_forecast_cli_json_against_real_prometheus(
    prometheus: PrometheusServer, prometheus_end: int
) -> None:
    app = build_app()
    args = ["forecast", "--prometheus-url", prometheus.url, "--query", WEB, "--horizon", "2m"]
    args += ["--quantiles", "0.9,0.5", "--history", "1d", "--step", "1m"]
    args += ["--end", str(prometheus_end), "--model", "last", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["horizon_steps"] == 2 and out["step_seconds"] == 60
    assert out["history"]["points"] == 1441 and out["history"]["stale"] is False
    assert list(out["quantiles"]) == ["0.5", "0.9"]
    assert 0 <= out["quantiles"]["0.5"] <= out["quantiles"]["0.9"]
    # ``last`` forecasts the last observed value: the CLI fed it the real history.
    src = PrometheusSource(PrometheusSettings(url=prometheus.url))
    series = src.history(WEB, prometheus_end - DAY, prometheus_end, 60)
    assert out["mean"] == pytest.approx(float(series.dropna().iloc[-1]))
    text = CliRunner().invoke(app, [a for a in args if a != "--json"])
    assert text.exit_code == 0 and "q0.9" in text.stdout and "1441 points" in text.stdout


def test_forecast_cli_default_model(prometheus: PrometheusServer, prometheus_end: int) -> None:
    args = ["forecast", "--prometheus-url", prometheus.url, "--query", WEB, "--json"]
    result = CliRunner().invoke(build_app(), [*args, "--end", str(prometheus_end)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert all(math.isfinite(v) and v >= 0 for v in out["quantiles"].values())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("sum(rate(no_such_metric_total[5m]))", "no data", id="no-data"),
        pytest.param("sum(rate(x[5m]", "parse error", id="bad-promql"),
        pytest.param("http_requests_total", "looks like a counter", id="bare-counter"),
        pytest.param('rate(http_requests_total{workload="web"}[2m])', "2 series", id="several"),
    ],
)
def test_forecast_bad_query_is_an_input_error(
    prometheus: PrometheusServer, query: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        run_forecast(
            url=prometheus.url,
            query=query,
            horizon="2m",
            quantiles="0.9",
            model="last",
            history="1h",
            step="1m",
            end=None,
            settings_extra={},
        )


def test_forecast_cli_bad_query_is_one_line_and_exit_2(
    prometheus: PrometheusServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["forecast", "--prometheus-url", prometheus.url, "--query", "sum(rate(x[5m]"]
    code, err = run_cli(capsys, monkeypatch, *args)
    assert code == 2, err
    assert "parse error" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_forecast_cli_unreachable_is_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    args = ["forecast", "--prometheus-url", url, "--query", WEB, "--timeout", "2s"]
    code, err = run_cli(capsys, monkeypatch, *args)
    assert code == 1 and "cannot connect" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ the fixture itself


def test_missing_prometheus_skips_loudly_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMETHEUS_BIN", "/nonexistent/prometheus")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PROMETHEUS NOT INSTALLED"):
        require_prometheus()
    assert "PROMETHEUS NOT INSTALLED" in capsys.readouterr().err
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_prometheus()


def test_times_may_be_aware_datetimes_but_not_naive_ones(
    source: PrometheusSource, prometheus_end: int
) -> None:
    start, end = prometheus_end - 3600, prometheus_end
    by_float = source.history_by(RATE, start, end, 60)
    by_dt = source.history_by(
        RATE,
        datetime.fromtimestamp(start, UTC),
        pd.Timestamp(end, unit="s", tz="UTC"),
        60,
    )
    pd.testing.assert_series_equal(by_dt[("shop", "web")], by_float[("shop", "web")])
    with pytest.raises(InputError, match="no timezone"):
        source.history_by(RATE, datetime(2026, 1, 1), end, 60)
    with pytest.raises(InputError, match="ends before it starts"):
        source.history_by(RATE, end, start, 60)
    with pytest.raises(InputError, match="whole number of seconds"):
        source.history_by(RATE, start, end, 0.5)

"""Helpers shared by the forecasters: cleaning, peak targets, quantile hygiene.

Every model forecasts the same target, the **peak of the next ``horizon`` steps**, and
every ``Forecast`` must hold finite, non-negative, non-decreasing quantiles. Keeping
those rules in one place means a new model cannot get them subtly wrong. Callers: the
model modules in ``models/`` and ``models.backtest``.

Horizon convention: a horizon in seconds becomes ``max(1, ceil(seconds / step))``
steps (``horizon_steps``), so a 2-minute horizon on a 5-minute trace is the next
interval, and on a 1-minute trace the peak of the next two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from models.base import Forecast
from models.errors import InputError

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
HOUR_SECONDS = 3_600


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def unix_seconds(index: pd.Index) -> np.ndarray:
    """Unix seconds of a ``DatetimeIndex`` (any unit), as floats, without a copy of the
    index (``pd.DatetimeIndex(...).as_unit(...)`` costs a tenth of a millisecond, which
    matters once per workload per tick)."""
    if not isinstance(index, pd.DatetimeIndex):
        index = pd.DatetimeIndex(index)
    return np.asarray(index.asi8, dtype=float) / _PER_SECOND[index.unit]


def horizon_steps(horizon_seconds: float, step_seconds: float) -> int:
    """Steps covering ``horizon_seconds``: ``max(1, ceil(horizon / step))``."""
    if step_seconds <= 0:
        raise InputError("step", f"step of {step_seconds} s is not positive", "")
    return max(1, math.ceil(horizon_seconds / step_seconds - 1e-9))


def step_seconds_of(y: pd.Series, default: float = 60.0) -> float:
    """The sampling step of ``y`` in seconds (median spacing; ``default`` if unknown)."""
    if len(y) < 2 or not isinstance(y.index, pd.DatetimeIndex):
        return default
    # Compare as nanoseconds whatever the index resolution (pandas 3 may use us or s).
    ns = y.index[-min(len(y), 50) :].as_unit("ns").asi8
    d = np.diff(ns) / 1e9
    d = d[d > 0]
    return float(np.median(d)) if d.size else default


def period_steps(period_seconds: int, step_seconds: float) -> int | None:
    """Steps in one season, or None when the step does not divide it usefully."""
    p = period_seconds / step_seconds
    if p < 2 or abs(p - round(p)) > 1e-6:
        return None
    return round(p)


def clean_values(y: pd.Series | np.ndarray) -> np.ndarray:
    """Values as floats with missing samples held (forward-filled).

    Absent is not zero: a missing sample (NaN) takes the last observed value, leading
    NaNs take the first observed one, and an all-missing series becomes zeros (the
    models then say so through their fallback note). Negative values are clipped to 0.
    """
    a = np.asarray(y, dtype=float).copy()
    a[~np.isfinite(a)] = np.nan
    if a.size == 0:
        return a
    ok = ~np.isnan(a)
    if not ok.any():
        return np.zeros_like(a)
    if not ok.all():
        idx = np.where(ok, np.arange(a.size), 0)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(ok))
        a = a[idx]
        a[:first] = a[first]
    return np.asarray(np.maximum(a, 0.0))


def future_peaks(y: np.ndarray, horizon: int) -> np.ndarray:
    """``out[t] = max(y[t+1 .. t+horizon])`` for origins ``t = 0 .. len(y)-horizon-1``."""
    if y.size <= horizon:
        return np.empty(0)
    if horizon == 1:
        return y[1:].copy()
    m = y.size - horizon
    if horizon <= 32:
        # Shifted maxima: much faster than a sliding window for short horizons.
        out = y[1 : 1 + m].copy()
        for j in range(2, horizon + 1):
            np.maximum(out, y[j : j + m], out=out)
        return out
    return np.asarray(sliding_window_view(y[1:], horizon).max(axis=1))


def trailing_mean(y: np.ndarray, k: int) -> np.ndarray:
    """``out[t] = mean(y[max(0, t-k+1) .. t])``, causal."""
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(1, y.size + 1)
    lo = np.maximum(idx - k, 0)
    return np.asarray((c[idx] - c[lo]) / (idx - lo))


def check_levels(quantiles: Sequence[float]) -> list[float]:
    """Quantile levels as floats, each strictly between 0 and 1."""
    levels = [float(q) for q in quantiles]
    for q in levels:
        if not 0.0 < q < 1.0 or not math.isfinite(q):
            raise InputError("quantiles", f"level {q!r} is not in (0, 1)", "use e.g. 0.5,0.9")
    return levels


def make_forecast(
    horizon: int,
    mean: float,
    values: Mapping[float, float],
    model: str,
    note: str = "",
    details: Mapping[str, float] | None = None,
) -> Forecast:
    """A ``Forecast`` whose quantiles are finite, >= 0 and non-decreasing in the level."""
    levels = sorted(values)
    clean = [float(values[q]) if math.isfinite(values[q]) else 0.0 for q in levels]
    out: dict[float, float] = {}
    running = 0.0
    for q, v in zip(levels, clean, strict=True):
        running = max(running, v)
        out[q] = running
    m = float(mean) if math.isfinite(mean) else 0.0
    return Forecast(
        horizon=horizon,
        mean=max(m, 0.0),
        quantiles=out,
        model=model,
        note=note,
        details=dict(details or {}),
    )


def pinball(target: np.ndarray, pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of ``pred`` as the ``q``-quantile of ``target``."""
    d = target - pred
    return float(np.mean(np.maximum(q * d, (q - 1.0) * d)))


def conformal_level(q: float, n: int) -> float:
    """Split-conformal level for ``n`` calibration scores: ``ceil((n+1) q) / n``, capped."""
    if n <= 0:
        return q
    return min(1.0, math.ceil((n + 1) * q) / n)


def ratio_quantiles(
    y: np.ndarray, base: np.ndarray, horizon: int, levels: Sequence[float]
) -> dict[float, float] | None:
    """Empirical quantiles of ``peak(next horizon) / base`` over the history.

    ``base[t]`` is the point forecast a model would have made at origin ``t``. Returns
    None when there are too few usable origins (fewer than 10 with ``base > 0``).
    """
    peaks = future_peaks(y, horizon)
    b = base[: peaks.size]
    ok = b > 0
    if ok.sum() < 10:
        return None
    r = peaks[ok] / b[ok]
    return {q: float(np.quantile(r, q)) for q in levels}

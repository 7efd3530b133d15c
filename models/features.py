"""Level-normalised features of a load series at chosen origins, for learned models.

Every feature at origin ``t`` uses only ``y[.. t]`` (causal by construction: windows
end at ``t``, seasonal lags look back whole days or weeks). Values are divided by the
level ``L_t`` (a trailing mean), and the target is ``peak(next horizon) / L_t``, so a
model trained at one traffic volume still applies after the volume doubles. Missing
lags (not enough history yet) are NaN, which histogram gradient boosting handles
natively. Callers: ``models.quantile_gbm``, ``models.auto``.
"""

from __future__ import annotations

import numpy as np

from models.common import DAY_SECONDS, HOUR_SECONDS, WEEK_SECONDS, future_peaks, period_steps

FEATURE_NAMES: tuple[str, ...] = (
    "lag0",
    "lag1",
    "lag2",
    "lag3",
    "mean3",
    "mean12",
    "max12",
    "std12",
    "trend",
    "day_peak",
    "day_level",
    "week_peak",
    "hour_sin",
    "hour_cos",
    "weekday",
)


def level_window(step_seconds: float) -> int:
    """Points in the normalising trailing mean: one hour, at least 6."""
    return max(6, round(HOUR_SECONDS / step_seconds))


def _window_mean(c: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``y[t-k+1 .. t]`` from the cumsum ``c`` (``c[i] = sum(y[:i])``)."""
    lo = np.maximum(idx + 1 - k, 0)
    return np.asarray((c[idx + 1] - c[lo]) / (idx + 1 - lo))


def features(
    y: np.ndarray, idx: np.ndarray, horizon: int, step_seconds: float, t_last: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, level)`` at origins ``idx`` of ``y``; ``t_last`` is unix time of ``y[-1]``."""
    n = y.size
    c = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    k = level_window(step_seconds)
    eps = 1e-9 + 1e-3 * float(np.mean(y)) if n else 1e-9
    level = np.maximum(_window_mean(c, idx, k), eps)
    cols: list[np.ndarray] = []
    for lag in range(4):
        j = idx - lag
        cols.append(np.where(j >= 0, y[np.maximum(j, 0)], np.nan) / level)
    cols.append(_window_mean(c, idx, 3) / level)
    m12 = _window_mean(c, idx, 12)
    cols.append(m12 / level)
    win = idx[:, None] - np.arange(12)[None, :]
    cols.append(np.where(win >= 0, y[np.maximum(win, 0)], 0.0).max(axis=1) / level)
    var = np.maximum(_window_mean(c2, idx, 12) - m12 * m12, 0.0)
    cols.append(np.sqrt(var) / level)
    cols.append(level / np.maximum(_window_mean(c, idx, 4 * k), eps))
    fp = future_peaks(y, horizon)
    for seconds, with_level in ((DAY_SECONDS, True), (WEEK_SECONDS, False)):
        s = period_steps(seconds, step_seconds)
        j = idx - s if s is not None and s >= horizon else np.full(idx.size, -1)
        ok = (j >= 0) & (j < fp.size)
        jj = np.clip(j, 0, max(fp.size - 1, 0))
        peak = np.where(ok, fp[jj] if fp.size else np.nan, np.nan)
        cols.append(peak / level)
        if with_level:
            lvl_then = np.where(j >= 0, _window_mean(c, np.maximum(j, 0), k), np.nan)
            cols.append(lvl_then / level)
    t = t_last - (n - 1 - idx) * step_seconds
    hour = (t % DAY_SECONDS) / HOUR_SECONDS
    cols.append(np.sin(2 * np.pi * hour / 24))
    cols.append(np.cos(2 * np.pi * hour / 24))
    cols.append(((t // DAY_SECONDS + 3) % 7).astype(float))  # 1970-01-01 was a Thursday
    return np.column_stack(cols), level


def training_set(
    y: np.ndarray,
    horizon: int,
    step_seconds: float,
    t_last: float,
    end: int,
    max_rows: int,
    min_origin: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, target / level)`` for origins up to ``end`` (exclusive) with observed targets.

    Origins are the most recent ones, thinned to at most ``max_rows`` by a stride.
    """
    last = min(end, y.size - horizon) - 1
    if last < min_origin:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0)
    count = last - min_origin + 1
    stride = max(1, -(-count // max_rows))
    idx = np.arange(last, min_origin - 1, -stride)[::-1]
    X, level = features(y, idx, horizon, step_seconds, t_last)
    target = future_peaks(y, horizon)[idx] / level
    return X, target

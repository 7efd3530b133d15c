"""Rolling-origin backtest of forecasters on one series.

The forecast made at origin ``t`` may use only data at or before ``t``. The loop fits
a fresh model on an initial window (the warm-up), then walks forward: at each step it
hands the model the newest observation with ``update()``, refits from scratch on
everything up to ``t`` every ``refit_every`` points, and predicts at every ``every``-th
origin. The target at origin ``t`` is the peak of the next ``horizon`` values,
``max(y[t+1 .. t+horizon])``; only origins whose whole target window is in the series
are scored. Deterministic: the models are, and the loop has no randomness of its own.

Causality covers the schedule too: the warm-up, the refit times and the scored origins
are counted from the START of the series (fixed durations or counts, see
``default_initial``), never from its length. So cutting a trace after ``T``, or
replacing everything after ``T``, leaves every forecast made at or before ``T`` bit for
bit the same (``tests/models/test_backtest.py``). A series shorter than the warm-up plus
one horizon is an ``InputError``, not a silently shorter warm-up.

Metrics per model: MAE of the median (or of the mean when 0.5 is not requested),
pinball loss and coverage per quantile, and the ratio of each to the best simple
baseline (``SIMPLE_BASELINES``: the best by q0.9 pinball, else by the mean pinball).
Callers: the ``backtest`` CLI command, benchmarks, tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.base import Forecaster
from models.common import DAY_SECONDS, check_levels, future_peaks, pinball, step_seconds_of
from models.errors import InputError
from models.registry import make_forecaster

#: The simple baselines every model is compared with.
SIMPLE_BASELINES: tuple[str, ...] = (
    "last",
    "seasonal-naive",
    "seasonal-naive-weekly",
    "last-hour-mean",
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestConfig:
    """How to walk the series. Counts are in steps (points) of the series.

    ``initial``: points in the first fit, the warm-up (default ``default_initial``: one
    day, at least 60 points; never derived from the series' length). ``refit_every``:
    refit from scratch this often (default ``default_refit_every``: one day of points,
    at least 24). Both count from the first point. ``every``: predict at every N-th
    origin (1 = every origin; the stride only thins the scored origins, every point is
    still passed to ``update``).
    """

    horizon: int
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    initial: int | None = None
    refit_every: int | None = None
    every: int = 1


@dataclass
class BacktestResult:
    """Forecasts and targets at every scored origin, for one model on one series."""

    model: str
    horizon: int
    quantiles: tuple[float, ...]
    origins: np.ndarray  # positions in the series
    index: pd.DatetimeIndex
    forecasts: np.ndarray  # shape (origins, quantiles)
    means: np.ndarray
    targets: np.ndarray
    notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: positions of the last point of each from-scratch fit (the warm-up, then refits).
    fits: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))

    def metrics(self) -> dict[str, Any]:
        """MAE of the median, pinball and coverage per quantile."""
        out: dict[str, Any] = {"origins": int(self.targets.size)}
        t = self.targets
        if 0.5 in self.quantiles:
            med = self.forecasts[:, self.quantiles.index(0.5)]
        else:
            med = self.means
        out["mae"] = float(np.mean(np.abs(t - med))) if t.size else float("nan")
        pin: dict[str, float] = {}
        cov: dict[str, float] = {}
        for j, q in enumerate(self.quantiles):
            pin[f"{q:g}"] = pinball(t, self.forecasts[:, j], q) if t.size else 0.0
            cov[f"{q:g}"] = float(np.mean(t <= self.forecasts[:, j])) if t.size else 0.0
        out["pinball"] = pin
        out["coverage"] = cov
        out["seconds"] = self.seconds
        return out


#: the warm-up is never shorter than this many points (and the refit interval 24).
MIN_INITIAL_POINTS = 60
MIN_REFIT_POINTS = 24


def default_initial(step_seconds: float) -> int:
    """The default warm-up in points: one day (the daily season), at least 60 points.

    A fixed duration from the start of the series: the series' length plays no part, so
    the forecast at origin ``t`` cannot depend on data after ``t`` through the schedule.
    """
    return max(MIN_INITIAL_POINTS, math.ceil(DAY_SECONDS / step_seconds - 1e-9))


def default_refit_every(step_seconds: float) -> int:
    """The default refit interval in points: one day, at least 24 points."""
    return max(MIN_REFIT_POINTS, round(DAY_SECONDS / step_seconds))


def default_config(
    n: int, step_seconds: float, horizon: int, quantiles: Sequence[float], every: int = 1
) -> BacktestConfig:
    """The documented defaults (``default_initial``, ``default_refit_every``).

    ``n`` (the series' length) does not move the warm-up or the refits; it is only
    checked: a series too short for the warm-up plus one horizon is an ``InputError``.
    """
    initial = default_initial(step_seconds)
    refit = default_refit_every(step_seconds)
    check_length(n, initial, horizon, step_seconds)
    return BacktestConfig(
        horizon=horizon,
        quantiles=tuple(check_levels(quantiles)),
        initial=initial,
        refit_every=refit,
        every=every,
    )


def check_length(
    n: int, initial: int, horizon: int, step_seconds: float, where: str = "trace"
) -> None:
    """``InputError`` unless ``n`` points hold the warm-up and one horizon after it."""
    if initial < 2:
        raise InputError("--initial", f"a warm-up of {initial} point(s)", "use at least 2 points")
    if initial + horizon > n:
        span = _duration(initial * step_seconds)
        raise InputError(
            where,
            f"{n} points are too few for the warm-up of {initial} points ({span}) plus a "
            f"horizon of {horizon} step(s)",
            f"use a trace of at least {initial + horizon} points, or a shorter --initial",
        )


def _duration(seconds: float) -> str:
    for unit, size in (("d", DAY_SECONDS), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def run_backtest(
    y: pd.Series,
    model: str | Callable[[], Forecaster],
    config: BacktestConfig,
    progress: Progress | None = None,
) -> BacktestResult:
    """Walk ``y`` forward with one model; see the module docstring."""
    import time

    factory: Callable[[], Forecaster]
    if isinstance(model, str):
        name = model
        make_forecaster(name)  # validate early
        factory = lambda: make_forecaster(name)  # noqa: E731
    else:
        factory = model
        name = getattr(model(), "name", "model")
    n = len(y)
    h = config.horizon
    levels = tuple(check_levels(config.quantiles))
    if h < 1:
        raise InputError("--horizon", f"horizon of {h} steps is below 1", "use at least one step")
    if config.every < 1:
        raise InputError("--every", f"{config.every} is below 1", "use 1 or more")
    # The step from the series' first points: nothing about the schedule may depend on
    # how far the series goes.
    step = step_seconds_of(y.iloc[:51])
    initial = config.initial if config.initial is not None else default_initial(step)
    refit = config.refit_every if config.refit_every is not None else default_refit_every(step)
    if refit < 1:
        raise InputError("--refit-every", f"{refit} is below 1", "use 1 or more points")
    check_length(n, initial, h, step)
    values = y.to_numpy(dtype=float)
    peaks = future_peaks(values, h)  # peaks[t]: target at origin t
    last_origin = n - h - 1
    origins = [
        t for t in range(initial - 1, last_origin + 1) if (t - initial + 1) % config.every == 0
    ]
    fc = np.zeros((len(origins), len(levels)))
    means = np.zeros(len(origins))
    notes: dict[str, int] = {}
    started = time.perf_counter()
    forecaster = factory().fit(y.iloc[:initial])
    fitted_to = initial - 1  # last position the model has seen
    last_fit = initial - 1
    fits = [last_fit]
    for i, t in enumerate(origins):
        if t - last_fit >= refit:
            forecaster = factory().fit(y.iloc[: t + 1])
            last_fit = t
            fits.append(t)
        elif t > fitted_to:
            forecaster.update(y.iloc[fitted_to + 1 : t + 1])
        fitted_to = t
        f = forecaster.predict(h, levels)
        fc[i] = [f.quantiles[q] for q in levels]
        means[i] = f.mean
        if f.note:
            notes[f.note] = notes.get(f.note, 0) + 1
        if progress is not None and (i % 200 == 0 or i == len(origins) - 1):
            progress(i + 1, len(origins))
    idx = np.asarray(origins, dtype=int)
    return BacktestResult(
        model=name,
        horizon=h,
        quantiles=levels,
        origins=idx,
        index=pd.DatetimeIndex(y.index[idx]),
        forecasts=fc,
        means=means,
        targets=peaks[idx] if idx.size else np.empty(0),
        notes=notes,
        seconds=time.perf_counter() - started,
        fits=np.asarray(fits, dtype=int),
    )


def compare(results: Sequence[BacktestResult]) -> dict[str, dict[str, Any]]:
    """Metrics per model plus ratios to the best simple baseline present.

    The best baseline is the one with the lowest q0.9 pinball loss when 0.9 was
    requested, else the lowest mean pinball. Ratios below 1 beat it.
    """
    table = {r.model: r.metrics() for r in results}
    present = [m for m in SIMPLE_BASELINES if m in table]
    if not present:
        return table

    def key(m: str) -> float:
        pin = table[m]["pinball"]
        return float(pin["0.9"]) if "0.9" in pin else float(np.mean(list(pin.values())))

    best = min(present, key=key)
    ref = table[best]
    for m in table.values():
        m["baseline"] = best
        m["mae_ratio"] = _ratio(m["mae"], ref["mae"])
        m["pinball_ratio"] = {q: _ratio(v, ref["pinball"][q]) for q, v in m["pinball"].items()}
    return table


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")

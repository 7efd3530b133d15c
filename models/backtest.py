"""Rolling-origin backtest of forecasters on one series.

The forecast made at origin ``t`` may use only data at or before ``t``. The loop fits
a fresh model on an initial window, then walks forward: at each step it hands the
model the newest observation with ``update()``, refits from scratch on everything up
to ``t`` every ``refit_every`` points, and predicts at every ``every``-th origin. The
target at origin ``t`` is the peak of the next ``horizon`` values, ``max(y[t+1 ..
t+horizon])``; only origins whose whole target window is in the series are scored.
Deterministic: the models are, and the loop has no randomness of its own.

Metrics per model: MAE of the median (or of the mean when 0.5 is not requested),
pinball loss and coverage per quantile, and the ratio of each to the best simple
baseline (``SIMPLE_BASELINES``: the best by q0.9 pinball, else by the mean pinball).
Callers: the ``backtest`` CLI command, benchmarks, tests.
"""

from __future__ import annotations

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

    ``initial``: points in the first fit (default: a tenth of the series, at least 60
    points and at least one hour). ``refit_every``: refit from scratch this often
    (default: one day of points, at least 24). ``every``: predict at every N-th origin
    (1 = every origin; the stride only thins the scored origins, every point is still
    passed to ``update``).
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


def default_config(
    n: int, step_seconds: float, horizon: int, quantiles: Sequence[float], every: int = 1
) -> BacktestConfig:
    """The documented defaults for a series of ``n`` points."""
    hour = max(1, round(3600 / step_seconds))
    initial = max(60, hour, n // 10)
    refit = max(24, round(DAY_SECONDS / step_seconds))
    return BacktestConfig(
        horizon=horizon,
        quantiles=tuple(check_levels(quantiles)),
        initial=initial,
        refit_every=refit,
        every=every,
    )


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
    base = default_config(n, step_seconds_of(y), h, levels)
    initial = config.initial if config.initial is not None else base.initial
    refit = config.refit_every if config.refit_every is not None else base.refit_every
    assert initial is not None and refit is not None
    if initial < 2 or initial + h > n:
        raise InputError(
            "trace",
            f"{n} points are too few for an initial window of {initial} and horizon {h}",
            "use a longer trace or a shorter horizon",
        )
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
    for i, t in enumerate(origins):
        if t - last_fit >= refit:
            forecaster = factory().fit(y.iloc[: t + 1])
            last_fit = t
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

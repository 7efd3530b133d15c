"""Seeded synthetic load series for the model tests (real traces are used elsewhere).

A load series here is a Poisson count around a daily cycle, so that every model has
seasonality to find and sampling noise to cope with. Each helper takes a seed: the
tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def seasonal_counts(
    n: int,
    step_seconds: int = 60,
    base: float = 40.0,
    amplitude: float = 0.6,
    seed: int = 0,
    start: str = "2026-01-05T00:00:00Z",
) -> pd.Series:
    """``n`` Poisson counts per step around ``base * (1 + amplitude * sin(daily))``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * step_seconds
    rate = base * (1 + amplitude * np.sin(2 * np.pi * t / 86_400))
    index = pd.date_range(pd.Timestamp(start), periods=n, freq=f"{step_seconds}s")
    return pd.Series(rng.poisson(rate).astype(float), index=index, name="value")

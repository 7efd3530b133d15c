"""Held-out evaluation traces: synthetic and derived, generated deterministically.

Why: every figure the project quotes (forecast accuracy; cost against the stock HPA at
equal under-provisioning) was developed on the five bundled real traces in
``simulations/traces``. A result that only holds there is overfitted. This module writes
a second, *held-out* set of traces with other shapes (huge dynamic range, level shifts,
cron spikes, heavy-tailed bursts, low counts, changed versions of the real traces) so
the same benchmarks can be rerun on data nobody tuned against. The traces and their
parameters were fixed before any model was run on them; they are for checking
generalisation, not for tuning (see docs/unseen-traces.md).

Who calls it: people, from the command line, and benchmarks, which import it::

    python benchmarks/unseen_traces.py --out DIR [--seed N]

    sys.path.insert(0, "benchmarks"); from unseen_traces import generate
    paths = generate(Path("out/unseen"), seed=0)

Output: one CSV per trace in the bundled format (header ``timestamp,value``; ISO-8601
UTC timestamps marking the start of each evenly spaced interval; an integer count per
interval) and a ``README.md`` in the style of ``simulations/traces/SOURCES.md``.

Determinism: each trace draws from its own generator seeded by ``(seed, crc32(name))``,
so the bytes depend only on the seed, the trace's name and this file (and on the numpy
version, whose ``Generator`` distributions may change between releases; numpy is pinned
in requirements.lock). Adding a trace does not change the others.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# The derived traces read the bundled ones; ``models`` is importable when run from the
# repository root or installed, and this puts the root on the path when run as a script.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from models.traces import bundled_traces_dir, load_trace  # noqa: E402

MINUTE = 60
DAY_MINUTES = 1440


@dataclass(frozen=True)
class Generated:
    """One trace as built: its values on an even grid and what the README says of it."""

    start: pd.Timestamp
    step_seconds: int
    values: np.ndarray  # non-negative integers
    measures: str
    notes: list[str]


Builder = Callable[[np.random.Generator], Generated]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def _minutes(days: int) -> np.ndarray:
    return np.arange(days * DAY_MINUTES, dtype=float)


def _ar1_lognormal(rng: np.random.Generator, n: int, sigma: float, phi: float) -> np.ndarray:
    """Slowly varying multiplicative noise with mean 1 (stationary log-AR(1))."""
    shocks = rng.normal(0.0, sigma * np.sqrt(1.0 - phi * phi), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + shocks[i]
    return np.asarray(np.exp(x - sigma * sigma / 2.0))


def _poisson(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    return np.asarray(rng.poisson(np.maximum(rate, 0.0)), dtype=np.int64)


# --------------------------------------------------------------------------- synthetic


def _match_shape(offset_min: np.ndarray) -> np.ndarray:
    """Load of one match relative to its peak, by minutes from kick-off.

    A sharp ramp in the 20 minutes before kick-off, two halves of 45 minutes with a
    half-time dip, a short post-match peak (results pages) and a fast decay: about two
    hours at 70-100 % of the peak.
    """
    t = offset_min
    y = np.zeros_like(t)
    ramp = (t >= -20) & (t < 0)
    y[ramp] = 0.8 * np.exp((t[ramp] + 0.0) / 6.0)
    first = (t >= 0) & (t < 45)
    y[first] = 0.8 + 0.2 * t[first] / 45.0
    half = (t >= 45) & (t < 60)
    y[half] = 0.7
    second = (t >= 60) & (t < 105)
    y[second] = 0.85 + 0.15 * (t[second] - 60.0) / 45.0
    post = (t >= 105) & (t < 115)
    y[post] = 1.0
    decay = (t >= 115) & (t < 175)
    y[decay] = np.exp(-(t[decay] - 115.0) / 12.0)
    return y


#: kick-off slots (UTC minutes after midnight): 11:00, 13:30, 16:00, 19:00.
_KICKOFFS = (660, 810, 960, 1140)


def worldcup_like(rng: np.random.Generator) -> Generated:
    days = 21
    t = _minutes(days)
    hour = (t % DAY_MINUTES) / 60.0
    base_mean = 300.0  # requests per minute, daily mean of the base load on day 1
    growth = 1.0 + 0.5 * t / t[-1]  # interest grows over the tournament (x1.5)
    diurnal = 1.0 + 0.7 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)  # trough 03:00 UTC
    base = base_mean * growth * diurnal
    # Schedule: 3 days before the tournament without matches, then 0-4 matches a day.
    counts = [0, 0, 0] + list(rng.choice(5, size=days - 3, p=[0.2, 0.15, 0.3, 0.25, 0.1]))
    extra = np.zeros_like(t)
    matches: list[str] = []
    for d, k in enumerate(counts):
        slots = sorted(rng.choice(_KICKOFFS, size=int(k), replace=False)) if k else []
        for ko in slots:
            peak = float(np.exp(rng.uniform(np.log(10.0), np.log(50.0))))
            start = d * DAY_MINUTES + int(ko)
            lo, hi = max(0, start - 30), min(len(t), start + 180)
            daily_base = base_mean * float(growth[start])
            extra[lo:hi] += daily_base * (peak - 1.0) * _match_shape(t[lo:hi] - start)
            matches.append(f"day {d + 1} {ko // 60:02d}:{ko % 60:02d} x{peak:.0f}")
    rate = (base + extra) * _ar1_lognormal(rng, len(t), sigma=0.1, phi=0.98)
    no_match = [d + 1 for d, k in enumerate(counts) if k == 0]
    return Generated(
        start=pd.Timestamp("2024-06-10T00:00:00Z"),
        step_seconds=MINUTE,
        values=_poisson(rng, rate),
        measures="synthetic web requests per minute, World-Cup-1998-like",
        notes=[
            "Intent: a huge dynamic range with sharp, scheduled surges, as in the "
            "1998 World Cup web logs (Arlitt & Jin): nothing in it resembles the bundled "
            "traces' amplitude.",
            f"Base load: {base_mean:g}/min daily mean on day 1, growing linearly to x1.5 by "
            "the last day; daily cycle 1 + 0.7 cos(2 pi (h - 15) / 24) (trough 03:00 UTC, "
            "peak 15:00 UTC).",
            "Matches: none on days 1-3; then 0-4 a day (probabilities 0.2, 0.15, 0.3, "
            "0.25, 0.1) at kick-offs chosen from 11:00, 13:30, 16:00, 19:00 UTC. Each "
            "adds a surge peaking at 10-50x the day's mean base load (log-uniform): "
            "a 20-min exponential ramp before kick-off, ~2 h at 70-100 % of the peak "
            "(two halves, half-time dip, post-match peak), then a 12-min-time-constant "
            "decay.",
            f"Days without matches: {', '.join(map(str, no_match))}.",
            f"Matches ({len(matches)}): " + "; ".join(matches) + ".",
            "Noise: the rate times a slow log-AR(1) factor (sigma 0.1, phi 0.98 per "
            "minute), then Poisson counts.",
        ],
    )


def ecommerce_weekly(rng: np.random.Generator) -> Generated:
    days = 28
    t = _minutes(days)
    hour = (t % DAY_MINUTES) / 60.0
    weekday = ((t // DAY_MINUTES).astype(int)) % 7  # day 1 is a Monday
    # Daily shape: night trough, lunch bump at 12:00, evening peak at 20:00 UTC.
    daily = (
        0.25
        + 0.55 * np.exp(-0.5 * ((hour - 12.0) / 2.5) ** 2)
        + 1.1 * np.exp(-0.5 * ((hour - 20.0) / 2.2) ** 2)
        + 0.3 * np.exp(-0.5 * ((hour - 9.0) / 1.5) ** 2)
    )
    daily = daily / daily.mean()
    weekly_factor = np.array([1.0, 0.97, 0.98, 1.0, 1.08, 1.25, 1.3])  # Mon..Sun
    growth = np.exp(np.log(1.15) * t / (days * DAY_MINUTES))  # +15 % over 4 weeks
    base = 400.0
    rate = base * daily * weekly_factor[weekday] * growth
    rate = rate * _ar1_lognormal(rng, len(t), sigma=0.05, phi=0.95)
    sale_day = int(rng.integers(15, 24))  # 0-based day index: in weeks 3-4
    sale_minute = int(rng.integers(18 * 60, 20 * 60 + 31))  # 18:00-20:30 UTC start
    s0 = sale_day * DAY_MINUTES + sale_minute
    rate[s0 : s0 + 30] *= 5.0
    when = pd.Timestamp("2024-03-04T00:00:00Z") + pd.Timedelta(minutes=s0)
    return Generated(
        start=pd.Timestamp("2024-03-04T00:00:00Z"),
        step_seconds=MINUTE,
        values=_poisson(rng, rate),
        measures="synthetic shop requests per minute",
        notes=[
            "Intent: daily and weekly seasonality with slow growth, plus one unannounced "
            "flash sale that no seasonal model can foresee.",
            f"Base: {base:g}/min times a daily shape (night trough, bumps at 09:00 and "
            "12:00, evening peak at 20:00 UTC; mean 1), weekday factors Mon..Sun "
            "1.0, 0.97, 0.98, 1.0, 1.08, 1.25, 1.3, and exponential growth of +15 % "
            "over the 28 days. Day 1 is a Monday.",
            f"Flash sale: the rate jumps to 5x at {when:%Y-%m-%dT%H:%MZ} (day "
            f"{sale_day + 1}) for exactly 30 minutes, then drops back at once.",
            "Noise: log-AR(1) factor (sigma 0.05, phi 0.95 per minute), then Poisson.",
        ],
    )


def level_shift(rng: np.random.Generator) -> Generated:
    days = 21
    step_min = 5
    t = np.arange(days * DAY_MINUTES // step_min, dtype=float) * step_min
    hour = (t % DAY_MINUTES) / 60.0
    diurnal = 1.0 + 0.6 * np.cos(2 * np.pi * (hour - 14.0) / 24.0)
    level = np.ones_like(t)
    launch = 7 * DAY_MINUTES + 9 * 60  # day 8 (a Monday) at 09:00 UTC
    level[t >= launch] = 2.0
    incident = (t >= 12 * DAY_MINUTES) & (t < 14 * DAY_MINUTES)  # Sat-Sun of that week
    level[incident] = 1.0
    base = 2000.0  # requests per 5 minutes, daily mean before the launch
    rate = base * diurnal * level * _ar1_lognormal(rng, len(t), sigma=0.05, phi=0.9)
    return Generated(
        start=pd.Timestamp("2024-09-02T00:00:00Z"),
        step_seconds=5 * MINUTE,
        values=_poisson(rng, rate),
        measures="synthetic service requests per 5 minutes",
        notes=[
            "Intent: permanent and temporary level shifts; a forecaster that leans on "
            "last week's values is wrong for a week after each.",
            f"Base: {base:g} per 5 min daily mean, daily cycle 1 + 0.6 cos(2 pi (h - 14) "
            "/ 24), no weekly cycle. Day 1 (2024-09-02) is a Monday.",
            "Launch: traffic doubles permanently at 2024-09-09T09:00Z (day 8), in one step.",
            "Incident: from Saturday 2024-09-14T00:00Z to Monday 2024-09-16T00:00Z "
            "(days 13-14) traffic is half the post-launch level, then back to the "
            "post-launch level at once.",
            "Noise: log-AR(1) factor (sigma 0.05, phi 0.9 per step), then Poisson.",
        ],
    )


def cron_batch(rng: np.random.Generator) -> Generated:
    days = 14
    n = days * DAY_MINUTES
    depth = np.zeros(n)
    # Every 15 minutes a small batch, every hour (at :00) a large one; each is queued at
    # once and drained linearly by the workers. Cron starts are late by a minute now
    # and then (a busy scheduler).
    for start in range(0, n, 15):
        hourly = start % 60 == 0
        size = float(rng.lognormal(np.log(600.0 if hourly else 120.0), 0.25))
        drain = int(rng.integers(8, 13)) if hourly else int(rng.integers(3, 5))
        s = start + (1 if rng.random() < 0.1 else 0)
        k = np.arange(drain)
        e = min(n, s + drain)
        depth[s:e] += size * (1.0 - k[: e - s] / drain)
    background = rng.poisson(3.0, n)
    values = np.rint(depth).astype(np.int64) + background
    return Generated(
        start=pd.Timestamp("2024-10-07T00:00:00Z"),
        step_seconds=MINUTE,
        values=values,
        measures="synthetic queue depth (messages waiting) sampled per minute",
        notes=[
            "Intent: load made of scheduled spikes; most of the time it is near zero, "
            "and the peaks are perfectly periodic but short.",
            "Every 15 minutes (:00, :15, :30, :45) a batch of ~120 messages (lognormal, "
            "sigma 0.25) is queued at once and drained linearly in 3-4 minutes; at :00 "
            "the batch is ~600 (lognormal, sigma 0.25) drained in 8-12 minutes. One start "
            "in ten is a minute late.",
            "Background: Poisson with mean 3 per minute. Values are the depth, rounded, "
            "plus the background (a gauge, not a count of arrivals; it is written as a "
            "per-interval value like the others).",
        ],
    )


def onoff_pareto(rng: np.random.Generator) -> Generated:
    days = 14
    n = days * DAY_MINUTES
    sources = 8
    alpha_on, alpha_off = 1.4, 1.2
    min_on, min_off = 2.0, 5.0  # minutes
    cap = float(DAY_MINUTES)  # no single period longer than a day
    rate = np.full(n, 10.0)  # background requests per minute
    for _ in range(sources):
        intensity = float(rng.lognormal(np.log(150.0), 0.6))
        pos = int(rng.integers(0, 600))  # random phase
        on = bool(rng.random() < 0.3)
        while pos < n:
            a, xm = (alpha_on, min_on) if on else (alpha_off, min_off)
            length = int(np.ceil(min(cap, xm * (1.0 + rng.pareto(a)))))
            if on:
                rate[pos : pos + length] += intensity
            pos += length
            on = not on
    rate = rate * _ar1_lognormal(rng, n, sigma=0.1, phi=0.8)
    return Generated(
        start=pd.Timestamp("2024-11-04T00:00:00Z"),
        step_seconds=MINUTE,
        values=_poisson(rng, rate),
        measures="synthetic requests per minute from heavy-tailed on/off sources",
        notes=[
            "Intent: bursty, self-similar traffic with no seasonality at all (the classic "
            "superposition of Pareto on/off sources, Willinger et al. 1997); a seasonal "
            "model has nothing to lock on to.",
            f"{sources} independent sources; each, while on, adds a constant rate drawn "
            "lognormal around 150/min (sigma 0.6). On durations: Pareto (Lomax + 1) with "
            f"alpha {alpha_on}, minimum {min_on:g} min; off durations alpha {alpha_off}, "
            f"minimum {min_off:g} min; both capped at one day. Background 10/min.",
            "Noise: log-AR(1) factor (sigma 0.1, phi 0.8 per minute), then Poisson.",
        ],
    )


def lowcount_api(rng: np.random.Generator) -> Generated:
    days = 14
    t = _minutes(days)
    hour = (t % DAY_MINUTES) / 60.0
    mean = 5.0
    rate = mean * (1.0 + 0.6 * np.cos(2 * np.pi * (hour - 16.0) / 24.0))
    return Generated(
        start=pd.Timestamp("2024-12-02T00:00:00Z"),
        step_seconds=MINUTE,
        values=_poisson(rng, rate),
        measures="synthetic requests per minute to a low-volume API",
        notes=[
            "Intent: counts so small that Poisson noise dominates (zeros are common); "
            "a model that chases the noise over-scales, and one pod is usually enough.",
            f"Rate {mean:g}/min x (1 + 0.6 cos(2 pi (h - 16) / 24)) (peak 16:00 UTC, "
            "2 to 8 per minute), pure Poisson counts, no weekly cycle.",
        ],
    )


# ----------------------------------------------------------------------------- derived


def _bundled(name: str) -> tuple[pd.Series, int, str]:
    path = bundled_traces_dir() / f"{name}.csv"
    trace = load_trace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return trace.series, trace.step_seconds, digest


def nasa_resampled(rng: np.random.Generator) -> Generated:
    del rng  # a fixed transformation: no randomness
    src = "nasa_http_jul1995_1min"
    series, step, digest = _bundled(src)
    per = 5 * MINUTE // step
    full = len(series) // per * per  # drop the final partial bin
    values = series.to_numpy()[:full].reshape(-1, per).sum(axis=1).astype(np.int64)
    return Generated(
        start=series.index[0],
        step_seconds=5 * MINUTE,
        values=values,
        measures="HTTP requests per 5 minutes to the NASA KSC WWW server (derived)",
        notes=[
            "Intent: the NASA trace at a coarser step, so that a model is tested with "
            "5-minute lead-time arithmetic and smoother input.",
            f"Derived from the bundled `{src}.csv` (sha256 {digest}): sums of 5 "
            "consecutive 1-minute counts from the first row; the final partial bin "
            f"({len(series) - full} minutes) is dropped. Same for any --seed.",
            "Licence: as the bundled trace (NASA-HTTP logs, Internet Traffic Archive: "
            '"The traces may be freely redistributed."). See '
            "simulations/traces/SOURCES.md.",
        ],
    )


def elb_reversed(rng: np.random.Generator) -> Generated:
    del rng  # a fixed transformation: no randomness
    src = "nab_elb_request_count_5min"
    series, step, digest = _bundled(src)
    return Generated(
        start=series.index[0],
        step_seconds=step,
        values=series.to_numpy()[::-1].astype(np.int64),
        measures="AWS ELB RequestCount per 5 minutes, time-reversed (derived)",
        notes=[
            "Intent: the same values and periodicities as the ELB trace but every ramp "
            "flipped (a slow rise becomes a slow fall, a spike's decay becomes its "
            "onset), so that a model cannot profit from having seen the original.",
            f"Derived from the bundled `{src}.csv` (sha256 {digest}): the values in "
            "reverse order on the original timestamp grid (the first row gets the last "
            "value). The daily and weekly periods are kept; their phase is not (the "
            "reversed weekend dips no longer fall on the calendar weekend). The 8 "
            "zero-filled rows of the source are reversed with the rest. Same for any "
            "--seed.",
            "Licence: MIT (Numenta Anomaly Benchmark). See simulations/traces/SOURCES.md.",
        ],
    )


def wikipedia_noisy(rng: np.random.Generator) -> Generated:
    src = "wikipedia_pagecounts_2009_hourly"
    series, step, digest = _bundled(src)
    per = step // (10 * MINUTE)  # 6 ten-minute steps per hour
    hourly = series.to_numpy(dtype=float)
    # Each hourly count is taken as the mean rate over its hour, placed at the hour's
    # midpoint; ten-minute rates are linearly interpolated at each ten-minute midpoint
    # (held flat beyond the first and last midpoints).
    x_hour = np.arange(len(hourly)) * per + per / 2.0
    x_ten = np.arange(len(hourly) * per) + 0.5
    rate = np.interp(x_ten, x_hour, hourly / per)
    sigma = 0.05
    noise = rng.lognormal(-sigma * sigma / 2.0, sigma, len(rate))
    values = np.rint(rate * noise).astype(np.int64)
    rel = np.abs(values.reshape(-1, per).sum(axis=1) / hourly - 1.0)
    return Generated(
        start=series.index[0],
        step_seconds=10 * MINUTE,
        values=values,
        measures="Wikimedia page requests per 10 minutes, interpolated + noise (derived)",
        notes=[
            "Intent: the Wikipedia trace at a finer step than its source resolution, "
            "with independent noise, so the model sees a 10-minute series whose "
            "sub-hour detail is unknown to anybody.",
            f"Derived from the bundled `{src}.csv` (sha256 {digest}): each hourly count "
            "is taken as the mean rate over its hour, placed at the hour's midpoint, and "
            "linearly interpolated to each 10-minute interval's midpoint (held flat "
            "before the first and after the last midpoint); each value is then the "
            "interpolated count per 10 minutes times independent lognormal noise "
            f"(sigma {sigma}, mean 1), rounded. Sums over each hour against the source: "
            f"median error {np.median(rel):.1%}, worst hour {rel.max():.1%}.",
            "Licence: the underlying pagecounts-raw data are public domain (Wikimedia); "
            "the aggregate comes from a GPL-3.0 repository with no separate data "
            "licence. See simulations/traces/SOURCES.md.",
        ],
    )


#: name -> builder, in the order written. Names end with the step, like the bundled ones.
TRACES: dict[str, Builder] = {
    "worldcup_like_1min": worldcup_like,
    "ecommerce_weekly_1min": ecommerce_weekly,
    "level_shift_5min": level_shift,
    "cron_batch_1min": cron_batch,
    "onoff_pareto_1min": onoff_pareto,
    "lowcount_api_1min": lowcount_api,
    "nasa_resampled_5min": nasa_resampled,
    "elb_reversed_5min": elb_reversed,
    "wikipedia_10min_noisy": wikipedia_noisy,
}

#: traces built from the bundled real ones (the rest are synthetic).
DERIVED: frozenset[str] = frozenset(
    {"nasa_resampled_5min", "elb_reversed_5min", "wikipedia_10min_noisy"}
)


# ------------------------------------------------------------------------------ output


def _csv_bytes(g: Generated) -> bytes:
    if g.values.ndim != 1 or len(g.values) < 2:
        raise ValueError("a trace needs at least two values")
    if g.values.dtype.kind not in "iu" or int(g.values.min()) < 0:
        raise ValueError("values must be non-negative integers")
    start = round(g.start.timestamp())  # unix seconds; every start is a whole second
    grid = (start + np.arange(len(g.values), dtype=np.int64) * g.step_seconds).astype(
        "datetime64[s]"
    )
    # numpy's formatting is ~10x faster than strftime and gives the same text.
    stamps = np.datetime_as_string(grid, unit="s").tolist()
    lines = [f"{s}Z,{v}" for s, v in zip(stamps, g.values.tolist(), strict=True)]
    return ("timestamp,value\n" + "\n".join(lines) + "\n").encode("ascii")


def _span(g: Generated) -> str:
    end = g.start + pd.Timedelta(seconds=g.step_seconds * (len(g.values) - 1))
    days = len(g.values) * g.step_seconds / 86400.0
    return f"{g.start:%Y-%m-%dT%H:%MZ} – {end:%Y-%m-%dT%H:%MZ} ({days:.1f} days)"


def _step(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"


def _readme(seed: int, built: list[tuple[str, Generated, str]]) -> str:
    out = [
        "# Held-out evaluation traces: sources",
        "",
        f"Written by `python benchmarks/unseen_traces.py --out DIR --seed {seed}` "
        "(see docs/unseen-traces.md). These traces are **synthetic or derived**, not "
        "new real measurements. They were chosen, with their parameters, **before** "
        "any model or policy was run on them, and are for checking that results "
        "generalise beyond the five bundled traces, **not for tuning**: a change made "
        "because of a figure on these traces spoils them as a held-out set.",
        "",
        "Format as in simulations/traces/SOURCES.md: header `timestamp,value`; "
        "`timestamp` is ISO-8601 UTC (`YYYY-MM-DDTHH:MM:SSZ`) and marks the start of "
        "the interval; `value` is an integer count per interval. Evenly spaced, no "
        "missing rows. The dates of the synthetic traces are arbitrary.",
        "",
        "| name | kind | measures | resolution | period (UTC) | points |",
        "|---|---|---|---|---|---|",
    ]
    for name, g, _ in built:
        kind = "derived" if name in DERIVED else "synthetic"
        out.append(
            f"| {name} | {kind} | {g.measures} | {_step(g.step_seconds)} | {_span(g)} "
            f"| {len(g.values):,} |"
        )
    for name, g, digest in built:
        v = g.values
        out += [
            "",
            f"## {name}",
            *[f"- {note}" for note in g.notes],
            f"- Figures (of this file): mean {v.mean():,.1f}, median {np.median(v):,.0f}, "
            f"p10 {np.percentile(v, 10):,.0f}, p99.9 {np.percentile(v, 99.9):,.0f}, "
            f"max {int(v.max()):,}, zeros {(v == 0).mean():.1%}.",
            f"- Output sha256 {digest} (seed {seed}).",
        ]
    return "\n".join(out) + "\n"


def generate(out_dir: Path, seed: int = 0) -> list[Path]:
    """Write every held-out trace and a README.md into ``out_dir``; return the CSV paths.

    The same ``seed`` gives the same bytes. ``seed`` must be a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built: list[tuple[str, Generated, str]] = []
    paths: list[Path] = []
    for name, build in TRACES.items():
        g = build(_rng(seed, name))
        data = _csv_bytes(g)
        path = out_dir / f"{name}.csv"
        path.write_bytes(data)
        built.append((name, g, hashlib.sha256(data).hexdigest()))
        paths.append(path)
    (out_dir / "README.md").write_text(_readme(seed, built), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="non-negative integer (default 0)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        print(f"--seed: {args.seed} is negative; give a non-negative integer", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"--out: {args.out} exists and is not a folder; give a folder", file=sys.stderr)
        return 2
    try:
        paths = generate(args.out, args.seed)
    except OSError as err:
        print(f"--out: cannot write into {args.out}: {err}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    print(args.out / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``SimClock``: the simulated clock that the simulator hands to the decision path.

It implements ``autoscaler.clock.Clock`` (``now`` and ``sleep``) so that code written
against the protocol runs unchanged under simulation: ``sleep`` advances simulated time
instantly instead of waiting. The engine advances it one HPA sync period (15 s) per tick.

Callers: ``simulations.engine``; tests.
"""

from __future__ import annotations

import math

from models.errors import InputError


class SimClock:
    """Simulated time in unix seconds (UTC), advanced only by ``sleep`` or ``advance_to``."""

    def __init__(self, start: float) -> None:
        if not math.isfinite(start):
            raise InputError("clock", f"start time {start!r} is not finite", "")
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (no real waiting)."""
        if seconds > 0:
            self._now += float(seconds)

    def advance_to(self, t: float) -> None:
        """Jump to ``t``; time never runs backwards."""
        if t < self._now:
            raise ValueError(f"simulated time cannot go back from {self._now} to {t}")
        self._now = float(t)

"""The ``Clock`` protocol: decision code never reads the wall clock itself.

The controller runs on ``WallClock``; the simulator swaps in a simulated clock with the
same two methods, and nothing else changes (SimPy's Environment vs RealtimeEnvironment).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the unix epoch (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

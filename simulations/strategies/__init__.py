"""The scaling strategies the simulator compares, one file each, and their registry.

| name | file | what |
|---|---|---|
| ``hpa-cpu`` | ``hpa_cpu.py`` | the stock HPA on CPU utilisation (default target 70 %) |
| ``hpa-rps`` | ``hpa_rps.py`` | the stock HPA on the request rate (External, ``AverageValue``) |
| ``predictive`` | ``predictive.py`` | ours: the controller itself, in a simulated world |
| ``oracle`` | ``oracle.py`` | knows the future: the lower bound on cost at zero misses |
| ``static`` | ``static.py`` | a fixed replica count (default: enough for the peak) |

A strategy is named ``kind`` or ``kind@value``: ``hpa-cpu@50`` is the CPU HPA at a 50 %
target, ``hpa-rps@60`` the rate HPA at 60 % of capacity per replica,
``predictive@0.95`` the predictive strategy at risk quantile 0.95, ``static@12``
twelve fixed replicas. To add one: a class with ``name`` and ``run(ctx) -> Timeline``
in a file of its own, and one row in ``STRATEGIES``.

("Policies", in this project, are finance's budgets: the ``policies`` package.)

Callers: ``simulations.scenario``, ``simulations.sweep``, the CLI.
"""

from __future__ import annotations

from collections.abc import Callable

from models.errors import InputError
from policies.knobs import KnobOverrides
from simulations.strategies.base import RunContext, Strategy
from simulations.strategies.hpa_cpu import HpaCpu
from simulations.strategies.hpa_rps import HpaRps
from simulations.strategies.oracle import Oracle, oracle_need
from simulations.strategies.predictive import Predictive, PredictiveSettings
from simulations.strategies.static import Static

__all__ = [
    "STRATEGIES",
    "HpaCpu",
    "HpaRps",
    "Oracle",
    "Predictive",
    "PredictiveSettings",
    "RunContext",
    "Static",
    "Strategy",
    "make_strategy",
    "oracle_need",
    "parse_strategies",
]


def _pct(value: str, where: str) -> int:
    try:
        pct = int(value)
    except ValueError as err:
        raise InputError(where, f"target {value!r} is not a whole percentage", "e.g. 70") from err
    if not 1 <= pct <= 1000:
        raise InputError(where, f"target {pct} % is out of range", "use 1..1000")
    return pct


def _hpa_cpu(arg: str | None, where: str) -> Strategy:
    if arg is None:
        return HpaCpu()
    return HpaCpu(_pct(arg, where), name=f"hpa-cpu@{arg}")


def _hpa_rps(arg: str | None, where: str) -> Strategy:
    if arg is None:
        return HpaRps()
    return HpaRps(_pct(arg, where), name=f"hpa-rps@{arg}")


def _predictive(arg: str | None, where: str) -> Strategy:
    if arg is None:
        return Predictive()
    try:
        q = float(arg)
    except ValueError as err:
        raise InputError(
            where, f"quantile {arg!r} is not a number", "e.g. predictive@0.95"
        ) from err
    if not 0.5 < q < 1.0:
        raise InputError(
            where,
            f"quantile {q} is outside (0.5, 1): it measures the forecast's upper tail",
            "e.g. predictive@0.95",
        )
    return Predictive(KnobOverrides(risk_quantile=q), name=f"predictive@{arg}")


def _oracle(arg: str | None, where: str) -> Strategy:
    if arg is not None:
        raise InputError(where, "oracle takes no parameter", "write just oracle")
    return Oracle()


def _static(arg: str | None, where: str) -> Strategy:
    if arg is None:
        return Static()
    try:
        n = int(arg)
    except ValueError as err:
        raise InputError(
            where, f"replicas {arg!r} is not a whole number", "e.g. static@10"
        ) from err
    if n < 1:
        raise InputError(where, f"replicas {n} < 1", "a static strategy runs at least one pod")
    return Static(n, name=f"static@{arg}")


#: The registry: strategy kind -> factory(parameter or None, where).
STRATEGIES: dict[str, Callable[[str | None, str], Strategy]] = {
    "hpa-cpu": _hpa_cpu,
    "hpa-rps": _hpa_rps,
    "predictive": _predictive,
    "oracle": _oracle,
    "static": _static,
}


def make_strategy(text: str, where: str = "--policy") -> Strategy:
    """A strategy from ``kind`` or ``kind@value``."""
    kind, _, arg = text.strip().partition("@")
    try:
        factory = STRATEGIES[kind]
    except KeyError as err:
        raise InputError(
            where, f"unknown policy {kind!r}", f"choose from {', '.join(STRATEGIES)}"
        ) from err
    return factory(arg or None, where)


def parse_strategies(text: str, where: str = "--policy") -> list[Strategy]:
    """A comma-separated list; names must be unique."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise InputError(where, "no policy given", f"e.g. {','.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise InputError(where, "a policy is listed twice", "list each policy once")
    return [make_strategy(n, where) for n in names]

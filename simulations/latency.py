"""M/M/c latency model: the p99 response time of a tick from load and ready pods.

The simulator needs a latency figure per tick to count SLO-violation minutes (the
platform SLO is p99 < 500 ms). Each workload is modelled as an M/M/c queue: Poisson
arrivals at rate ``lam`` (requests/s), ``c`` ready pods, each serving exponentially
distributed requests at rate ``mu`` (requests/s one pod serves at 100 % CPU).

The sojourn time (waiting + service) T = W + S has, with offered load ``a = lam/mu``,
utilization ``rho = a/c`` and Erlang C probability of waiting ``C = C(c, a)``:

* ``P(W > t) = C * exp(-theta t)`` with ``theta = c*mu - lam`` (FCFS);
* S ~ Exp(mu), independent of W, so

      P(T > t) = (1 - C) e^{-mu t} + C * P(S + E > t),   E ~ Exp(theta),
      P(S + E > t) = e^{-mu t} (1 + mu t h((theta - mu) t)),   h(x) = (1 - e^{-x}) / x,

  which is the hypoexponential tail (theta != mu) and the Erlang-2 tail
  ``e^{-mu t}(1 + mu t)`` at theta == mu (h(0) = 1). For c = 1 it reduces to
  ``P(T > t) = e^{-(mu - lam) t}``, so the M/M/1 p99 is ``ln(100) / (mu - lam)``.

The q-quantile solves ``P(T > t) = 1 - q``; the tail is strictly decreasing, so Newton's
method on its logarithm, kept inside two proven bounds, converges for every tick at once.

Erlang B/C are computed in log space from the Poisson distribution
(``B = pmf(c; a) / cdf(c; a)``, via ``gammaln`` and the regularized incomplete gamma
function), which is stable for c in the thousands; ``erlang_b_recursive`` is the
textbook recursion, kept as a scalar reference.

Data-edge policy (documented, tested):

* unstable queue (``lam >= c * mu``, including c = 0 with lam > 0): ``+inf``;
* no arrivals (``lam == 0``) with c >= 1: the p99 of service alone, ``ln(100)/mu``
  (what a first request would see);
* no arrivals and no pods: ``nan`` ("no request was served or waited": it is neither
  fast nor slow, and ``nan > slo`` is False, so it is not a violation);
* negative or non-finite ``lam``, negative ``c``, ``mu <= 0``: ``InputError``.

Called by ``simulations.engine`` once per run on whole per-tick arrays.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc, gammaln

from models.errors import InputError

__all__ = [
    "erlang_b",
    "erlang_b_recursive",
    "erlang_c",
    "mmc_p99",
    "mmc_sojourn_quantile",
    "mmc_sojourn_tail",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# Cap on the safeguarded Newton steps. On random ticks with c up to 2000 and rho up to
# 0.99995, 4 steps reached machine precision; the cap only bounds the loop.
_MAX_NEWTON_STEPS = 40


def erlang_b_recursive(c: int, a: float) -> float:
    """Erlang B by the recursion ``B(k) = a B(k-1) / (k + a B(k-1))``, ``B(0) = 1``.

    Exact in floating point for any c (every step is a ratio of positive numbers); O(c).
    """
    if c < 0 or a < 0:
        raise InputError("erlang_b", f"needs c >= 0 and a >= 0, got c={c}, a={a}", "")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def _as_float(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise InputError(name, "contains NaN", "fill or drop missing ticks before the model")
    return arr


def erlang_b(c: ArrayLike, a: ArrayLike) -> FloatArray:
    """Erlang B blocking probability, vectorised: ``pmf(c; a) / cdf(c; a)`` for Poisson(a).

    ``c`` are server counts (>= 0, integers), ``a`` offered loads in Erlangs (>= 0).
    """
    c_arr = np.asarray(c, dtype=np.float64)
    a_arr = _as_float(a, "offered load")
    c_arr, a_arr = np.broadcast_arrays(c_arr, a_arr)
    out = np.ones(c_arr.shape, dtype=np.float64)  # c = 0 blocks everything
    pos = (c_arr > 0) & (a_arr > 0)
    out[(c_arr > 0) & (a_arr == 0)] = 0.0
    if np.any(pos):
        cc = c_arr[pos]
        aa = a_arr[pos]
        log_pmf = cc * np.log(aa) - aa - gammaln(cc + 1.0)
        cdf = gammaincc(cc + 1.0, aa)  # P(N <= c) for N ~ Poisson(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.exp(log_pmf) / cdf
        # Far beyond saturation the cdf underflows; B -> 1 - c/a there. The HPA never
        # runs such a queue stable, but keep the figure finite and in [0, 1].
        bad = ~np.isfinite(b) | (b > 1.0)
        if np.any(bad):
            b[bad] = np.clip(1.0 - cc[bad] / aa[bad], 0.0, 1.0)
        out[pos] = b
    return out


def erlang_c(c: ArrayLike, a: ArrayLike) -> FloatArray:
    """Erlang C, the probability that an arrival waits: ``B / (1 - rho (1 - B))``.

    Defined for stable queues (``a < c``); returns 1.0 where ``a >= c`` (every arrival
    waits, forever).
    """
    c_arr = np.asarray(c, dtype=np.float64)
    a_arr = _as_float(a, "offered load")
    c_arr, a_arr = np.broadcast_arrays(c_arr, a_arr)
    b = erlang_b(c_arr, a_arr)
    out = np.ones(c_arr.shape, dtype=np.float64)
    stable = a_arr < c_arr
    rho = np.divide(a_arr, c_arr, out=np.zeros_like(a_arr), where=stable)
    out[stable] = b[stable] / (1.0 - rho[stable] * (1.0 - b[stable]))
    return out


def _tail_and_density(
    t: FloatArray, mu: FloatArray, theta: FloatArray, c_wait: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``P(T > t)`` of the M/M/c sojourn time and its density ``f_T(t)``.

    ``P(S + E > t) = e^{-mu t} + mu t e^{-mu t} h(x)`` and its density
    ``mu theta t e^{-mu t} h(x)``, with ``x = (theta - mu) t`` and
    ``h(x) = (1 - e^{-x}) / x``. Near x = 0 the direct difference of exponentials
    cancels, so h comes from ``expm1`` (and its series at |x| < 1e-8). For x < -1
    (theta well below mu, near saturation) h overflows long before the product does, so
    there the direct form ``mu t e^{-mu t} h(x) = mu (e^{-mu t} - e^{-theta t}) /
    (theta - mu)`` is used; it has no cancellation problem there.
    """
    x = (theta - mu) * t
    e_mu = np.exp(-mu * t)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        h = np.where(np.abs(x) < 1e-8, 1.0 - 0.5 * x, -np.expm1(-x) / x)
        series = mu * t * e_mu * h
        direct = mu * (e_mu - np.exp(-theta * t)) / (theta - mu)
    extra = np.where(x < -1.0, direct, series)  # = P(S + E > t) - e^{-mu t}
    tail = e_mu + c_wait * extra
    density = (1.0 - c_wait) * mu * e_mu + c_wait * theta * extra
    return tail, density


def _tail(t: FloatArray, mu: FloatArray, theta: FloatArray, c_wait: FloatArray) -> FloatArray:
    """``P(T > t)`` alone (see ``_tail_and_density``)."""
    return _tail_and_density(t, mu, theta, c_wait)[0]


def _prepare(
    lam: ArrayLike, c: ArrayLike, mu: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    lam_arr = _as_float(lam, "arrival rate")
    c_arr = _as_float(c, "ready pods")
    mu_arr = _as_float(mu, "service rate")
    lam_arr, c_arr, mu_arr = np.broadcast_arrays(lam_arr, c_arr, mu_arr)
    if np.any(lam_arr < 0) or not np.all(np.isfinite(lam_arr)):
        raise InputError("arrival rate", "must be finite and >= 0 requests/s", "")
    if np.any(c_arr < 0) or np.any(c_arr != np.floor(c_arr)):
        raise InputError("ready pods", "must be whole numbers >= 0", "")
    if np.any(mu_arr <= 0) or not np.all(np.isfinite(mu_arr)):
        raise InputError("service rate", "must be finite and > 0 requests/s per pod", "")
    return (
        np.array(lam_arr, dtype=np.float64),
        np.array(c_arr, dtype=np.float64),
        np.array(mu_arr, dtype=np.float64),
    )


def mmc_sojourn_tail(t: ArrayLike, lam: ArrayLike, c: ArrayLike, mu: ArrayLike) -> FloatArray:
    """``P(T > t)`` for the M/M/c sojourn time; 1.0 where the queue is unstable."""
    t_arr, lam_b, c_b, mu_b = np.broadcast_arrays(_as_float(t, "t"), *_prepare(lam, c, mu))
    t_arr, lam_arr, c_arr, mu_arr = (
        np.array(a, dtype=np.float64) for a in (t_arr, lam_b, c_b, mu_b)
    )
    out = np.ones(lam_arr.shape, dtype=np.float64)
    stable = lam_arr < c_arr * mu_arr
    if np.any(stable):
        theta = c_arr[stable] * mu_arr[stable] - lam_arr[stable]
        cw = erlang_c(c_arr[stable], lam_arr[stable] / mu_arr[stable])
        out[stable] = _tail(t_arr[stable], mu_arr[stable], theta, cw)
    return out


def mmc_sojourn_quantile(
    lam: ArrayLike, c: ArrayLike, mu: ArrayLike, q: float = 0.99
) -> FloatArray:
    """The q-quantile of the M/M/c response time (seconds), one value per element.

    See the module docstring for the unstable, idle and empty cases.
    """
    if not 0.0 < q < 1.0:
        raise InputError("quantile", f"must be in (0, 1), got {q}", "")
    lam_arr, c_arr, mu_arr = _prepare(lam, c, mu)
    out = np.full(lam_arr.shape, np.inf, dtype=np.float64)
    p = 1.0 - q
    log_inv_p = math.log(1.0 / p)

    idle = lam_arr == 0
    out[idle & (c_arr >= 1)] = log_inv_p / mu_arr[idle & (c_arr >= 1)]
    out[idle & (c_arr == 0)] = np.nan

    busy = (~idle) & (lam_arr < c_arr * mu_arr)
    if not np.any(busy):
        return out
    mu_b = mu_arr[busy]
    theta = c_arr[busy] * mu_b - lam_arr[busy]
    cw = erlang_c(c_arr[busy], lam_arr[busy] / mu_b)
    # Bracket: T >= S gives P(T > t) >= e^{-mu t}, so t_q >= ln(1/p)/mu. And
    # P(T > t) <= P(S > t/2) + P(W > t/2) <= e^{-mu t/2} + C e^{-theta t/2}; each term is
    # <= p/2 beyond the upper bound below.
    lo = log_inv_p / mu_b
    hi = 2.0 * np.maximum(math.log(2.0 / p) / mu_b, np.log(np.maximum(2.0 * cw / p, 1.0)) / theta)
    hi = np.maximum(hi, lo)
    # Newton's method on the log of the tail, from the lower bound: log P(T > t) is
    # close to linear in t (exactly so for one exponential, where one step lands on the
    # root), so a few steps reach machine precision. Each step keeps the root bracketed
    # and falls back to the midpoint if Newton would leave the bracket.
    log_p = math.log(p)
    t = lo.copy()
    for _ in range(_MAX_NEWTON_STEPS):
        tail, density = _tail_and_density(t, mu_b, theta, cw)
        above = tail > p
        lo = np.where(above, t, lo)
        hi = np.where(above, hi, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.log(tail) - log_p
            newton = t + gap * tail / density
        if np.all(np.abs(gap) < 1e-14):
            break
        t = np.where((newton >= lo) & (newton <= hi), newton, 0.5 * (lo + hi))
    out[busy] = t
    return out


def mmc_p99(lam: ArrayLike, c: ArrayLike, mu: ArrayLike) -> FloatArray:
    """p99 response time (seconds) per tick: ``mmc_sojourn_quantile(..., q=0.99)``."""
    return mmc_sojourn_quantile(lam, c, mu, 0.99)

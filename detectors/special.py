"""The six special functions the detectors use, on numpy and the standard library alone.

They were ``scipy.special``'s ufuncs; the product used nothing else of scipy, and scipy with
the OpenBLAS its ``special`` links was 41 MB of the 297 MB container image (docs/operations.md).
Each function here is compared with scipy's over the arguments the detectors pass
(tests/unit/test_special.py, where scipy is a test dependency).

Costs: ``erf`` and ``erfc`` call the C library's function once an element (no bytecode per
element; about 0.15 us an element against scipy's ~0.03), once per batch of closed windows, never
per event. ``ndtri`` runs ``NormalDist.inv_cdf`` (a few lines of Python around a C function) an
element, ~0.1 us: the detectors pass it scalars and, once at import, two 4,097-entry tables (~1 ms).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
_STANDARD = NormalDist()


def _elementwise(fn: Callable[[float], float], x: ArrayLike) -> np.ndarray:
    """``fn`` of one float over every element of ``x`` (no Python loop), as a float64 array of its shape."""
    a = np.asarray(x, dtype=np.float64)
    return np.fromiter(map(fn, a.ravel().tolist()), np.float64, a.size).reshape(a.shape)


def erf(x: ArrayLike) -> np.ndarray:
    """The error function, elementwise (the C library's ``erf``)."""
    return _elementwise(math.erf, x)


def erfc(x: ArrayLike) -> np.ndarray:
    """``1 - erf(x)`` without cancellation, elementwise (the C library's ``erfc``; 0 past x = 26.5)."""
    return _elementwise(math.erfc, x)


def ndtri(p: ArrayLike) -> np.ndarray:
    """The standard normal quantile of ``p`` in (0, 1), elementwise (Wichura's AS241 in ``statistics``).

    ``p`` of 0 or 1 raises ``statistics.StatisticsError`` (a ``ValueError``): scipy's +-inf there
    has no use in the detectors, which pass order-statistic plotting positions and fixed quantiles.
    """
    return _elementwise(_STANDARD.inv_cdf, p)


def log_ndtr(x: ArrayLike) -> np.ndarray:
    """``log`` of the standard normal CDF, finite as far as it is (-1e6 at x = -1414).

    From one ``erfc`` of ``|x|``: above 0, ``log1p(-Phi(-x))`` (``log`` of a number close to 1
    would lose up to ~1e-7 of the value by x = 6); from -20 to 0, ``log(Phi(x))``; below -20, where
    ``erfc`` underflows further on, the asymptotic series
    ``-x^2/2 - log(-x sqrt(2 pi)) + log(1 - 1/x^2 + 3/x^4 - ...)`` (12 terms: the 13th is below 1e-18),
    computed only when some element is there.
    """
    a = np.asarray(x, dtype=np.float64)
    tail = 0.5 * erfc(np.abs(a) / _SQRT2)  # Phi(-|x|)
    with np.errstate(divide="ignore"):
        out = np.where(a > 0.0, np.log1p(-tail), np.log(tail))
    far = a < -20.0
    if far.any():
        out[far] = _log_ndtr_far(a[far])
    return out


def _log_ndtr_far(x: np.ndarray) -> np.ndarray:
    """:func:`log_ndtr` below -20 by its asymptotic series (alternating; terms shrink to x^2/2 of them)."""
    inv2 = 1.0 / (x * x)
    term, series = np.ones_like(x), np.zeros_like(x)
    for n in range(1, 13):
        term = term * -(2 * n - 1) * inv2
        series = series + term
    return -0.5 * x * x - np.log(-x) - _LOG_SQRT_2PI + np.log1p(series)


def chdtrc(df: int, x: float) -> float:
    """The chi-squared survival function ``P(X > x)`` for a whole number ``df >= 1`` of degrees of freedom.

    A closed form for whole ``df``: ``exp(-x/2) * sum (x/2)^i / i!`` over ``i < df/2`` for even ``df``,
    ``erfc(sqrt(x/2))`` plus ``exp(-x/2) * sum (x/2)^(i+1/2) / Gamma(i+3/2)`` over ``i < (df-1)/2``
    for odd; every term is positive (no cancellation) and taken through its log (no underflow of
    ``exp(-x/2)`` before a large power). ``df`` terms at most: the G-test has one per bin.
    """
    if df < 1 or df != int(df):
        raise ValueError(f"chdtrc needs a whole number of degrees of freedom >= 1, got {df}")
    if not x > 0.0:
        return 1.0 if x <= 0.0 else math.nan
    half = 0.5 * x
    log_half = math.log(half)
    if df % 2 == 0:
        return math.fsum(math.exp(i * log_half - half - math.lgamma(i + 1.0)) for i in range(df // 2))
    return math.erfc(math.sqrt(half)) + math.fsum(
        math.exp((i + 0.5) * log_half - half - math.lgamma(i + 1.5)) for i in range((df - 1) // 2))


_LOG_FACTORIAL_TABLE = np.array([math.lgamma(i + 1.0) for i in range(256)])


def _log_gamma_whole(m: np.ndarray) -> np.ndarray:
    """``log Gamma(m)`` for whole ``m >= 1``: a table below 257, Stirling's series (error < 1e-24) above."""
    small = _LOG_FACTORIAL_TABLE[np.clip(m - 1, 0, 255).astype(np.int64)]
    big = np.maximum(m, 257.0)
    inv, inv2 = 1.0 / big, 1.0 / (big * big)
    stirling = ((big - 0.5) * np.log(big) - big + _LOG_SQRT_2PI
                + inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680))))
    return np.where(m <= 256, small, stirling)


_BETA_EPS = 1e-15
_BETA_TINY = 1e-300


def _beta_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of the regularized incomplete beta (modified Lentz), elementwise,
    iterated until every element converged; it does within about ``sqrt(max(a, b))`` steps when
    ``x < (a + 1) / (a + b + 2)``, which :func:`bdtr` arranges."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _BETA_TINY, _BETA_TINY, d)
    h = d.copy()
    done = np.zeros(x.shape, dtype=bool)
    limit = 100 + 10 * int(math.sqrt(float(np.max(np.maximum(a, b), initial=1.0))))
    for m in range(1, limit + 1):
        m2 = 2.0 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < _BETA_TINY, _BETA_TINY, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < _BETA_TINY, _BETA_TINY, c)
            step = np.where(done, 1.0, d * c)
            h = h * step
        done |= np.abs(step - 1.0) < _BETA_EPS
        if done.all():
            return h
    raise ArithmeticError(f"the incomplete beta's continued fraction did not converge in {limit} steps; "
                          "report the arguments (a, b, x) that reach this")


def bdtr(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> np.ndarray:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, elementwise, for whole ``0 <= k``, ``n`` and ``p`` in [0, 1].

    The regularized incomplete beta ``I_{1-p}(n - k, k + 1)``: its continued fraction on whichever
    side converges (the other side as ``1 - I_p(k + 1, n - k)``), times ``x^a (1-x)^b / (a B(a, b))``
    taken through logs. 1 where ``k >= n``.
    """
    k_, n_, p_ = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (k, n, p)))
    inside = k_ < n_
    a = np.where(inside, n_ - k_, 1.0)
    b = np.where(inside, k_ + 1.0, 1.0)
    q = np.where(inside, p_, 0.5)
    flip = 1.0 - q > (a + 1.0) / (a + b + 2.0)
    # x and 1 - x both from p, so that neither is 1 - (1 - p)
    a, b, x, y = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, q, 1.0 - q), np.where(flip, 1.0 - q, q)
    log_beta = _log_gamma_whole(a) + _log_gamma_whole(b) - _log_gamma_whole(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        front = np.exp(a * np.log(x) + b * np.log(y) - log_beta) / a
        side = np.where(x > 0.0, front * _beta_fraction(a, b, x), 0.0)
    return np.where(inside, np.where(flip, 1.0 - side, side), 1.0)

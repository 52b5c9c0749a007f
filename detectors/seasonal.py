"""Seasonal baseline: what this series usually does at this hour of this day of the week."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import ZBank, signed_z
from modelmedic.detectors.robust import MAD_TO_STD


class SeasonalBank(ZBank):
    """Distance from the running level of the value's time bucket, in robust standard deviations.

    Time is cut into ``buckets`` equal buckets per ``period`` (defaults: 168 hours of
    the week, for request rates that follow the working day and the weekend). Each
    bucket keeps a Huber-clipped running mean of the values that fell in it (float32);
    the series keeps one spread of the residuals from those means: pooled over the
    buckets it is estimated from every point, so a bucket seen a few times does not
    get a tiny, overconfident spread. Needs the event time ``t`` (epoch seconds);
    without it, or before a bucket has seen ``grace`` values, it scores 0.

    Parameters
    ----------
    period
        Length of the cycle in seconds (604800: a week; 86400: a day).
    buckets
        Buckets per period.
    alpha
        Weight of the newest value in its bucket's mean.
    spread_alpha
        Weight of the newest residual in the series' spread.
    huber
        Residuals are clipped at this many spreads before being learned.
    grace
        Values a bucket must have learned before it scores.
    threshold
        Used alone, scores at or above this are not learned.

    >>> import numpy as np
    >>> bank = SeasonalBank(period=86400, buckets=24, grace=2)
    >>> hours = np.arange(24 * 5)
    >>> rate = np.where(hours % 24 < 8, 10.0, 100.0) + hours % 3  # quiet nights, busy days
    >>> for h, v in zip(hours, rate):
    ...     _ = bank.score_learn(np.array([0]), np.array([v]), np.array([3600.0 * h]))
    >>> night, day = 3600.0 * (24 * 5 + 3), 3600.0 * (24 * 5 + 12)
    >>> at_night, base = bank.score_learn(np.array([0]), np.array([100.0]), np.array([night]))
    >>> at_noon, _ = bank.score_learn(np.array([0]), np.array([100.0]), np.array([day]))
    >>> bool(at_night[0] > 0.999), bool(at_noon[0] < 0.9), round(float(base[0]))
    (True, True, 10)
    """

    def __init__(
        self,
        period: float = 604800.0,
        buckets: int = 168,
        alpha: float = 0.1,
        spread_alpha: float = 0.01,
        huber: float = 3.0,
        grace: int = 3,
        threshold: float = 0.999,
    ):
        super().__init__()
        self.period, self.buckets, self.alpha, self.spread_alpha = period, buckets, alpha, spread_alpha
        self.huber, self.grace, self.threshold = huber, grace, threshold
        self._n = np.zeros((0, buckets), dtype=np.uint16)
        self._mean = np.zeros((0, buckets), dtype=np.float32)
        self._dev = np.zeros(0)
        self._seen = np.zeros(0, dtype=np.int32)

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._dev)
        self._n, self._mean = (
            np.concatenate([a, np.zeros((extra, self.buckets), dtype=a.dtype)]) for a in (self._n, self._mean)
        )
        self._dev, self._seen = (np.concatenate([a, np.zeros(extra, dtype=a.dtype)]) for a in (self._dev, self._seen))

    def _reset(self, slots: np.ndarray) -> None:
        for a in (self._n, self._mean, self._dev, self._seen):
            a[slots] = 0

    def _bucket(self, t: np.ndarray) -> np.ndarray:
        return (np.mod(t, self.period) * (self.buckets / self.period)).astype(np.int64) % self.buckets

    def _z(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if t is None:
            return np.zeros(x.shape), np.full(x.shape, np.nan)
        b = self._bucket(t)
        n, mean = self._n[slots, b], self._mean[slots, b].astype(np.float64)
        return signed_z(x - mean, self._spread(slots, t)), np.where(n > 0, mean, np.nan)

    def _spread(self, slots: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        if t is None:
            return np.full(slots.shape, np.inf)
        warm = (self._n[slots, self._bucket(t)] >= self.grace) & (self._seen[slots] >= self.grace)
        return np.where(warm, MAD_TO_STD * self._dev[slots], np.inf)

    def _learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None, keep: np.ndarray) -> None:
        if t is None:
            return
        b = self._bucket(t)
        n, mean, dev, seen = self._n[slots, b], self._mean[slots, b], self._dev[slots], self._seen[slots]
        warm = n >= self.grace
        bound = np.where(warm & (seen >= self.grace), self.huber * MAD_TO_STD * dev, np.inf)
        clipped = np.clip(x - mean, -bound, bound)
        self._mean[slots, b] = np.where(keep, mean + np.maximum(self.alpha, 1.0 / (n + 1.0)) * clipped, mean)
        # the spread learns from warm buckets only: a bucket's first values have no residual yet
        rate = np.maximum(self.spread_alpha, 1.0 / (seen + 1.0))
        learn = keep & warm
        self._dev[slots] = np.where(learn, dev + rate * (np.abs(clipped) - dev), dev)
        self._seen[slots] = seen + learn
        self._n[slots, b] = np.where(keep, np.minimum(n + 1, np.iinfo(np.uint16).max), n)

"""Robust baseline: a Huber-clipped exponentially weighted location with a mean-absolute-deviation scale."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import ZBank, signed_z

# Mean absolute deviation -> standard deviation for a Gaussian (sqrt(pi / 2)).
MAD_TO_STD = 1.2533


class RobustBank(ZBank):
    """Distance from a robust running location, in robust standard deviations.

    The location moves towards each value by ``alpha`` times the residual clipped to
    ``huber`` scales (a Huber M-estimate), so one wild point shifts it by at most
    ``alpha * huber`` scales; the scale is the running mean absolute deviation of
    the clipped residuals. With ``order=1`` the same is done on first differences
    (``x - previous x``), which finds spikes in series that wander (random walks)
    and ignores slow drifts.

    Parameters
    ----------
    alpha
        Weight of the newest value (0.02 ~ a memory of 50 points).
    order
        0: model the values; 1: model their first differences.
    huber
        Residuals are clipped at this many scales before being learned.
    grace
        Points a series must see before it scores anything but 0.
    threshold
        Used alone, scores at or above this are not learned.

    >>> import numpy as np
    >>> bank = RobustBank(alpha=0.1, grace=5)
    >>> for v in [10, 11, 9, 10, 10, 11, 9, 10]:
    ...     _ = bank.score_learn(np.array([0]), np.array([float(v)]))
    >>> scores, baselines = bank.score_learn(np.array([0]), np.array([30.0]))
    >>> bool(scores[0] > 0.999), round(float(baselines[0]), 1)
    (True, 10.0)
    """

    def __init__(
        self, alpha: float = 0.02, order: int = 0, huber: float = 3.0, grace: int = 20, threshold: float = 0.999
    ):
        super().__init__()
        self.alpha, self.order, self.huber, self.grace, self.threshold = alpha, order, huber, grace, threshold
        self._n = np.zeros(0, dtype=np.int32)
        self._loc = np.zeros(0)
        self._scale = np.zeros(0)
        self._prev = np.zeros(0)

    def _grow(self, capacity: int) -> None:
        extra = capacity - self._n.size
        self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int32)])
        self._loc, self._scale, self._prev = (np.concatenate([a, np.zeros(extra)]) for a in (self._loc, self._scale, self._prev))

    def _reset(self, slots: np.ndarray) -> None:
        for a in (self._n, self._loc, self._scale, self._prev):
            a[slots] = 0

    def _value(self, slots: np.ndarray, x: np.ndarray) -> np.ndarray:
        return x - self._prev[slots] if self.order else x

    def _z(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        loc = self._loc[slots]
        z = signed_z(self._value(slots, x) - loc, self._spread(slots, t))
        baseline = self._prev[slots] + loc if self.order else loc
        return z, baseline

    def _spread(self, slots: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        warm = self._n[slots] >= self.grace + self.order
        return np.where(warm, MAD_TO_STD * self._scale[slots], np.inf)

    def _learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None, keep: np.ndarray) -> None:
        n, loc, scale = self._n[slots], self._loc[slots], self._scale[slots]
        valid = keep & (n >= self.order)  # the first point of a differenced series has no difference
        m = np.maximum(n - self.order + 1, 1)
        rate = np.maximum(self.alpha, 1.0 / m)  # a running mean while warming up
        residual = self._value(slots, x) - loc
        bound = np.where(n >= self.grace + self.order, self.huber * scale, np.inf)
        clipped = np.clip(residual, -bound, bound)
        self._loc[slots] = np.where(valid, loc + rate * clipped, loc)
        deviation = np.where(m > 1, np.abs(clipped), 0.0)  # one point has no spread yet
        self._scale[slots] = np.where(valid, scale + rate * (deviation - scale), scale)
        self._prev[slots] = x
        self._n[slots] = n + 1

"""EWMA z-score over many series: the simplest learned baseline that is still useful."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import SeriesBank
from modelmedic.detectors.special import erf


class EwmaBank(SeriesBank):
    """Distance from an exponentially weighted mean, in standard deviations, mapped to [0, 1].

    Parameters
    ----------
    alpha
        Weight of the newest value in the mean and variance (0.05 ~ a memory of 20 windows).
    grace
        Values a series must see before it scores anything but 0.
    threshold
        Scores at or above this are treated as anomalous and are **not learned**, so the
        baseline never absorbs the incident it is flagging.

    >>> import numpy as np
    >>> bank = EwmaBank(alpha=0.1, grace=5)
    >>> for v in [10, 11, 9, 10, 10, 11, 9, 10]:
    ...     _ = bank.score_learn(np.array([0]), np.array([float(v)]))
    >>> scores, baselines = bank.score_learn(np.array([0]), np.array([30.0]))
    >>> bool(scores[0] > 0.999), round(float(baselines[0]), 1)
    (True, 10.0)
    """

    def __init__(self, alpha: float = 0.05, grace: int = 30, threshold: float = 0.999):
        super().__init__()
        self.alpha, self.grace, self.threshold = alpha, grace, threshold
        self._n = np.zeros(0, dtype=np.int64)
        self._mean = np.zeros(0)
        self._var = np.zeros(0)

    def _grow(self, capacity: int) -> None:
        extra = capacity - self._n.size
        self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int64)])
        self._mean = np.concatenate([self._mean, np.zeros(extra)])
        self._var = np.concatenate([self._var, np.zeros(extra)])

    def _reset(self, slots: np.ndarray) -> None:
        self._n[slots] = 0
        self._mean[slots] = 0.0
        self._var[slots] = 0.0

    def _score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n, mean, var = self._n[slots], self._mean[slots], self._var[slots]
        std = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(x - mean) / np.where(std > 0, std, np.inf)
        scores = np.where(n >= self.grace, erf(z / np.sqrt(2.0)), 0.0)
        learn = scores < self.threshold
        first = n == 0
        d = np.where(first, 0.0, x - mean)
        new_mean = np.where(first, x, mean + self.alpha * d)
        new_var = (1 - self.alpha) * (var + self.alpha * d * d)
        self._mean[slots] = np.where(learn, new_mean, mean)
        self._var[slots] = np.where(learn, new_var, var)
        self._n[slots] = n + learn
        return scores, mean

"""Error-rate bursts judged as counts, not ratios: a binomial tail against a learned rate.

A window of 3 requests with 1 error is a 33% error rate and means nothing; 15 errors in
50 requests when the model usually fails 1 in 200 is an incident. Judging the error
*count* against Binomial(n, p_baseline) gets both right with no hand-set threshold, and
the score is a calibrated probability: ``score = P(X < errors)``.
"""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import SlotState, _Params
from modelmedic.detectors.special import bdtr


class BinomialRateBank(_Params, SlotState):
    """Many series' error counts against each series' learned error rate.

    Parameters
    ----------
    alpha
        EWMA weight of the newest window in the learned rate (pooled: errors and requests
        are averaged separately, so busy windows weigh more than quiet ones).
    grace
        Windows with requests a series must see before it scores anything but 0.
    floor
        Lowest baseline rate assumed: a model that never failed yet still may fail now
        and then, and one error must not page anybody.
    threshold
        Windows scoring at or above this are not learned.

    >>> import numpy as np
    >>> bank = BinomialRateBank(grace=3)
    >>> for _ in range(10):
    ...     _ = bank.score_learn(np.array([0]), np.array([0.0]), np.array([100.0]))
    >>> scores, base = bank.score_learn(np.array([0]), np.array([20.0]), np.array([100.0]))
    >>> bool(scores[0] > 0.9999), float(base[0])
    (True, 0.005)
    """

    def __init__(self, alpha: float = 0.02, grace: int = 30, floor: float = 0.005, threshold: float = 0.9999):
        self.alpha, self.grace, self.floor, self.threshold = alpha, grace, floor, threshold
        self._n = np.zeros(0, dtype=np.int64)
        self._err = np.zeros(0)
        self._req = np.zeros(0)

    def ensure(self, n_slots: int) -> None:
        if n_slots > self._n.size:
            extra = max(n_slots, 2 * self._n.size, 64) - self._n.size
            self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int64)])
            self._err = np.concatenate([self._err, np.zeros(extra)])
            self._req = np.concatenate([self._req, np.zeros(extra)])

    def _slot_capacity(self) -> int:
        return self._n.size

    def forget(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[slots < self._n.size]
        self._n[slots], self._err[slots], self._req[slots] = 0, 0.0, 0.0

    def score_learn(self, slots: np.ndarray, errors: np.ndarray, requests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score each window's error count, then learn it; returns (scores, baseline rates)."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size:
            self.ensure(int(slots.max()) + 1)
        errors, requests = np.asarray(errors, dtype=float), np.asarray(requests, dtype=float)
        n, err, req = self._n[slots], self._err[slots], self._req[slots]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.maximum(np.where(req > 0, err / req, 0.0), self.floor)
        has_data = requests > 0
        scores = np.where((n >= self.grace) & has_data, _binom_below(errors, requests, rate), 0.0)
        learn = has_data & (scores < self.threshold)
        # A running mean while warming up (1, 1/2, 1/3 ...), then the EWMA: the first
        # window must not dominate the baseline for dozens of windows.
        a = np.maximum(self.alpha, 1.0 / (n + 1))
        self._err[slots] = np.where(learn, (1 - a) * err + a * errors, err)
        self._req[slots] = np.where(learn, (1 - a) * req + a * requests, req)
        self._n[slots] = n + learn
        return scores, rate


def _binom_below(errors: np.ndarray, requests: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``P(X < errors)`` for ``X ~ Binomial(requests, rate)``: the binomial CDF at ``errors - 1``
    (:func:`~modelmedic.detectors.special.bdtr`), once per closed window. Counts are whole
    numbers, ``errors <= requests``."""
    k = np.maximum(errors - 1, 0).astype(np.int64)
    return np.where(errors >= 1, bdtr(k, requests.astype(np.int64), rate), 0.0)

"""Change points: a two-sided CUSUM (Page-Hinkley) on standardized residuals."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import ZBank
from modelmedic.detectors.robust import RobustBank


class CusumBank(ZBank):
    """Accumulated evidence that a series' level moved, up or down.

    Residuals from a slow robust baseline (:class:`RobustBank`) are standardized to
    ``u`` (clipped at the baseline's ``huber`` scales, so one wild point is not a shift); ``g+ = max(0, g+ + u - drift)`` and ``g- = max(0, g- - u - drift)``
    accumulate small persistent shifts that no single point reveals. The statistic
    ``max(g+, g-)`` is reported as a z-score, ``h`` mapping to 3 (a 3-sigma surprise).
    Once it passes ``h`` the change is reported, the sums restart and the baseline
    is re-seeded at the new level (the change is not flagged forever).

    Parameters
    ----------
    alpha
        Weight of the newest value in the slow baseline.
    drift
        Allowed drift per point, in standard deviations (CUSUM's ``k``).
    h
        Alarm level of the accumulated sums, in standard deviations.
    grace
        Points a series must see before it scores anything but 0.
    threshold
        Used alone, scores at or above this are not learned.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> bank = CusumBank()
    >>> x = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 1, 30)]
    >>> s = [float(bank.score_learn(np.array([0]), np.array([v]))[0][0]) for v in x]
    >>> max(s[50:300]) < 0.99, max(s[300:]) > 0.997
    (True, True)
    """

    def __init__(self, alpha: float = 0.005, drift: float = 0.5, h: float = 12.0, grace: int = 30, threshold: float = 0.997):
        super().__init__()
        self.alpha, self.drift, self.h, self.grace, self.threshold = alpha, drift, h, grace, threshold
        self._base = RobustBank(alpha=alpha, grace=grace)
        self._up = np.zeros(0)
        self._down = np.zeros(0)

    def _grow(self, capacity: int) -> None:
        self._base.ensure(capacity)
        extra = capacity - self._up.size
        self._up, self._down = (np.concatenate([a, np.zeros(extra)]) for a in (self._up, self._down))

    def _reset(self, slots: np.ndarray) -> None:
        self._base.forget(slots)
        self._up[slots] = 0.0
        self._down[slots] = 0.0

    def _sums(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, ...]:
        z, baseline = self._base._z(slots, x, t)
        u = np.clip(z, -self._base.huber, self._base.huber)  # one wild point is not a shift
        up = np.maximum(0.0, self._up[slots] + u - self.drift)
        down = np.maximum(0.0, self._down[slots] - u - self.drift)
        return up, down, baseline

    def _z(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        up, down, baseline = self._sums(slots, x, t)
        return 3.0 * np.maximum(up, down) / self.h, baseline

    def _spread(self, slots: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        return self._base._spread(slots, t)

    def _learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None, keep: np.ndarray) -> None:
        up, down, _ = self._sums(slots, x, t)
        alarm = np.maximum(up, down) > self.h
        self._up[slots] = np.where(alarm, 0.0, up)
        self._down[slots] = np.where(alarm, 0.0, down)
        self._base._learn(slots, x, t, keep | alarm)
        self._base._loc[slots[alarm]] = x[alarm]

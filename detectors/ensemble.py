"""The default detector: several baselines, one calibrated anomaly likelihood, one knob."""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr

from modelmedic.detectors.base import SeriesBank
from modelmedic.detectors.changepoint import CusumBank
from modelmedic.detectors.robust import RobustBank
from modelmedic.detectors.seasonal import SeasonalBank

LN10 = np.log(10.0)


def tail_digits(z: np.ndarray) -> np.ndarray:
    """``-log10`` of the two-sided Gaussian tail of ``z``: 3 sigma -> 2.6, 5 sigma -> 6.2."""
    return -(np.log(2.0) + log_ndtr(-np.abs(z))) / LN10


class EnsembleBank(SeriesBank):
    """Anomaly likelihood from a robust level, its differences, a CUSUM and a seasonal baseline.

    Each point is scored by every component as a z-score; the largest becomes the raw
    surprise ``a = -log10(two-sided tail)``. As in Numenta's anomaly likelihood, the
    series' own history of raw surprise calibrates it: a short-term mean of ``a`` is
    compared with its long-term mean and spread, and the Gaussian tail of that gap,
    in decimal digits, is the evidence ``e``. ``score = 0.5 * e / digits`` where
    ``digits = 10 * (1 - sensitivity)``, clipped to [0, 1]: a score of 0.5 or more is an
    anomaly. Only the first point of an alarm scores high: a point must beat the
    recent (decaying) peak of the series' scores, so NAB-style "one page per incident".

    Anomalous points (score >= 0.5) are not learned by any component, so baselines
    never absorb an incident; a level shift is still accepted once the CUSUM has
    reported it (it re-seeds its own baseline) or after ``patience`` flagged points
    in a row.

    Parameters
    ----------
    sensitivity
        In (0, 1): 0.5 flags evidence of 1e-5, 0.7 of 1e-3, 0.3 of 1e-7.
    alpha
        Weight of the newest value in the level and difference baselines.
    short, long
        Weights of the newest raw surprise in its short- and long-term means.
    refractory
        Points for the peak memory to decay by a factor e: the alarm dead time.
    patience
        Flagged points in a row after which the series is learned again (new normal).
    period, buckets
        Seasonal cycle in seconds and buckets per cycle (needs ``t``).
    grace
        Points before anything scores (the long-term surprise needs a history).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = 50 + rng.normal(0, 1, 600)
    >>> x[500] = 60
    >>> bank = EnsembleBank()
    >>> s = np.array([bank.score_learn(np.array([0]), x[i : i + 1])[0][0] for i in range(600)])
    >>> int(np.argmax(s)), bool(s[500] >= 0.5), bool(np.sort(s)[-2] < 0.5)
    (500, True, True)
    """

    def __init__(
        self,
        sensitivity: float = 0.5,
        alpha: float = 0.02,
        short: float = 0.3,
        long: float = 0.002,
        refractory: float = 100.0,
        patience: int = 30,
        period: float = 604800.0,
        buckets: int = 168,
        grace: int = 150,
    ):
        super().__init__()
        self.sensitivity, self.alpha, self.short, self.long = sensitivity, alpha, short, long
        self.refractory, self.patience, self.period, self.buckets, self.grace = (
            refractory, patience, period, buckets, grace
        )
        self._level = RobustBank(alpha=alpha)
        self._diff = RobustBank(alpha=alpha, order=1)
        self._shift = CusumBank()
        self._season = SeasonalBank(period=period, buckets=buckets)
        self._n = np.zeros(0, dtype=np.int32)
        self._run = np.zeros(0, dtype=np.int32)
        self._short = np.zeros(0)
        self._mean = np.zeros(0)
        self._var = np.zeros(0)
        self._peak = np.zeros(0)

    @property
    def _components(self) -> tuple[RobustBank, RobustBank, CusumBank, SeasonalBank]:
        return self._level, self._diff, self._shift, self._season

    def _grow(self, capacity: int) -> None:
        for c in self._components:
            c.ensure(capacity)
        extra = capacity - self._n.size
        self._n, self._run = (np.concatenate([a, np.zeros(extra, dtype=a.dtype)]) for a in (self._n, self._run))
        self._short, self._mean, self._var, self._peak = (
            np.concatenate([a, np.zeros(extra)]) for a in (self._short, self._mean, self._var, self._peak)
        )

    def _reset(self, slots: np.ndarray) -> None:
        for c in self._components:
            c.forget(slots)
        for a in (self._n, self._run, self._short, self._mean, self._var, self._peak):
            a[slots] = 0

    def _score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        zs = [c._z(slots, x, t) for c in self._components]
        raw = tail_digits(np.max([z for z, _ in zs], axis=0))
        raw = np.minimum(raw, 30.0)
        n, mean, var = self._n[slots], self._mean[slots], self._var[slots]
        short = np.where(n == 0, raw, self._short[slots] + self.short * (raw - self._short[slots]))
        spread = np.sqrt(var + 1e-4)
        evidence = -log_ndtr(-(short - mean) / spread) / LN10
        score = np.clip(0.5 * evidence / (10.0 * (1.0 - self.sensitivity)), 0.0, 1.0)
        score = np.where(n >= self.grace, score, 0.0)
        peak = self._peak[slots] * np.exp(-1.0 / self.refractory)
        reported = np.where(score > peak, score, 0.0)

        flagged = score >= 0.5
        run = np.where(flagged, self._run[slots] + 1, 0)
        keep = ~flagged | (run >= self.patience)
        for c in self._components:
            c._learn(slots, x, t, keep)
        rate = np.maximum(self.long, 1.0 / (n + 1.0))
        d = raw - mean
        self._mean[slots] = mean + rate * d
        self._var[slots] = (1 - rate) * (var + rate * d * d)
        self._short[slots] = short
        self._peak[slots] = np.maximum(peak, score)
        self._run[slots] = run
        self._n[slots] = n + 1
        return reported, zs[0][1]

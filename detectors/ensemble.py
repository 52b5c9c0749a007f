"""The default detector: several baselines, one calibrated anomaly likelihood, one knob."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors.base import SeriesBank, ZBank, protect
from modelmedic.detectors.changepoint import CusumBank
from modelmedic.detectors.robust import RobustBank
from modelmedic.detectors.seasonal import SeasonalBank
from modelmedic.detectors.special import log_ndtr

LN10 = np.log(10.0)
LEVELS = 2.0 ** np.arange(14)  # incident sizes counted, in multiples of the alarm level (1x .. 8192x)


def tail_digits(z: np.ndarray) -> np.ndarray:
    """``-log10`` of the two-sided Gaussian tail of ``z``: 3 sigma -> 2.6, 5 sigma -> 6.2."""
    return -(np.log(2.0) + log_ndtr(-np.abs(z))) / LN10


class EnsembleBank(SeriesBank):
    """Anomaly likelihood over the best of several baselines, plus a CUSUM; one knob.

    Every point is compared with four predictors: a robust level (:class:`RobustBank`),
    the previous value plus the usual step (the same on first differences), and the
    usual value at this time of the week and of the day (:class:`SeasonalBank`, when
    ``t`` is given). Two channels of raw surprise ``a = -log10(two-sided Gaussian tail)``
    (at most ``cap`` digits) come out of them:

    - *any*: the z-score of the predictor with the smallest learned spread (often the
      step predictor: sudden spikes and drops), or the CUSUM's when larger (small
      persistent shifts);
    - *context*: the z-score of the best of the level, weekly and daily predictors
      alone, which sees an unusual stretch that moves smoothly (a quiet holiday, a
      night that looks like a day), invisible step by step.

    As in Numenta's anomaly likelihood, the series' own history calibrates each channel:
    the short-term mean of its raw surprise is compared with its long-term mean and
    spread, and the Gaussian tail of that gap, in decimal digits, is the evidence; the
    larger of the two is ``e``. The score is ``e / (e + digits)`` with
    ``digits = 10 * (1 - sensitivity)``: 0.5 or more is an anomaly. Only the first point
    of an alarm scores high: a score is reported as its excess over the series' recent
    peak score, which decays by a factor e every ``refractory`` points (NAB-style "one
    page per incident").

    Anomalous points (score >= 0.5) are not learned by any baseline, so a baseline never
    absorbs an incident; a level shift is still accepted once the CUSUM has reported
    it (it re-seeds its own baseline) or after ``patience`` flagged points in a row.

    Parameters
    ----------
    sensitivity
        In (0, 1): the evidence, in decimal digits, that scores 0.5 is
        ``10 * (1 - sensitivity)``; 0.5 flags 1e-5 surprises, 0.7 flags 1e-3.
    alpha
        Weight of the newest value in the level and difference baselines.
    short, long
        Weights of the newest raw surprise in its short- and long-term means (per channel).
    cap
        Largest raw surprise, in digits (so one absurd value cannot blind the long-term
        statistics for long).
    refractory
        Points for the peak memory to decay by a factor e: the alarm dead time.
    patience
        Flagged points in a row after which the series is learned again (new normal).
    period, buckets
        Weekly seasonal cycle in seconds and buckets per cycle (needs ``t``).
    daily_buckets
        Buckets of the daily seasonal cycle (96: a quarter of an hour).
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
        short: float = 0.8,
        long: float = 0.001,
        cap: float = 1000.0,
        refractory: float = 50.0,
        patience: int = 30,
        period: float = 604800.0,
        buckets: int = 168,
        daily_buckets: int = 96,
        grace: int = 150,
        recurring: bool = True,
    ):
        super().__init__()
        self.sensitivity, self.alpha, self.short, self.long, self.cap = sensitivity, alpha, short, long, cap
        self.refractory, self.patience, self.period, self.buckets = refractory, patience, period, buckets
        self.daily_buckets, self.grace, self.recurring = daily_buckets, grace, recurring
        self._level = RobustBank(alpha=alpha)
        self._diff = RobustBank(alpha=alpha, order=1)
        self._weekly = SeasonalBank(period=period, buckets=buckets)
        self._daily = SeasonalBank(period=86400.0, buckets=daily_buckets)
        self._shift = CusumBank()
        self._n = np.zeros(0, dtype=np.int32)
        self._run = np.zeros(0, dtype=np.int32)
        self._short = np.zeros((0, 2))  # per channel: any, context
        self._mean = np.zeros((0, 2))
        self._var = np.zeros((0, 2))
        self._peak = np.zeros(0)
        self._prev = np.zeros(0, dtype=np.float32)  # largest evidence of the incident in progress
        self._rate = np.zeros((0, LEVELS.size), dtype=np.float32)  # past incidents per point, per level

    @property
    def _predictors(self) -> tuple[ZBank, ...]:
        return self._level, self._diff, self._weekly, self._daily

    def _grow(self, capacity: int) -> None:
        for c in (*self._predictors, self._shift):
            c.ensure(capacity)
        extra = capacity - self._n.size
        self._n, self._run = (np.concatenate([a, np.zeros(extra, dtype=a.dtype)]) for a in (self._n, self._run))
        self._short, self._mean, self._var, self._peak = (
            np.concatenate([a, np.zeros((extra, *a.shape[1:]))]) for a in (self._short, self._mean, self._var, self._peak)
        )
        self._prev, self._rate = (
            np.concatenate([a, np.zeros((extra, *a.shape[1:]), dtype=a.dtype)]) for a in (self._prev, self._rate)
        )

    def _reset(self, slots: np.ndarray) -> None:
        for c in (*self._predictors, self._shift):
            c.forget(slots)
        for a in (self._n, self._run, self._short, self._mean, self._var, self._peak, self._prev, self._rate):
            a[slots] = 0

    def _raw(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Raw surprise in digits, shape (point, channel), and the trusted predictor's baseline."""
        zs = np.array([c._z(slots, x, t) for c in self._predictors])  # (predictor, z | baseline, point)
        spread = np.array([c._spread(slots, t) for c in self._predictors])
        pick = np.arange(x.size)
        best = np.argmin(spread, axis=0)
        any_z = np.maximum(np.abs(zs[best, 0, pick]), self._shift._z(slots, x, t)[0])
        levels = np.array([0, 2, 3])  # level, weekly, daily: not the step predictor
        context = levels[np.argmin(spread[levels], axis=0)]
        raw = tail_digits(np.stack([any_z, np.abs(zs[context, 0, pick])], axis=1))
        return np.minimum(raw, self.cap), zs[best, 1, pick]

    def _recurring(self, slots: np.ndarray, evidence: np.ndarray, digits: float) -> tuple[np.ndarray, np.ndarray]:
        """Evidence discounted by the series' own record of similar incidents; the incidents that just ended.

        An *incident* is a run of points whose evidence reaches the alarm level
        (``digits``); its size is the largest level of ``digits * LEVELS`` it reached.
        ``c`` is the exponentially weighted count (memory ``long``, the same as the raw
        surprise's) of past incidents at least as large as this point's evidence. The
        Gaussian tail says a surprise this large has chance ``10**-e``; having already
        seen ``c`` like it, the chance is taken as ``(1 + c) * 10**-e`` (this one is one
        of ``c + 1``): unchanged for a first or rare incident and for the rest of the
        incident in progress, about two digits less for a spike that recurs every hundred
        points.
        """
        levels = digits * LEVELS
        above = evidence[:, None] >= levels
        level = above.sum(axis=1) - 1
        count = np.where(level >= 0, self._rate[slots, np.maximum(level, 0)], 0.0) / self.long
        calibrated = np.maximum(evidence - np.log10(1.0 + count), 0.0)
        prev = self._prev[slots]
        ended = (prev >= levels[0]) & ~above[:, 0]
        counted = (ended[:, None] & (prev[:, None] >= levels)).astype(np.float32)
        self._prev[slots] = np.where(above[:, 0], np.maximum(prev, evidence), 0.0)
        return calibrated, counted

    def _score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        raw, baseline = self._raw(slots, x, t)
        n, mean, var = self._n[slots], self._mean[slots], self._var[slots]
        first = (n == 0)[:, None]
        short = np.where(first, raw, self._short[slots] + self.short * (raw - self._short[slots]))
        # the spread of a short-term mean of independent raw surprises
        spread = np.sqrt((var + 1e-4) * self.short / (2.0 - self.short))
        evidence = np.maximum(-log_ndtr(-(short - mean) / spread) / LN10, 0.0).max(axis=1)
        warm = n >= self.grace
        digits = 10.0 * (1.0 - self.sensitivity)
        score = np.where(warm, evidence / (evidence + digits), 0.0)
        shown = score
        if self.recurring:
            calibrated, ended = self._recurring(slots, evidence, digits)
            shown = np.where(warm, calibrated / (calibrated + digits), 0.0)
        peak = self._peak[slots] * np.exp(-1.0 / self.refractory)
        reported = np.maximum(shown - peak, 0.0)

        run, keep = protect(score, self._run[slots], self.patience)
        for c in (*self._predictors, self._shift):
            c._learn(slots, x, t, keep)
        rate = np.maximum(self.long, 1.0 / (n + 1.0))[:, None]
        d = raw - mean
        self._mean[slots] = mean + rate * d
        self._var[slots] = (1 - rate) * (var + rate * d * d)
        self._short[slots] = short
        self._peak[slots] = np.maximum(peak, score)
        self._run[slots] = run
        self._n[slots] = n + 1
        if self.recurring:
            rates = self._rate[slots]
            self._rate[slots] = np.where(warm[:, None], rates + self.long * (ended - rates), rates)
        return reported, baseline

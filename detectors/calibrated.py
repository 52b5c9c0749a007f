"""A calibrated detector: surprise measured against the series' own record of surprises.

:class:`CalibratedBank` compares every point with a few cheap predictors (robust level,
previous value plus the usual step, daily and weekly seasonal means, a CUSUM for small
persistent shifts) and turns each predictor channel's surprise into a tail probability
calibrated on **the series' own history of surprises** (peaks over threshold: how often
this series' surprise exceeded 2 digits, and by how much on average), so a bursty series
whose "10-sigma" moments happen every day needs far more than 10 sigma to alarm, and a
quiet Gaussian one alarms at about 4.4 sigma (5 digits). Nothing saturates: the calibrated evidence
grows with the raw surprise without bound (a 1000-sigma spike ranks above a 10-sigma one).

Two paths compute exactly the same thing:

- :meth:`CalibratedBank.score_learn` — vectorized over many series (the streaming path,
  one call per window per metric);
- :meth:`CalibratedBank.score_series` — one whole series of one slot, a plain Python loop
  over floats (no numpy per point): the replay path, a few microseconds per point.
"""

from __future__ import annotations

import math

import numpy as np

from modelmedic.detectors.base import SeriesBank, protect
from modelmedic.detectors.special import erfc

LN10 = math.log(10.0)
MAD_TO_STD = 1.2533  # mean absolute deviation -> standard deviation for a Gaussian
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_ERFC_LIMIT = 26.0  # erfc(26) ~ 1e-296: below it erfc is exact, above it the asymptote is
RAW_CAP = 1e9  # raw surprise in digits; only an infinite z reaches it


def _digits(z: float) -> float:
    """``-log10`` of the two-sided Gaussian tail of ``z`` (scalar; see :func:`tail_digits`)."""
    y = abs(z) / _SQRT2
    if y < _ERFC_LIMIT:
        return -math.log10(math.erfc(y)) if y > 0.0 else 0.0
    if y > 1e4:
        return RAW_CAP if y == math.inf else min((y * y) / LN10, RAW_CAP)
    return (y * y + math.log(y) + _LOG_SQRT_PI) / LN10


def tail_digits(z: np.ndarray) -> np.ndarray:
    """``-log10`` of the two-sided Gaussian tail of ``z``: 3 sigma -> 2.6, 10 sigma -> 22.8, unbounded.

    Exact (``erfc``) below 36.8 sigma, the asymptote above, ``RAW_CAP`` only for an
    infinite ``z``.

    >>> [round(float(v), 2) for v in tail_digits(np.array([0.0, 3.0, 10.0, 1000.0]))]
    [0.0, 2.57, 22.82, 217150.34]
    """
    y = np.abs(np.asarray(z, dtype=np.float64)) / _SQRT2
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = -np.log10(erfc(np.minimum(y, _ERFC_LIMIT)))
        far = (y * y + np.log(y) + _LOG_SQRT_PI) / LN10
        huge = np.minimum((y * y) / LN10, RAW_CAP)
    out = np.where(y < _ERFC_LIMIT, exact, np.where(y > 1e4, huge, far))
    out = np.where(y > 0.0, out, 0.0)
    return np.where(np.isinf(y), RAW_CAP, out)


def _t_digits(z: np.ndarray, dof: float) -> np.ndarray:
    """Surprise under a Student-t(``dof``) model, ``(dof + 1) / 2 * log10(1 + z^2 / dof)`` digits: logarithmic in large ``z``."""
    z2 = np.asarray(z, dtype=np.float64) ** 2
    with np.errstate(over="ignore", invalid="ignore"):
        out = (dof + 1.0) / 2.0 * np.log10(1.0 + z2 / dof)
    return np.where(np.isinf(z2), RAW_CAP, out)


def _z(residual: float, spread: float) -> float:
    if spread > 0.0:
        return residual / spread
    if spread != spread or residual == 0.0:  # nan spread: no opinion
        return 0.0
    return math.inf if spread == 0.0 else 0.0


class CalibratedBank(SeriesBank):
    """Best-of-predictors surprise, calibrated per series by peaks over threshold; one knob.

    **Predictors** (per series): a robust level (Huber-clipped EW location, mean absolute
    deviation scale, weight ``alpha``), the previous value plus the usual step (the same
    on first differences), the usual value at this time of day (``daily_buckets``) and of
    the week (``weekly_buckets``; both only when ``t`` is given, each bucket a running
    mean, one pooled spread per series), and a two-sided CUSUM on residuals of a slow
    robust level (drift ``drift``, alarm ``h``; re-seeded at the new level when it fires).
    Every spread is at least ``floor`` times the same predictor's *unclipped* mean
    absolute deviation (weight ``floor_alpha``), so a series that is mostly zero (sparse
    counts, idle disks) keeps a scale instead of collapsing to 0 between bursts.

    **Counts** (``counts=True``): while every value of a series is an integer >= 0, the
    predictors see its Anscombe transform ``2 sqrt(x + 3/8)`` (Poisson noise has standard
    deviation ~1 there), no spread is below ``count_floor`` (1: the Poisson noise), and
    the unclipped spread floor has the longer memory ``count_floor_alpha`` (0.005, ~200
    points; 0 = ``floor_alpha``), so an idle disk or a mostly-zero count keeps the scale
    of its usual bursts through long idle stretches. With ``count_floor_flagged`` (the
    default) that floor also learns the points the series flags: otherwise a disk whose
    writes all score as alarms (the first ones after an idle stretch do) never teaches its
    floor the size of a write, the floor decays through the idle points it does learn, and
    every later write is a larger surprise (a self-starving loop: 49 points scoring 0.5 or
    more outside the anomaly's window on one seeded idle-disk file of
    ``load/nab_loo.py --seed 1``, 3 with it).
    The first value that is not a count restarts the series on raw values (once).
    Baselines are returned in the original units.

    **Recurring exact values** (``recur``, default 2): a series remembers ``recur_values``
    (4) exact values it produced when surprising (a point of 5 digits or more), each with
    its episodes (runs of that value) counted with memory ``memory`` and its longest
    episode. Once a value has ``recur`` episodes, its *best* and *context* surprise is at
    most ``log10(points / episodes)`` digits (points: ``min(n, memory)``), its empirical
    frequency, while the current run is no longer than its longest episode: a sensor that
    drops to 0 for a point or two every day alarms on its first few dropouts, not every
    day (episodes decay: 4 alarms in 14 days, 13 without, tests/unit/test_calibrated.py), and the same
    sensor dead at 0 for longer than any earlier dropout alarms again on the first point
    past that length (the shift channel is never capped). Values that are never
    surprising (most points) are not remembered, so a series with many distinct usual
    values keeps its few surprising ones.

    **Four raw channels**, in digits: *best* and *context*,
    ``a = -log10(two-sided Gaussian tail of z)`` (or, with ``dof > 0``, a Student-t
    surprise ``(dof + 1) / 2 log10(1 + z^2 / dof)``), of the predictor whose spread is
    smallest (*best*) and of the best of the level and seasonal ones (*context*: an
    unusual stretch that moves smoothly); *shift*, the CUSUM sum as the log-likelihood
    ratio of a ``2 drift`` shift, ``sum * 2 drift / ln 10`` (``h`` = 12 is 5.2 digits);
    *sustained*, the smallest *context* surprise of the last ``sustain`` points (12; 0 = no
    such channel), before the ``recur`` cap: a deviation every one of the last 12 points
    shared. A speed that halves for two hours, or a sensor dead at the value of its usual
    brief dropouts, is a moderate surprise at each point, which a series with bigger
    everyday spikes calibrates to 2-3 digits, and the points are learned (not flagged) one
    by one; as one run it is rare, and this channel's own calibration (below) says how rare
    for this series (after HTM's anomaly likelihood, which averages the last points' raw
    scores; the minimum, unlike a mean, is not raised by one huge spike). NAB benchmark,
    docs/detection.md.

    **Calibration** (peaks over threshold with an exponential tail, per channel): with
    memory ``memory`` points, ``rho`` is the rate at which ``a`` exceeded ``u`` digits
    (``exceed``, default 2) and ``sigma`` the mean excess; the evidence of a point is
    ``e = -log10(rho) + (a - u) / (sigma ln 10)`` (0 below ``u``): the tail probability
    of ``a`` under this series' own surprise distribution. For a well-behaved Gaussian
    series ``rho = 10^-u``, ``sigma = 0.434`` and ``e = a``; for a bursty series both
    grow and the same ``a`` is worth fewer digits. Both start from those values with
    the weight of ``prior`` points. With several tiers in ``exceed``, the smallest
    estimate among the tiers ``a`` exceeds is used. ``e`` is the largest of the three
    channels; ``score = e / (e + 10 (1 - sensitivity))``: **0.5 is an anomaly**, which
    at the default needs 5 digits (1e-5). ``e`` is unbounded, so the score never
    reaches 1 and a larger surprise always scores higher.

    **Reporting and learning:** the series keeps its recent peak evidence (decaying by
    e every ``refractory`` points). With ``rearm > 0`` (default 1.5) a point is reported
    (its score) only if its evidence exceeds ``rearm`` times that peak, else 0: one page
    per incident, broken only by a clearly stronger deviation. With ``rearm = 0`` the
    excess of the score over the peak score is reported instead. With
    ``mute_flagged_run`` (the default) nothing is reported while the previous point was
    flagged (0.5 or more): a run of flagged points is one episode, reported at its first
    point, however it grows (a jam that builds over ten points is one alarm, not four, as
    NAB and on-call count it; HTM's likelihood clamps repeated red points the same way);
    the peak still rises through the run, so the next episode must beat it. An episode also
    runs on through points just under the alarm level: nothing is reported while the previous
    point had at least ``episode`` (0.8) times the alarm level's evidence (4 digits at the
    default), so a jam that builds from 4.9 to 27 digits in two points is one report, not two
    (NAB counts the second as a false positive at a threshold under 0.5); ``episode=1`` is
    ``mute_flagged_run`` alone. And nothing is reported for ``hold`` (12) points after a
    reported alarm (a reported score of 0.5 or more): one alarm per incident, as ARTime's
    and contextOSE's masks after a detection (NAB benchmark, "One report per episode",
    docs/detection.md). Points scoring 0.5 or
    more are learned by no predictor and no calibrator (but a count's unclipped floors,
    ``count_floor_flagged``), until ``patience`` of them in a row (then the series is
    learned again: a new normal); the CUSUM re-seeds at the new level when it fires.
    ``grace`` points score 0 (warm-up).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = 50 + rng.normal(0, 1, 600)
    >>> x[500] = 60
    >>> s, _ = CalibratedBank().score_series(x)
    >>> int(np.argmax(s)), bool(s[500] >= 0.5), bool(np.sort(s)[-2] < 0.5)
    (500, True, True)
    """

    def __init__(
        self,
        sensitivity: float = 0.5,
        alpha: float = 0.02,
        huber: float = 3.0,
        floor: float = 0.5,
        floor_alpha: float = 0.02,
        memory: float = 1000.0,
        prior: float = 50.0,
        exceed: tuple = (2.0,),
        refractory: float = 50.0,
        patience: int = 30,
        daily_buckets: int = 96,
        weekly_buckets: int = 168,
        seasonal_alpha: float = 0.1,
        spread_alpha: float = 0.01,
        bucket_grace: int = 3,
        cusum_alpha: float = 0.005,
        drift: float = 0.5,
        h: float = 12.0,
        predictor_grace: int = 20,
        grace: int = 150,
        counts: bool = True,
        count_floor: float = 1.0,
        rearm: float = 1.5,
        dof: float = 0.0,
        count_floor_alpha: float = 0.005,
        count_floor_flagged: bool = True,
        recur: float = 2.0,
        recur_values: int = 4,
        mute_flagged_run: bool = True,
        sustain: int = 12,
        episode: float = 0.8,
        hold: int = 12,
    ):
        super().__init__()
        self.sensitivity, self.alpha, self.huber, self.floor = sensitivity, alpha, huber, floor
        self.floor_alpha, self.count_floor_alpha, self.count_floor_flagged = floor_alpha, count_floor_alpha, count_floor_flagged
        self.memory, self.prior, self.refractory = memory, prior, refractory
        self.exceed = tuple(exceed) if isinstance(exceed, (tuple, list)) else (float(exceed),)
        self.patience, self.daily_buckets, self.weekly_buckets = patience, daily_buckets, weekly_buckets
        self.seasonal_alpha, self.spread_alpha, self.bucket_grace = seasonal_alpha, spread_alpha, bucket_grace
        self.cusum_alpha, self.drift, self.h = cusum_alpha, drift, h
        self.predictor_grace, self.grace = predictor_grace, grace
        self.counts, self.count_floor, self.rearm, self.dof = counts, count_floor, rearm, dof
        self.recur, self.recur_values, self.mute_flagged_run = recur, recur_values, mute_flagged_run
        self.sustain = sustain
        if not 0.0 < episode <= 1.0:
            raise ValueError(f"episode must be in (0, 1] (a fraction of the alarm level), got {episode}")
        self.episode, self.hold = episode, hold
        f8 = np.float64
        self._n = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int8)  # 1 while every value so far was a count (integer >= 0)
        self._run = np.zeros(0, dtype=np.int64)
        # points still muted: the rest of an episode or of the hold after an alarm (0: report freely); an array of
        # its own, so a snapshot from before it restores with nothing muted
        self._quiet = np.zeros(0, dtype=np.int64)
        self._peak = np.zeros(0, dtype=f8)
        self._prev = np.zeros(0, dtype=f8)
        # level and step predictors: location, clipped and unclipped mean absolute deviation
        self._pred = np.zeros((0, 2, 3), dtype=f8)
        # seasonal predictors: per-series spread (clipped, unclipped) and how many residuals it has seen
        self._sdev = np.zeros((0, 2, 2), dtype=f8)
        self._sseen = np.zeros((0, 2), dtype=np.int64)
        self._dmean = np.zeros((0, daily_buckets), dtype=f8)
        self._dcount = np.zeros((0, daily_buckets), dtype=np.uint16)
        self._wmean = np.zeros((0, weekly_buckets), dtype=f8)
        self._wcount = np.zeros((0, weekly_buckets), dtype=np.uint16)
        # CUSUM: slow location, scale, up and down sums
        self._cusum = np.zeros((0, 4), dtype=f8)
        # recurring exact values: per slot (value, its episodes decayed over ``memory`` points, its longest episode)
        self._modes = np.zeros((0, recur_values, 3), dtype=f8)
        self._same = np.zeros(0, dtype=np.int64)  # how many points in a row had the previous value
        # calibration per channel (best, context, shift): weight, then per tier exceedances and summed excess
        self._tail = np.zeros((0, 3, 1 + 2 * len(self.exceed)), dtype=f8)
        # the sustained channel: the last ``sustain`` context surprises (at n % sustain) and its own
        # calibration, apart from ``_tail`` so that a snapshot from before it restores (these start afresh)
        self._ring = np.zeros((0, sustain), dtype=f8)
        self._stail = np.zeros((0, 1, 1 + 2 * len(self.exceed)), dtype=f8)

    # ------------------------------------------------------------------ state

    def _arrays(self) -> list[str]:
        return [k for k, v in vars(self).items() if k.startswith("_") and isinstance(v, np.ndarray)]

    def _prior_tail(self) -> np.ndarray:
        """``prior`` points of a calibrated channel: P(a > u digits) = 10^-u, mean excess 1/ln 10 = 0.434."""
        out = [self.prior]
        for u in self.exceed:
            rho = 10.0 ** -u
            out += [self.prior * rho, self.prior * rho / LN10]
        return np.array(out)

    def _grow(self, capacity: int) -> None:
        for name in self._arrays():
            a = getattr(self, name)
            extra = np.zeros((capacity - len(a), *a.shape[1:]), dtype=a.dtype)
            if name in ("_tail", "_stail"):
                extra[:] = self._prior_tail()
            elif name == "_count":
                extra[:] = int(self.counts)
            setattr(self, name, np.concatenate([a, extra]))

    def _reset(self, slots: np.ndarray) -> None:
        for name in self._arrays():
            getattr(self, name)[slots] = self._prior_tail() if name in ("_tail", "_stail") else (int(self.counts) if name == "_count" else 0)

    # ------------------------------------------------------------------ vectorized path

    def _score_learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        m = x.size
        counting = self._count[slots] == 1
        flip = counting & ~((x >= 0.0) & (x == np.floor(x)))
        if flip.any():  # not a count series after all: start again on the raw values
            self._reset(slots[flip])
            self._count[slots[flip]] = 0
            counting = counting & ~flip
        x = np.where(counting, 2.0 * np.sqrt(np.where(counting, x, 0.0) + 0.375), x)  # Anscombe: Poisson sd ~1
        cf = np.where(counting, self.count_floor, 0.0)
        n = self._n[slots]
        prev = self._prev[slots]
        pred = self._pred[slots]  # (m, 2, 3)
        loc, sc, sa = pred[:, :, 0], pred[:, :, 1], pred[:, :, 2]
        value = np.stack([x, x - prev], axis=1)  # level, step
        resid = value - loc
        warm = np.stack([n >= self.predictor_grace, n >= self.predictor_grace + 1], axis=1)
        spread = np.where(warm, np.maximum(MAD_TO_STD * np.maximum(sc, self.floor * sa), cf[:, None]), np.inf)
        expect = np.stack([loc[:, 0], prev + loc[:, 1]], axis=1)

        # seasonal predictors: 0 daily, 1 weekly
        seasonal = []
        for k, (period, buckets, means, counts) in enumerate(self._cycles()):
            if t is None or buckets == 0:
                seasonal.append(None)
                continue
            b = (np.mod(t, period) * (buckets / period)).astype(np.int64) % buckets
            mean, count = means[slots, b], counts[slots, b].astype(np.int64)
            dev, seen = self._sdev[slots, k], self._sseen[slots, k]
            ok = (count >= self.bucket_grace) & (seen >= self.bucket_grace)
            sp = np.where(ok, np.maximum(MAD_TO_STD * np.maximum(dev[:, 0], self.floor * dev[:, 1]), cf), np.inf)
            seasonal.append((b, mean, count, sp, np.where(count > 0, mean, np.nan)))
        spreads = [spread[:, 0], spread[:, 1]] + [np.full(m, np.inf) if s is None else s[3] for s in seasonal]
        resids = [resid[:, 0], resid[:, 1]] + [np.zeros(m) if s is None else x - s[1] for s in seasonal]
        expects = [expect[:, 0], expect[:, 1]] + [np.full(m, np.nan) if s is None else s[4] for s in seasonal]
        S, R, E = np.stack(spreads), np.stack(resids), np.stack(expects)  # (predictor, point)
        Z = _zv(R, S)
        pick = np.arange(m)
        best = np.argmin(S, axis=0)
        ctx_choices = np.array([0, 2, 3])
        ctx = ctx_choices[np.argmin(S[ctx_choices], axis=0)]

        # CUSUM on a slow robust level
        cu = self._cusum[slots]
        cwarm = n >= self.predictor_grace + 10
        cres = x - cu[:, 0]
        cz = _zv(cres, np.where(cwarm, np.maximum(MAD_TO_STD * cu[:, 1], cf), np.inf))
        u = np.clip(cz, -self.huber, self.huber)
        up = np.maximum(0.0, cu[:, 2] + u - self.drift)
        down = np.maximum(0.0, cu[:, 3] - u - self.drift)
        stat = np.maximum(up, down)

        surprise = tail_digits if not self.dof else (lambda z: _t_digits(z, self.dof))
        raw = np.stack([surprise(Z[best, pick]), surprise(Z[ctx, pick]), stat * (2.0 * self.drift / LN10)], axis=1)
        if self.sustain:  # the sustained channel: the smallest context surprise of the last ``sustain`` points
            ring = self._ring[slots]
            ring[pick, n % self.sustain] = np.where(cwarm, raw[:, 1], 0.0)
            self._ring[slots] = ring
            raw = np.concatenate([raw, ring.min(axis=1)[:, None]], axis=1)
        modes = self._modes[slots]  # (m, modes, 3)
        match = (modes[:, :, 0] == x[:, None]) & (modes[:, :, 1] > 0.0)
        hit = match.any(axis=1)
        j = np.where(hit, np.argmax(match, axis=1), np.argmin(modes[:, :, 1], axis=1))
        known = np.where(hit, modes[np.arange(m), j, 1], 0.0)
        longest = np.where(hit, modes[np.arange(m), j, 2], 0.0)
        same = np.where((x == prev) & (n >= 1), self._same[slots] + 1, 1)
        if self.recur > 0.0:  # a known episode is at most as surprising as its frequency (see the class docstring)
            with np.errstate(divide="ignore", invalid="ignore"):  # (0 / 0 where no episode is known: not used)
                known_ep = (known >= self.recur) & (same <= longest)
                cap = np.where(known_ep, np.log10(np.minimum(n, self.memory) / known), np.inf)
            raw[:, :2] = np.minimum(raw[:, :2], cap[:, None])
        tail = self._tail[slots]  # (m, channel, 1 + 2 tiers)
        if self.sustain:
            tail = np.concatenate([tail, self._stail[slots]], axis=1)
        ev = np.full(raw.shape, np.inf)
        for k, u in enumerate(self.exceed):  # the most conservative tier the surprise exceeds
            ex, sx = tail[:, :, 1 + 2 * k], tail[:, :, 2 + 2 * k]
            tier = np.log10(tail[:, :, 0] / ex) + (raw - u) * ex / (sx * LN10)
            ev = np.where(raw > u, np.minimum(ev, tier), ev)
        evidence = np.where(np.isinf(ev), 0.0, ev).max(axis=1)
        digits = 10.0 * (1.0 - self.sensitivity)
        on = n >= self.grace
        score = np.where(on, evidence / (evidence + digits), 0.0)
        peak = self._peak[slots] * math.exp(-1.0 / self.refractory)
        if self.rearm > 0.0:  # peak in digits: report only evidence clearly above the recent peak
            reported = np.where(evidence > self.rearm * peak, score, 0.0)
            level = evidence
        else:
            reported = np.maximum(score - peak, 0.0)
            level = score
        quiet = self._quiet[slots]
        muted = quiet > 0  # the rest of an episode, or the hold after a reported alarm
        if self.mute_flagged_run:  # the previous point was flagged: the same episode, reported once
            muted |= self._run[slots] > 0
        reported = np.where(muted, 0.0, reported)
        self._quiet[slots] = self._quieted(quiet, np.where(on, evidence, 0.0), (reported > 0.0) & (score >= 0.5), digits)

        run, keep = protect(score, self._run[slots], self.patience)

        # learn: level and step
        valid = keep[:, None] & np.stack([np.ones(m, dtype=bool), n >= 1], axis=1)
        cnt = np.stack([n + 1, n], axis=1)
        rate = np.maximum(self.alpha, 1.0 / np.maximum(cnt, 1))
        bound = np.where(warm, self.huber * sc, np.inf)
        clipped = np.clip(resid, -bound, bound)
        many = cnt > 1
        pred = pred.copy()
        pred[:, :, 0] = np.where(valid, loc + rate * clipped, loc)
        pred[:, :, 1] = np.where(valid & many, sc + rate * (np.abs(clipped) - sc), sc)
        falpha = np.where(counting, self.count_floor_alpha or self.floor_alpha, self.floor_alpha)[:, None]
        frate = np.maximum(falpha, 1.0 / np.maximum(cnt, 1))
        # a count's floors learn flagged points too: its own alarms must not starve them (see the class docstring)
        flagged_floor = counting & self.count_floor_flagged
        fvalid = valid | flagged_floor[:, None] & (cnt >= 1)
        pred[:, :, 2] = np.where(fvalid & many, sa + frate * (np.abs(resid) - sa), sa)
        self._pred[slots] = pred
        # learn: seasonal
        for k, ((period, buckets, means, counts), s) in enumerate(zip(self._cycles(), seasonal)):
            if s is None:
                continue
            b, mean, count = s[0], s[1], s[2]
            dev, seen = self._sdev[slots, k], self._sseen[slots, k]
            bwarm = count >= self.bucket_grace
            sbound = np.where(bwarm & (seen >= self.bucket_grace), self.huber * MAD_TO_STD * dev[:, 0], np.inf)
            r = x - mean
            c = np.clip(r, -sbound, sbound)
            means[slots, b] = np.where(keep, mean + np.maximum(self.seasonal_alpha, 1.0 / (count + 1.0)) * c, mean)
            srate = np.maximum(self.spread_alpha, 1.0 / (seen + 1.0))
            learn = keep & bwarm
            newdev = np.stack([dev[:, 0] + srate * (np.abs(c) - dev[:, 0]), dev[:, 1] + srate * (np.abs(r) - dev[:, 1])], axis=1)
            floor_learn = bwarm & (keep | flagged_floor)  # the unclipped spread: a count's floor learns flagged points
            self._sdev[slots, k] = np.where(np.stack([learn, floor_learn], axis=1), newdev, dev)
            self._sseen[slots, k] = seen + learn
            counts[slots, b] = np.where(keep, np.minimum(count + 1, 65535), count).astype(np.uint16)
        # learn: CUSUM
        alarm = stat > self.h
        cvalid = keep | alarm
        crate = np.maximum(self.cusum_alpha, 1.0 / (n + 1.0))
        cbound = np.where(cwarm, self.huber * cu[:, 1], np.inf)
        cc = np.clip(cres, -cbound, cbound)
        cloc = np.where(cvalid, cu[:, 0] + crate * cc, cu[:, 0])
        cscale = np.where(cvalid & (n >= 1), cu[:, 1] + crate * (np.abs(cc) - cu[:, 1]), cu[:, 1])
        self._cusum[slots] = np.stack(
            [np.where(alarm, x, cloc), cscale, np.where(alarm, 0.0, up), np.where(alarm, 0.0, down)], axis=1
        )
        # learn: calibration (points kept by the predictors only)
        decay = 1.0 - 1.0 / self.memory
        k3 = keep[:, None]
        tail = tail.copy()
        tail[:, :, 0] = np.where(k3, tail[:, :, 0] * decay + 1.0, tail[:, :, 0])
        for k, u in enumerate(self.exceed):
            over = raw > u
            i1, i2 = 1 + 2 * k, 2 + 2 * k
            tail[:, :, i1] = np.where(k3, tail[:, :, i1] * decay + over, tail[:, :, i1])
            tail[:, :, i2] = np.where(k3, tail[:, :, i2] * decay + np.where(over, raw - u, 0.0), tail[:, :, i2])
        self._tail[slots] = tail[:, :3]
        if self.sustain:
            self._stail[slots] = tail[:, 3:]
        # learn: recurring values (flagged or not: a flagged value that recurs becomes known)
        add = hit | (evidence >= digits)  # a value seen before, or a surprising new one (in place of the lightest)
        old = modes[np.arange(m), j]
        modes[:, :, 1] *= decay
        mode = np.stack([x, np.where(hit, known * decay + (same == 1), 1.0), np.maximum(longest, same)], axis=1)
        modes[np.arange(m), j] = np.where(add[:, None], mode, old * [1.0, decay, 1.0])
        self._modes[slots] = modes
        self._same[slots] = same

        self._peak[slots] = np.maximum(peak, np.where(n >= self.grace, level, 0.0))
        self._run[slots] = run
        self._prev[slots] = x
        self._n[slots] = n + 1
        expected = E[best, pick]
        return reported, np.where(counting, np.maximum((0.5 * expected) ** 2 - 0.375, 0.0), expected)

    def _quieted(self, quiet: np.ndarray, level: np.ndarray, alarm: np.ndarray, digits: float) -> np.ndarray:
        """Points still muted after this one: one fewer; at least the next one after a point of ``episode`` x the
        alarm level (the episode goes on); ``hold`` after a reported alarm (one alarm per incident)."""
        ep = self.episode * digits if self.mute_flagged_run else math.inf
        out = np.maximum(quiet - 1, 0)
        out = np.where(level >= ep, np.maximum(out, 1), out)
        return np.where(alarm, np.maximum(out, self.hold), out)

    def _cycles(self):
        return (
            (86400.0, self.daily_buckets, self._dmean, self._dcount),
            (604800.0, self.weekly_buckets, self._wmean, self._wcount),
        )

    # ------------------------------------------------------------------ one series, scalar path

    def score_series(self, x, t=None, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Score then learn every value of one series, in order (the replay path).

        Exactly what ``len(x)`` calls of ``score_learn([slot], [x[i]], [t[i]])`` would
        return and leave behind (same state afterwards), in a plain Python loop over
        floats: a few microseconds per point instead of a numpy call per point.
        """
        xs = np.asarray(x, dtype=np.float64).tolist()
        ts = None if t is None else np.broadcast_to(np.asarray(t, dtype=np.float64), (len(xs),)).tolist()
        self.ensure(slot + 1)
        out_s = [0.0] * len(xs)
        out_b = [math.nan] * len(xs)
        start = 0
        while start < len(xs):
            start = self._segment(slot, xs, ts, start, out_s, out_b)
            if start < len(xs):  # a value that is not a count: start again on the raw values
                self._reset(np.array([slot]))
                self._count[slot] = 0
        return np.array(out_s), np.array(out_b)

    def _segment(self, slot: int, xs: list, ts: list | None, start: int, out_s: list, out_b: list) -> int:
        """The scalar loop from ``xs[start]`` on; stops (returns its index) at the first non-count of a count series."""
        counting = bool(self._count[slot])
        cf = self.count_floor if counting else 0.0
        stop = len(xs)
        g, g1, gc, grace = self.predictor_grace, self.predictor_grace + 1, self.predictor_grace + 10, self.grace
        alpha, huber, floor, K = self.alpha, self.huber, self.floor, MAD_TO_STD
        falpha = (self.count_floor_alpha or self.floor_alpha) if counting else self.floor_alpha
        floor_flagged = counting and self.count_floor_flagged
        exceed0, decay = min(self.exceed), 1.0 - 1.0 / self.memory
        digits = 10.0 * (1.0 - self.sensitivity)
        fade = math.exp(-1.0 / self.refractory)
        patience, drift, h, rearm = self.patience, self.drift, self.h, self.rearm
        tiers = list(enumerate(self.exceed))
        mute_run = self.mute_flagged_run
        ep, hold = (self.episode * digits if mute_run else math.inf), self.hold
        dof, recur, memory = self.dof, self.recur, self.memory
        tk = (dof + 1.0) / 2.0
        llr = 2.0 * drift / LN10  # CUSUM sum -> log-likelihood ratio of a 2*drift shift, in digits
        calpha, salpha, spalpha, bgrace = self.cusum_alpha, self.seasonal_alpha, self.spread_alpha, self.bucket_grace
        inf = math.inf

        n, run, same = int(self._n[slot]), int(self._run[slot]), int(self._same[slot])
        quiet = int(self._quiet[slot])
        peak, prev = float(self._peak[slot]), float(self._prev[slot])
        (l0, l1, l2), (d0, d1, d2) = self._pred[slot].tolist()
        c0, c1, up, down = self._cusum[slot].tolist()
        sustain = self.sustain
        ring = self._ring[slot].tolist()
        tl = self._tail[slot].tolist() + (self._stail[slot].tolist() if sustain else [])
        channels = range(len(tl))
        mv, mw, ml = map(list, zip(*self._modes[slot].tolist()))
        cyc = []
        for k, (period, buckets, means, counts) in enumerate(self._cycles()):
            if ts is None or buckets == 0:
                cyc.append(None)
            else:
                dev = self._sdev[slot, k].tolist()
                cyc.append([period, buckets / period, buckets, means[slot].tolist(), counts[slot].tolist(), dev[0], dev[1], int(self._sseen[slot, k])])

        for i in range(start, len(xs)):
            xi = xs[i]
            if not (xi - xi == 0.0):  # nan or inf: score 0, not learned
                continue
            if counting:
                if xi < 0.0 or xi != math.floor(xi):
                    stop = i
                    break
                xi = 2.0 * math.sqrt(xi + 0.375)
            # level and step
            r0 = xi - l0
            s0 = K * (l1 if l1 > floor * l2 else floor * l2) if n >= g else inf
            if s0 < cf:
                s0 = cf
            step = xi - prev
            r1 = step - d0
            s1 = K * (d1 if d1 > floor * d2 else floor * d2) if n >= g1 else inf
            if s1 < cf:
                s1 = cf
            best_s, best_r, best_e = s0, r0, l0
            ctx_s, ctx_r = s0, r0
            if s1 < best_s:
                best_s, best_r, best_e = s1, r1, prev + d0
            bs = []
            for c in cyc:
                if c is None:
                    bs.append(None)
                    continue
                b = int((ts[i] % c[0]) * c[1]) % c[2]
                mean, count = c[3][b], c[4][b]
                ok = count >= bgrace and c[7] >= bgrace
                sp = K * (c[5] if c[5] > floor * c[6] else floor * c[6]) if ok else inf
                if sp < cf:
                    sp = cf
                bs.append((b, mean, count))
                if sp < best_s:
                    best_s, best_r, best_e = sp, xi - mean, mean
                if sp < ctx_s:
                    ctx_s, ctx_r = sp, xi - mean
            # CUSUM
            cwarm = n >= gc
            cres = xi - c0
            cz = _z(cres, (K * c1 if K * c1 > cf else cf) if cwarm else inf)
            u = huber if cz > huber else (-huber if cz < -huber else cz)
            nu = up + u - drift
            nu = nu if nu > 0.0 else 0.0
            nd = down - u - drift
            nd = nd if nd > 0.0 else 0.0
            stat = nu if nu > nd else nd

            if dof:
                zb, zc = _z(best_r, best_s), _z(ctx_r, ctx_s)
                raw = (tk * math.log10(1.0 + zb * zb / dof) if zb * zb < inf else RAW_CAP,
                       tk * math.log10(1.0 + zc * zc / dof) if zc * zc < inf else RAW_CAP, stat * llr)
            else:
                raw = (_digits(_z(best_r, best_s)), _digits(_z(ctx_r, ctx_s)), stat * llr)
            if sustain:
                ring[n % sustain] = raw[1] if cwarm else 0.0
                raw = (*raw, min(ring))
            # recurring exact values: the slot holding xi (slots in use come before unused ones)
            seen, longest = 0.0, 0.0
            if xi in mv:
                mj = mv.index(xi)
                seen, longest = mw[mj], ml[mj]
            same = same + 1 if (xi == prev and n >= 1) else 1
            if recur > 0.0 and seen >= recur and same <= longest:
                cap = math.log10((n if n < memory else memory) / seen)
                raw = (raw[0] if raw[0] < cap else cap, raw[1] if raw[1] < cap else cap, *raw[2:])
            e = 0.0
            for j in channels:
                a = raw[j]
                if a > exceed0:
                    row = tl[j]
                    ej = inf
                    for k, u in tiers:
                        if a > u:
                            ex = row[1 + 2 * k]
                            tier = math.log10(row[0] / ex) + (a - u) * ex / (row[2 + 2 * k] * LN10)
                            if tier < ej:
                                ej = tier
                    if ej > e:
                        e = ej
            mw = [w * decay for w in mw]
            if seen:  # a value seen before
                mw[mj], ml[mj] = seen * decay + (same == 1), (longest if longest > same else same)
            elif e >= digits:  # a surprising new one, in place of the lightest (first of equals)
                mj = mw.index(min(mw))
                mv[mj], mw[mj], ml[mj] = xi, 1.0, same
            score = e / (e + digits) if n >= grace else 0.0
            peak *= fade
            if rearm > 0.0:
                out_s[i] = score if e > rearm * peak else 0.0
                lev = e if n >= grace else 0.0
            else:
                rep = score - peak
                out_s[i] = rep if rep > 0.0 else 0.0
                lev = score
            if quiet > 0 or (mute_run and run > 0):  # the same episode, or the hold after an alarm: reported once
                out_s[i] = 0.0
            quiet = quiet - 1 if quiet > 0 else 0  # as :meth:`_quieted`
            if n >= grace and e >= ep and quiet < 1:
                quiet = 1
            if out_s[i] > 0.0 and score >= 0.5 and quiet < hold:
                quiet = hold
            if counting:
                best_e = 0.25 * best_e * best_e - 0.375
                out_b[i] = best_e if best_e > 0.0 else 0.0
            else:
                out_b[i] = best_e

            flagged = score >= 0.5  # :func:`protect`, per point
            run = run + 1 if flagged else 0
            keep = (not flagged) or run >= patience
            if keep:
                # level
                rate = 1.0 / (n + 1) if 1.0 / (n + 1) > alpha else alpha
                bound = huber * l1 if n >= g else inf
                cl = bound if r0 > bound else (-bound if r0 < -bound else r0)
                l0 += rate * cl
                if n + 1 > 1:
                    l1 += rate * (abs(cl) - l1)
                    ra = 1.0 / (n + 1)
                    l2 += (ra if ra > falpha else falpha) * (abs(r0) - l2)
                # step
                if n >= 1:
                    rate = 1.0 / n if 1.0 / n > alpha else alpha
                    bound = huber * d1 if n >= g1 else inf
                    cl = bound if r1 > bound else (-bound if r1 < -bound else r1)
                    d0 += rate * cl
                    if n > 1:
                        d1 += rate * (abs(cl) - d1)
                        ra = 1.0 / n
                        d2 += (ra if ra > falpha else falpha) * (abs(r1) - d2)
                # seasonal
                for c, bb in zip(cyc, bs):
                    if c is None:
                        continue
                    b, mean, count = bb
                    dev0, dev1, seen = c[5], c[6], c[7]
                    bwarm = count >= bgrace
                    sb = huber * K * dev0 if (bwarm and seen >= bgrace) else inf
                    r = xi - mean
                    cl = sb if r > sb else (-sb if r < -sb else r)
                    ra = 1.0 / (count + 1.0)
                    c[3][b] = mean + (ra if ra > salpha else salpha) * cl
                    if bwarm:
                        ra = 1.0 / (seen + 1.0)
                        ra = ra if ra > spalpha else spalpha
                        c[5] = dev0 + ra * (abs(cl) - dev0)
                        c[6] = dev1 + ra * (abs(r) - dev1)
                        c[7] = seen + 1
                    c[4][b] = count + 1 if count < 65535 else 65535
            elif floor_flagged:  # a count's unclipped floors learn flagged points too (as in the keep branch)
                ra = 1.0 / (n + 1)
                l2 += (ra if ra > falpha else falpha) * (abs(r0) - l2)
                if n > 1:
                    ra = 1.0 / n
                    d2 += (ra if ra > falpha else falpha) * (abs(r1) - d2)
                for c, bb in zip(cyc, bs):
                    if c is not None and bb[2] >= bgrace:
                        ra = 1.0 / (c[7] + 1.0)
                        c[6] += (ra if ra > spalpha else spalpha) * (abs(xi - bb[1]) - c[6])
            if keep:
                # calibration
                for j in channels:
                    row = tl[j]
                    a = raw[j]
                    row[0] = row[0] * decay + 1.0
                    for k, u in tiers:
                        if a > u:
                            row[1 + 2 * k] = row[1 + 2 * k] * decay + 1.0
                            row[2 + 2 * k] = row[2 + 2 * k] * decay + (a - u)
                        else:
                            row[1 + 2 * k] *= decay
                            row[2 + 2 * k] *= decay
            # CUSUM (learns through an alarm too)
            alarm = stat > h
            if keep or alarm:
                ra = 1.0 / (n + 1.0)
                ra = ra if ra > calpha else calpha
                cb = huber * c1 if cwarm else inf
                cc = cb if cres > cb else (-cb if cres < -cb else cres)
                c0 += ra * cc
                if n >= 1:
                    c1 += ra * (abs(cc) - c1)
            if alarm:
                c0, up, down = xi, 0.0, 0.0
            else:
                up, down = nu, nd
            peak = peak if peak > lev else lev
            prev = xi
            n += 1

        self._n[slot], self._run[slot], self._peak[slot], self._prev[slot] = n, run, peak, prev
        self._quiet[slot] = quiet
        self._pred[slot] = [[l0, l1, l2], [d0, d1, d2]]
        self._cusum[slot] = [c0, c1, up, down]
        self._tail[slot] = tl[:3]
        if sustain:
            self._stail[slot] = tl[3:]
            self._ring[slot] = ring
        self._modes[slot] = list(zip(mv, mw, ml))
        self._same[slot] = same
        for k, (c, (period, buckets, means, counts)) in enumerate(zip(cyc, self._cycles())):
            if c is not None:
                means[slot] = c[3]
                counts[slot] = c[4]
                self._sdev[slot, k] = [c[5], c[6]]
                self._sseen[slot, k] = c[7]
        return stop


def _zv(residual: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Vector :func:`_z`: ``residual / spread``; 0 where unknown (inf spread) or 0/0, +-inf where the spread is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = residual / spread
    return np.where(np.isnan(z), 0.0, z)

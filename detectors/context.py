"""Recurring contexts: a pattern that keeps coming back at the same time of day is not news.

:class:`ContextBank` wraps a :class:`~modelmedic.detectors.calibrated.CalibratedBank` and
caps the evidence it *reports* by how often the point's **context** has occurred: the
series' value quantised to ``levels`` levels of its running range, the previous point's
level, and the hour of the day (``day_buckets``). After HTM, contextOSE and ARTime, which
learn recurring patterns as contexts and stop finding them novel; the calibrated bank
predicts a value and never learns a point it flags, so a rush-hour jam flagged every day
stays an alarm every day (docs/detection.md, NAB benchmark). Every point is counted in
its context, flagged or not; which points the inner bank flags and learns is unchanged.

State per series: the running range, the previous level, and a bounded two-way hashed
table of ``table`` contexts with counts that decay over ``memory`` points (lazily, by the
point count at their last update); a new context takes the lighter of its two places.
"""

from __future__ import annotations

import math

import numpy as np

from modelmedic.detectors.base import SeriesBank
from modelmedic.detectors.calibrated import CalibratedBank

_MIX = 40503  # second place of a context in the table: (key * _MIX) % table


class ContextBank(SeriesBank):
    """:class:`CalibratedBank` whose reported evidence is at most the frequency of a recurring context.

    The context of a point is ``(level of the previous point, level of this point, hour)``:
    a level is the value's place in ``levels`` equal steps of the series' running range
    (min and max, each pulled towards the other by ``shrink`` of the range per point, so
    one wild value does not blind the quantiser for ever), the hour one of
    ``day_buckets`` buckets of the day (needs ``t``; without it nothing is capped). Once a
    context has been seen ``recur`` times (counts decayed over ``memory`` points), the
    inner bank's reported evidence ``e`` at that context is at most ``log10(points /
    count)`` digits, the context's own frequency (as ``CalibratedBank``'s ``recur`` caps a
    recurring exact value): a jam at 08:45 that reached these levels three times in the last
    ~1,000 points scores at most log10(1000 / 3) = 2.5 digits (under the 5 of an alarm), a
    jam at night does not. The
    score is ``e / (e + 10 (1 - sensitivity))`` as the inner bank's.

    Both paths (``score_learn`` vectorized over slots, ``score_series`` one slot in a
    scalar loop) compute the same numbers and leave the same state.

    How often a context recurs exactly depends on the data: the range drifts (``shrink``),
    so a jam of the same size every day lands at one, two or three levels. On a quiet
    series with the same jam every morning, the inner bank alarms every day; this bank
    alarms on 10 of the 13 days:

    >>> import numpy as np
    >>> t = 300.0 * np.arange(14 * 288)  # 14 days at 5 minutes
    >>> x = 10 + np.random.default_rng(3).normal(0, 0.2, t.size)
    >>> x[(t % 86400 >= 30600) & (t % 86400 < 33000) & (t >= 86400)] += 35  # 08:30-09:10 from day 1
    >>> s_in, _ = CalibratedBank().score_series(x, t)
    >>> s_ctx, _ = ContextBank().score_series(x, t)
    >>> int((s_in >= 0.5).sum()), int((s_ctx >= 0.5).sum())
    (13, 10)
    """

    def __init__(
        self,
        levels: int = 32,
        day_buckets: int = 24,
        memory: float = 1000.0,
        recur: float = 2.0,
        shrink: float = 1e-3,
        table: int = 512,
        **calibrated,
    ):
        super().__init__()
        self.levels, self.day_buckets, self.memory, self.recur = levels, day_buckets, memory, recur
        self.shrink, self.table = shrink, table
        self.calibrated = calibrated
        self.bank = CalibratedBank(**calibrated)
        self._n = np.zeros(0, dtype=np.int64)  # points counted in a context
        self._range = np.zeros((0, 2), dtype=np.float64)  # running min, max
        self._prev = np.zeros(0, dtype=np.int64)  # the previous point's level + levels + 1 (0: none yet)
        self._key = np.zeros((0, table), dtype=np.int32)  # context id + 1 (0: empty place)
        self._count = np.zeros((0, table), dtype=np.float64)  # its decayed count at ...
        self._stamp = np.zeros((0, table), dtype=np.int32)  # ... this point count

    def _params(self) -> dict[str, object]:
        own = {k: getattr(self, k) for k in ("levels", "day_buckets", "memory", "recur", "shrink", "table")}
        return {**own, **self.calibrated}

    def _arrays(self) -> list[str]:
        return [k for k, v in vars(self).items() if k.startswith("_") and isinstance(v, np.ndarray)]

    def _grow(self, capacity: int) -> None:
        self.bank.ensure(capacity)
        for name in self._arrays():
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros((capacity - len(a), *a.shape[1:]), dtype=a.dtype)]))

    def _reset(self, slots: np.ndarray) -> None:
        self.bank.forget(slots)
        for name in self._arrays():
            getattr(self, name)[slots] = 0

    def _cap_digits(self, e: np.ndarray, cap: np.ndarray) -> np.ndarray:
        """Reported scores with evidence ``min(e, cap)`` (``e`` recovered from the inner bank's score)."""
        digits = 10.0 * (1.0 - self.bank.sensitivity)
        capped = np.minimum(e * digits / np.maximum(1.0 - e, 1e-300), cap)
        return np.where(e > 0.0, capped / (capped + digits), 0.0)

    def _score_learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores, baselines = self.bank._score_learn(slots, x, t)
        if t is None:
            return scores, baselines
        rows = np.arange(x.size)
        n = self._n[slots]
        lo, hi = self._range[slots, 0], self._range[slots, 1]
        q = np.where(n > 0, _levels(x, lo, hi, self.levels), 0)
        w = (hi - lo) * self.shrink
        lo, hi = np.where(n > 0, np.minimum(x, lo + w), x), np.where(n > 0, np.maximum(x, hi - w), x)
        hour = (np.mod(t, 86400.0) * (self.day_buckets / 86400.0)).astype(np.int64) % self.day_buckets
        key = (self._prev[slots] * 3 * self.levels + q + self.levels) * self.day_buckets + hour + 1
        places = np.stack([key % self.table, (key * _MIX) % self.table], axis=1)  # (m, 2)
        keys = self._key[slots[:, None], places]
        decay = 1.0 - 1.0 / self.memory
        counts = self._count[slots[:, None], places] * decay ** (n[:, None] - self._stamp[slots[:, None], places])
        counts = np.where(keys > 0, counts, 0.0)
        hit = keys == key[:, None]
        found = hit.any(axis=1)
        # the place of this context: where it is, else the lighter of its two (the first of equals)
        j = np.where(found, np.argmax(hit, axis=1), np.argmin(counts, axis=1))
        seen = np.where(found, counts[rows, j], 0.0)
        total = (1.0 - decay ** (n + 1)) / (1.0 - decay)
        with np.errstate(divide="ignore"):
            cap = np.where(seen >= self.recur, np.log10(total / seen), np.inf)
        place = places[rows, j]
        self._key[slots, place] = key
        self._count[slots, place] = seen + 1.0
        self._stamp[slots, place] = n
        self._range[slots] = np.stack([lo, hi], axis=1)
        self._prev[slots] = q + self.levels + 1
        self._n[slots] = n + 1
        return self._cap_digits(scores, cap), baselines

    def score_series(self, x, t=None, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Score then learn every value of one series (the replay path): the inner bank's
        ``score_series``, then the contexts in a scalar loop; equal to one ``score_learn`` per value."""
        self.ensure(slot + 1)
        scores, baselines = self.bank.score_series(x, t, slot=slot)
        if t is None:
            return scores, baselines
        xs = np.asarray(x, dtype=np.float64).tolist()
        ts = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(xs),)).tolist()
        levels, buckets, size, recur, shrink = self.levels, self.day_buckets, self.table, self.recur, self.shrink
        decay = 1.0 - 1.0 / self.memory
        per_bucket, top = buckets / 86400.0, 2 * levels - 1
        n, prev = int(self._n[slot]), int(self._prev[slot])
        lo, hi = self._range[slot].tolist()
        keys, counts, stamps = self._key[slot].tolist(), self._count[slot].tolist(), self._stamp[slot].tolist()
        caps = [math.inf] * len(xs)
        for i, v in enumerate(xs):
            if not (v - v == 0.0):  # nan or inf: not counted (as the inner bank)
                continue
            if n == 0:
                q, lo, hi = 0, v, v
            else:
                width = hi - lo
                q = math.floor((v - lo) / width * levels) if width > 0.0 else (0 if v == lo else (top if v > lo else -levels))
                q = top if q > top else (-levels if q < -levels else q)
                w = width * shrink
                lo = v if v < lo + w else lo + w
                hi = v if v > hi - w else hi - w
            key = (prev * 3 * levels + q + levels) * buckets + int((ts[i] % 86400.0) * per_bucket) % buckets + 1
            a, b = key % size, (key * _MIX) % size
            ca = counts[a] * decay ** (n - stamps[a]) if keys[a] else 0.0
            cb = counts[b] * decay ** (n - stamps[b]) if keys[b] else 0.0
            if keys[a] == key:
                j, seen = a, ca
            elif keys[b] == key:
                j, seen = b, cb
            else:
                j, seen = (a if ca <= cb else b), 0.0
            if seen >= recur:
                caps[i] = math.log10((1.0 - decay ** (n + 1)) / (1.0 - decay) / seen)
            keys[j], counts[j], stamps[j] = key, seen + 1.0, n
            prev = q + levels + 1
            n += 1
        self._n[slot], self._prev[slot] = n, prev
        self._range[slot] = [lo, hi]
        self._key[slot], self._count[slot], self._stamp[slot] = keys, counts, stamps
        return self._cap_digits(scores, np.array(caps)), baselines


def _levels(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, levels: int) -> np.ndarray:
    """Each value's level: ``floor((x - lo) / (hi - lo) * levels)`` in ``[-levels, 2 levels)``.

    Levels below 0 and from ``levels`` up are values outside the running range, so a value
    far beyond every earlier one is a new context rather than the top level again. A
    range of width 0 (the first point, a constant series): 0 at its value, else the far end.
    """
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.floor((x - lo) / width * levels)
    flat = np.where(x == lo, 0.0, np.where(x > lo, 2 * levels - 1, -levels))
    return np.clip(np.where(width > 0.0, q, flat), -levels, 2 * levels - 1).astype(np.int64)

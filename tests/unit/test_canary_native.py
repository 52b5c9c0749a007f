"""The canary detector's native pair recursion (``native/src/canary.rs``) against the Python it replaced, bit for bit.

``Reference`` below is ``CanaryDivergence``'s pair code as it was in Python before it moved to Rust (966574d),
unchanged but for its docstrings. A detector and its reference take the same seeded pairs (numbers, with a learned
and a given scale, classes, probability vectors; healthy, then diverging or biased, then healthy again; pairs in
bursts within one step and a step apart, out of order now and then), and after every pair the native detector's
snapshot state (``__getstate__``) must equal the reference's attributes, value for value and type for type, and what
``observe_pair`` returns must be the same. A float computed differently (another operation order, a fused
multiply-add, a ``max`` keeping the other of two equal values) fails within a few pairs.
"""

from __future__ import annotations

import functools
import math
import random

import pytest

from modelmedic.detectors.quality import (_ALARM, _LARGE, _LLR, _N, _RATE, _UP, _DOWN, _X, CanaryDivergence,
                                          _bernoulli_llr, _cusum_step, _level, _prediction_type, total_variation)


@functools.lru_cache(maxsize=4096)
def _rate_llrs(tolerated: float, effect: float, large_effect: float) -> tuple[tuple[tuple[float, float], ...], ...]:
    out = []
    for e in (effect, large_effect):
        p1 = min(tolerated + e, 0.999)
        out.append((_bernoulli_llr(tolerated, p1), _bernoulli_llr(tolerated, (tolerated + p1) / 2)))
    return tuple(out)


def _wilson_upper(successes: float, n: float, z: float) -> float:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return min(1.0, centre + half)


class Reference:
    """966574d's ``CanaryDivergence``: its settings and the pair recursion (no join, no decision)."""

    def __init__(self, expected_rate=None, prior_rate=0.1, margin=0.05, effect=0.05, large_effect=0.2, tolerance=0.5,
                 probability_tolerance=0.1, bias_effect=0.2, scale=None, false_alarms_per_day=1e-4, step_s=60.0,
                 min_pairs=10, warmup=200, min_rate=0.005, block=200):
        self.expected_rate, self.prior_rate, self.effect, self.tolerance = expected_rate, prior_rate, effect, tolerance
        self.margin, self.large_effect = margin, large_effect
        self.probability_tolerance, self.bias_effect, self.scale = probability_tolerance, bias_effect, scale
        self.false_alarms_per_day, self.step_s = false_alarms_per_day, step_s
        self.min_pairs, self.warmup, self.min_rate, self.block = min_pairs, warmup, min_rate, block
        self._learned = expected_rate is not None
        self._p0 = 0.0
        self._llrs = []
        self._set_p0(expected_rate if expected_rate is not None else prior_rate)
        self._level = _level(step_s, false_alarms_per_day)
        self._step = -math.inf
        self._cusums = [[0.0, False, 0.0, 0.0, 0, 0, 0.0] for _ in range(4)]
        self._type = ""
        self._pairs = self._disagree = 0
        self._distance = 0.0
        self._prod = [0, 0.0, 0.0]
        self._diff = [0, 0.0, 0.0]
        self._recent = [0, 0, 0, 0]

    def _set_p0(self, p0):
        self._p0 = min(max(p0, 1e-6), 0.9)
        self._llrs = list(_rate_llrs(self.tolerated, self.effect, self.large_effect))

    @property
    def tolerated(self):
        return min(self._p0 + self.margin, 0.95)

    @property
    def anomalous(self):
        rate, large, up, down = self._cusums
        return rate[_ALARM] or large[_ALARM] or up[_ALARM] or down[_ALARM]

    def healthy_rate(self):
        if self.anomalous or self._pairs < self.min_pairs:
            return None
        return max(_wilson_upper(self._disagree, self._pairs, 2.0), self.min_rate)

    def observe_pair(self, prod, canary, ts):
        was = now = None
        step = ts // self.step_s
        if step > self._step:
            was, now = self._close()
            self._step = step
        kind = self._type = _prediction_type(prod, canary)
        y = 0.0
        if kind == "number":
            y = (float(canary) - float(prod)) / self._spread(float(prod))
            distance = abs(y)
            disagree = distance > self.tolerance
        elif kind == "probabilities":
            distance = total_variation(prod, canary)
            disagree = distance > self.probability_tolerance
        else:
            disagree = prod != canary
            distance = float(disagree)
        self._pairs += 1
        self._disagree += disagree
        self._distance += distance
        recent = self._recent
        recent[2] += 1
        recent[3] += disagree
        if recent[2] >= self.block:
            self._recent = [recent[2], recent[3], 0, 0]
        if self._pairs < self.min_pairs:
            return False
        if not self._learned and self._pairs >= self.warmup and not (self.anomalous if was is None else was):
            healthy = self.healthy_rate()
            if healthy is not None:
                self._learned = True
                self._set_p0(healthy)
        for cusum, (llr, hold) in zip(self._cusums[_RATE:_LARGE + 1], self._llrs):
            yes, no = hold if cusum[_ALARM] else llr
            cusum[_LLR] += yes if disagree else no
            cusum[_X] += disagree
            cusum[_N] += 1
        if kind == "number":
            self._bias(y)
        return was is False and now

    def _spread(self, prod):
        w = self._prod
        w[0] += 1
        delta = prod - w[1]
        w[1] += delta / w[0]
        w[2] += delta * (prod - w[1])
        sd = self.scale if self.scale is not None else math.sqrt(w[2] / w[0])
        return max(sd, 1e-3 * abs(w[1]), 1e-12)

    def _bias(self, y):
        e = self.bias_effect
        clipped = min(max(y, -2 * e), 2 * e)
        w = self._diff
        w[0] += 1
        delta = clipped - w[1]
        w[1] += delta / w[0]
        w[2] += delta * (clipped - w[1])
        var = max(w[2] / w[0], e * e)
        for cusum, sign in ((self._cusums[_UP], 1.0), (self._cusums[_DOWN], -1.0)):
            shift = e / 2 if cusum[_ALARM] else e
            cusum[_LLR] += shift / var * (sign * clipped - shift / 2)
            cusum[_X] += y
            cusum[_N] += 1

    def _close(self):
        level, was, now = self._level, False, False
        for cusum in self._cusums:
            value, alarm, llr, x, n, run_n, run_x = cusum
            was = was or alarm
            if n:
                value, alarm = _cusum_step(value, alarm, llr, level)
                if value > 0.0:
                    cusum[:] = value, alarm, 0.0, 0.0, 0, run_n + n, run_x + x
                else:
                    cusum[:] = value, alarm, 0.0, 0.0, 0, 0, 0.0
            now = now or alarm
        return was, now


STATE = ("_learned", "_p0", "_llrs", "_level", "_step", "_cusums", "_type", "_pairs", "_disagree", "_distance",
         "_prod", "_diff", "_recent")


def _typed(value: object) -> object:
    """A value with its type spelled out at every level (1 == 1.0 == True in Python, not in a snapshot)."""
    if isinstance(value, list | tuple):
        return type(value).__name__, [_typed(v) for v in value]
    return type(value).__name__, repr(value)


def _numbers(seed: int, n: int, scale: float, bias: float = 0.6) -> list[tuple[object, object, float]]:
    """Numeric pairs: healthy, a consistent bias (``bias`` spreads), scattered disagreement, healthy again; some
    ints, bursts."""
    r, ts, out = random.Random(seed), 1_767_225_600.0, []
    for i in range(n):
        p = round(r.gauss(100.0, scale), 3)
        shift = bias * scale if n // 4 <= i < n // 2 else 0.0
        noise = r.gauss(0.0, 3 * scale if n // 2 <= i < 5 * n // 8 else 0.05 * scale)
        prod: object = int(p) if i % 17 == 0 else p
        out.append((prod, round(p + shift + noise, 3), ts))
        ts += r.choice((0.5, 3.0, 61.0, 150.0)) - (2.0 if i % 29 == 0 else 0.0)
    return out


def _classes(seed: int, n: int) -> list[tuple[object, object, float]]:
    r, ts, out = random.Random(seed), 1_767_225_600.0, []
    for i in range(n):
        c = r.choice("abcde")
        flip = 0.6 if n // 3 <= i < n // 2 else 0.02
        out.append((c, r.choice("abcde") if r.random() < flip else c, ts))
        ts += r.choice((1.0, 20.0, 60.0, 200.0))
    return out


def _vectors(seed: int, n: int) -> list[tuple[object, object, float]]:
    r, ts, out = random.Random(seed), 1_767_225_600.0, []
    for i in range(n):
        a = r.random()
        far = 0.4 if n // 3 <= i < n // 2 else 0.03
        b = min(max(a + r.uniform(-far, far), 0.0), 1.0)
        out.append(([a, 1 - a], [b, 1 - b] if i % 50 else [b, 1 - b, 0.0], ts))
        ts += r.choice((1.0, 30.0, 90.0))
    return out


CASES = {
    "numbers, learned scale": (dict(), _numbers(1, 3000, 15.0)),
    "numbers, given scale, expected rate": (dict(scale=15.0, expected_rate=0.02), _numbers(2, 3000, 15.0)),
    "numbers, spread under 0.1% of the mean": (dict(warmup=50, min_pairs=5), _numbers(3, 2000, 0.02, bias=2.0)),
    "classes": (dict(), _classes(4, 3000)),
    "classes, quick learning": (dict(warmup=20, block=50, effect=0.1, large_effect=0.4), _classes(5, 3000)),
    "probability vectors": (dict(), _vectors(6, 3000)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_native_pair_recursion_is_the_pythons_bit_for_bit(case: str) -> None:
    settings, pairs = CASES[case]
    native, reference = CanaryDivergence(max_pending=1, **settings), Reference(**settings)
    onsets, states = 0, set()
    for prod, canary, ts in pairs:
        onset = native.observe_pair(prod, canary, ts)
        assert (onset is not None) == reference.observe_pair(prod, canary, ts)
        state = native.__getstate__()
        assert [_typed(state[name]) for name in STATE] == [_typed(getattr(reference, name)) for name in STATE]
        onsets += onset is not None
        states.add(native.decision().state)
    assert onsets >= 1 and states == {"insufficient_data", "ok", "anomalous"}  # the stream went through every state
    assert native.expected == (reference._p0 if reference._learned else None)
    assert native.healthy_rate() == reference.healthy_rate() and native.pairs == reference._pairs


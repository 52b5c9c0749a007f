"""The detector protocol, in the spirit of river, plus the vectorized form the hot path needs.

Two shapes of the same idea:

- :class:`Detector` watches **one** series: ``learn_one(x)`` then ``score_one(x)`` in
  [0, 1] (higher = more anomalous). Used for replay, tests and anything low-volume.
- :class:`SeriesBank` watches **many** series at once: its state is numpy arrays indexed
  by a series slot, and ``score_learn(slots, x)`` scores and learns one value for each
  of many series in one vectorized call. The detection plane calls it once per closed
  window per metric, so its cost per series is a few numpy element operations.

Both store every constructor argument under its own name and keep state in
``_underscored`` attributes, so ``clone()``, ``repr`` and pickling (snapshots for restart
and rebalance) work for every detector without extra code.

Detectors import no I/O library: they are pure functions of the values they are given.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np

from modelmedic.detectors.special import erf


def take_rows(owner: object, rows: np.ndarray, capacity: int) -> dict[str, object]:
    """The rows ``rows`` of every per-slot array of ``owner`` (and its sub-banks), by attribute name."""
    out: dict[str, object] = {}
    for name, value in vars(owner).items():
        if isinstance(value, np.ndarray) and value.ndim and len(value) == capacity:
            out[name] = value[rows]
        elif isinstance(value, SeriesBank):
            out[name] = value.rows(rows)
    return out


class SlotState:
    """Per-slot state kept in numpy arrays, movable between processes slot by slot.

    A Kafka partition moves from one replica to another with the state of its series:
    :meth:`rows` takes it out of this process's arrays for the partition's snapshot and
    :meth:`set_rows` puts it into the new owner's arrays, at whatever slots it hands out.
    """

    def ensure(self, n_slots: int) -> None:
        raise NotImplementedError

    def _slot_capacity(self) -> int:
        raise NotImplementedError

    def rows(self, slots: np.ndarray) -> dict[str, object]:
        """The state of series ``slots``, by attribute name."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size:
            self.ensure(int(slots.max()) + 1)
        return take_rows(self, slots, self._slot_capacity())

    def inherit(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Start series ``dst`` from what series ``src`` learned (a new version from its predecessor)."""
        dst = np.asarray(dst, dtype=np.int64)
        if dst.size:
            self.set_rows(dst, self.rows(src))

    def set_rows(self, slots: np.ndarray, values: dict[str, object]) -> None:
        """Give series ``slots`` the state :meth:`rows` returned (for as many series, in the same order)."""
        slots = np.asarray(slots, dtype=np.int64)
        if not slots.size:
            return
        self.ensure(int(slots.max()) + 1)
        for name, value in values.items():
            target = getattr(self, name)
            if isinstance(value, dict):
                target.set_rows(slots, value)
            else:
                target[slots] = value


class _Params:
    """Generic ``clone`` and ``repr`` from the constructor signature."""

    def _params(self) -> dict[str, object]:
        sig = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in sig.parameters if name != "self"}

    def clone(self):
        """A fresh, untrained copy with the same parameters."""
        return type(self)(**copy.deepcopy(self._params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class Detector(_Params):
    """One series. Subclasses implement ``learn_one`` and ``score_one``."""

    def learn_one(self, x: float) -> None:
        raise NotImplementedError

    def score_one(self, x: float) -> float:
        raise NotImplementedError

    def score_learn_one(self, x: float) -> float:
        """Score ``x`` against what was seen before it, then learn it: the streaming order."""
        score = self.score_one(x)
        self.learn_one(x)
        return score

    def learn_many(self, xs: np.ndarray) -> None:
        for x in np.asarray(xs, dtype=float):
            self.learn_one(float(x))

    def score_many(self, xs: np.ndarray) -> np.ndarray:
        """Scores of each value against the current state (no learning between them)."""
        return np.array([self.score_one(float(x)) for x in np.asarray(xs, dtype=float)])


class SeriesBank(_Params, SlotState):
    """Many series at once, state in arrays indexed by slot (0, 1, 2, ...).

    Subclasses keep per-slot state in numpy arrays created by ``_grow`` and implement
    ``_score_learn`` for unique slots. Slots are handed out by the caller (the detection
    plane maps each (model, version, role, metric) series to one) and may be recycled
    after :meth:`forget`.
    """

    def __init__(self) -> None:
        self._capacity = 0

    def _grow(self, capacity: int) -> None:
        """Extend every state array to ``capacity`` slots (new slots untrained)."""
        raise NotImplementedError

    def _reset(self, slots: np.ndarray) -> None:
        """Return ``slots`` to the untrained state."""
        raise NotImplementedError

    def _score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _slot_capacity(self) -> int:
        return self._capacity

    def ensure(self, n_slots: int) -> None:
        """Make room for slots ``0 .. n_slots-1``, growing geometrically."""
        if n_slots > self._capacity:
            new = max(n_slots, 2 * self._capacity, 64)
            self._grow(new)
            self._capacity = new

    def score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score each ``x[i]`` against its series ``slots[i]``, then learn it.

        Returns ``(scores, baselines)``: scores in [0, 1] and the value each series
        expected, so the caller can tell a spike from a drop. Slots must be unique in
        one call (one value per series per window). Non-finite ``x`` scores 0 and is
        not learned (a window with no requests has no latency). ``t`` is the optional
        event time of each value in epoch seconds (the window's start); detectors with
        a time-of-day/day-of-week baseline need it, the others ignore it.
        """
        slots = np.asarray(slots, dtype=np.int64)
        x = np.asarray(x, dtype=np.float64)
        t = None if t is None else np.broadcast_to(np.asarray(t, dtype=np.float64), x.shape)
        if slots.size and int(slots.max()) >= self._capacity:
            self.ensure(int(slots.max()) + 1)
        finite = np.isfinite(x)
        if finite.all():
            return self._score_learn(slots, x, t)
        scores = np.zeros(x.shape)
        baselines = np.full(x.shape, np.nan)
        if finite.any():
            tf = None if t is None else t[finite]
            scores[finite], baselines[finite] = self._score_learn(slots[finite], x[finite], tf)
        return scores, baselines

    def forget(self, slots: np.ndarray) -> None:
        """Reset series (e.g. a retired version) so their slots can be reused."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size:
            self._reset(slots[slots < self._capacity])

    def state_bytes(self) -> int:
        """Bytes of state per series: every per-slot array, component banks included."""
        values = self.__dict__.values()
        own = sum(v.nbytes for v in values if isinstance(v, np.ndarray) and v.ndim and len(v) == self._capacity)
        parts = sum(v.state_bytes() for v in values if isinstance(v, SeriesBank))
        return own // max(self._capacity, 1) + parts


def protect(score: np.ndarray, run: np.ndarray, patience: int) -> tuple[np.ndarray, np.ndarray]:
    """``(run, keep)``: each series' flagged points in a row, and whether this point may be learned.

    A flagged point (score 0.5 or more) is not learned, so the baseline never absorbs the
    incident (river's ``protect_anomaly_detector``), until ``patience`` of them come in a
    row: then the series is learned again, as a new normal. ``run`` is the count before
    this point.

    >>> run, keep = protect(np.array([0.9, 0.9, 0.1]), np.array([0, 29, 5]), patience=30)
    >>> run.tolist(), keep.tolist()
    ([1, 30, 0], [False, True, True])
    """
    flagged = score >= 0.5
    run = np.where(flagged, run + 1, 0)
    return run, ~flagged | (run >= patience)


def signed_z(residual: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``residual / spread``; 0 where the spread is unknown (inf), +-inf where it is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = residual / spread
    return np.where(np.isnan(z), 0.0, z)


class ZBank(SeriesBank):
    """A bank that measures surprise as a z-score and learns only where told to.

    Splitting scoring (``_z``) from learning (``_learn``) lets an ensemble decide once,
    from all its components, which points are anomalous and keep them out of every
    baseline. Used alone, a ``ZBank`` maps ``z`` to ``erf(z / sqrt(2))`` (the two-sided
    Gaussian confidence) and learns the points scoring below ``threshold``.
    """

    threshold: float = 0.999

    def _z(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(z, baseline)`` of each value against its series, before learning it (``z`` signed)."""
        raise NotImplementedError

    def _spread(self, slots: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        """Expected size of a residual (a standard deviation), ``inf`` while warming up."""
        raise NotImplementedError

    def _learn(self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None, keep: np.ndarray) -> None:
        """Learn ``x[keep]``; every series still counts the point (warm-up, history)."""
        raise NotImplementedError

    def _score_learn(
        self, slots: np.ndarray, x: np.ndarray, t: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        z, baseline = self._z(slots, x, t)
        scores = erf(np.abs(z) / np.sqrt(2.0))
        self._learn(slots, x, t, scores < self.threshold)
        return scores, baseline


class OneSeries(Detector):
    """Adapter: any :class:`SeriesBank` used as a single-series :class:`Detector`.

    This is how replay runs the same code as the streaming path.

    >>> from modelmedic.detectors.ewma import EwmaBank
    >>> d = OneSeries(EwmaBank(alpha=0.1, grace=5))
    >>> scores = [d.score_learn_one(v) for v in [10, 11, 9, 10, 10, 11, 9, 10]]
    >>> d.score_one(30.0) > 0.99
    True
    """

    def __init__(self, bank: SeriesBank):
        self.bank = bank
        self._slot = np.zeros(1, dtype=np.int64)

    def score_one(self, x: float, t: float | None = None) -> float:
        probe = copy.deepcopy(self.bank)
        return float(probe.score_learn(self._slot, np.array([x]), _t(t))[0][0])

    def learn_one(self, x: float, t: float | None = None) -> None:
        self.bank.score_learn(self._slot, np.array([x]), _t(t))

    def score_learn_one(self, x: float, t: float | None = None) -> float:
        return float(self.bank.score_learn(self._slot, np.array([x]), _t(t))[0][0])


def _t(t: float | None) -> np.ndarray | None:
    return None if t is None else np.array([t], dtype=np.float64)


def replay_series(bank: SeriesBank, x, t=None, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Score then learn every value of one series, in order: ``(scores, baselines)``.

    The same results as one ``bank.score_learn([slot], [x[i]], [t[i]])`` per value (the
    streaming order). Banks with a ``score_series`` method (a scalar loop over the whole
    series, e.g. :class:`~modelmedic.detectors.calibrated.CalibratedBank`) run it; the
    others fall back to one call per value.
    """
    fast = getattr(bank, "score_series", None)
    if fast is not None:
        return fast(x, t, slot=slot)
    x = np.asarray(x, dtype=np.float64)
    t = None if t is None else np.broadcast_to(np.asarray(t, dtype=np.float64), x.shape)
    slots = np.array([slot], dtype=np.int64)
    scores, baselines = np.zeros(x.size), np.full(x.size, np.nan)
    for i in range(x.size):
        s, b = bank.score_learn(slots, x[i : i + 1], None if t is None else t[i : i + 1])
        scores[i], baselines[i] = s[0], b[0]
    return scores, baselines


def replay_lockstep(bank: SeriesBank, xs: list, ts: list | None = None) -> list[np.ndarray]:
    """Scores of many series replayed together, series ``k`` in slot ``k``.

    One ``score_learn`` call per time step across all the series still running (the
    ``i``-th value of each), so numpy's per-call overhead is shared by all of them; the
    scores are those of each series replayed alone (slots never interact).
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ts = None if ts is None else [np.asarray(t, dtype=np.float64) for t in ts]
    lengths = np.array([x.size for x in xs])
    out = [np.zeros(x.size) for x in xs]
    bank.ensure(len(xs))
    order = np.argsort(-lengths, kind="stable")
    for i in range(int(lengths.max(initial=0))):
        slots = order[: int((lengths > i).sum())]
        xi = np.array([xs[k][i] for k in slots])
        ti = None if ts is None else np.array([ts[k][i] for k in slots])
        s, _ = bank.score_learn(slots, xi, ti)
        for k, v in zip(slots.tolist(), s.tolist()):
            out[k][i] = v
    return out

"""From closed windows to anomaly records: sequential tests plus trigger/recover hysteresis.

Three families are judged on every closed window, each vectorized over all series, each
by the bank the settings name (``detection.latency_bank``, ``errors_bank``,
``throughput_bank``; built in :mod:`modelmedic.detection.banks`, as ``modelmedic replay``
builds them). By default a CUSUM that accumulates evidence across windows
(:mod:`modelmedic.detectors.sequential`):

| family     | series          | evidence per window                            | fires as                          |
|------------|-----------------|------------------------------------------------|-----------------------------------|
| latency    | model+version   | log median latency, weighed by its requests    | ``latency`` (slower only)         |
| errors     | model+version   | errors and successes vs the learned error rate | ``errors``                        |
| throughput | model+role      | request count vs a seasonal rate               | ``throughput_drop`` / ``_surge``  |

So a model at 0.05 req/s is judged after a handful of requests and one at 5,000 req/s
within a window or two, with the same settings. Each CUSUM is designed for the minimum
effect that matters (``latency_ratio``, ``error_ratio``, ``throughput_drop_ratio`` and
``throughput_surge_ratio``): smaller changes (a +3% deploy) drift back to 0 and never
fire. It fires at ``h = ln(windows per day / (1 - threshold))``, so ``1 - threshold`` is
a bound on the false alarms per series, statistic and day; a record's ``score`` is
``1 - windows per day * exp(-cusum)`` (at least 0): ``threshold`` exactly at ``h``.
Throughput is judged per model and role, not per version, so traffic moving to a new
version during a rollout is no anomaly.

A new version starts from its predecessor's baselines or, without one, from its certified
figures when the registry has them (:meth:`WindowJudge._certify_new`), so it is judged from
its first window. A series without the history to be judged (its first requests, a sparse
series' first day) is *insufficient data*: counted per family (:meth:`WindowJudge.insufficient_data`,
``modelmedic_series_insufficient_data{family}``), never silently passed as healthy.

A window adds at most ``h / trigger_windows`` to a CUSUM, so it takes ``trigger_windows``
windows of evidence at least: a single wild window of a busy model never pages. An
episode starts when a CUSUM reaches ``h`` and ends after ``recover_windows`` windows
below ``0.75 h`` (``RESET``; of a version, windows with requests: an empty one says nothing
of its latency), or when a version stopped serving (:meth:`WindowJudge._stopped`; a
throughput episode also needs its CUSUM to have left 0 ``throughput_sustain_s`` before, a shallow drop
``throughput_shallow_sustain_s``: a busy model's CUSUM reaches ``h`` within seconds, and a
minute's dip of its traffic is no incident); CUSUMs are capped at
``1.25 h``, so ending an episode takes evidence worth ``h / 2`` against it, a flapping
series stays in one episode instead of opening a new incident per flap, and a sparse
series hovering about ``h`` neither ends nor restarts its episode with each request.
Anomaly ids hash the series, kind and the CUSUM's onset (the window it last left 0), so
re-judging the same windows after a restart yields the same ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from modelmedic import metrics
from modelmedic.config import DetectionSettings
from modelmedic.detection.banks import FamilyBank, family_banks
from modelmedic.detectors.base import SlotState
from modelmedic.detectors.sequential import RESET, Evidence, threshold_for
from modelmedic.errors import ModelmedicError
from modelmedic.events import Anomaly, stable_id
from modelmedic.detection.windows import ClosedWindow


class Episodes(SlotState):
    """Trigger/recover state for many series of one family (arrays by slot)."""

    def __init__(self, trigger: int, recover: int) -> None:
        self.trigger, self.recover = trigger, recover
        self.bad = np.zeros(0, dtype=np.int64)
        self.good = np.zeros(0, dtype=np.int64)
        self.firing = np.zeros(0, dtype=bool)
        self.onset = np.zeros(0, dtype=np.int64)
        self.kind = np.zeros(0, dtype=np.int8)
        self.cold = np.zeros(0, dtype=bool)
        """Series whose last window had too little history to be judged (insufficient data)."""
        self.seen = np.zeros(0, dtype=np.int64)
        """Each series' last window with data (0: none yet)."""
        self.seen_before = np.zeros(0, dtype=np.int64)
        """Each series' last window with data before its CUSUM last left 0 (0: none): its problem,
        if one started, started after it (:meth:`saw`)."""

    def ensure(self, n: int) -> None:
        if n > self.bad.size:
            extra = max(n, 2 * self.bad.size, 64) - self.bad.size
            self.bad = np.concatenate([self.bad, np.zeros(extra, dtype=np.int64)])
            self.good = np.concatenate([self.good, np.zeros(extra, dtype=np.int64)])
            self.firing = np.concatenate([self.firing, np.zeros(extra, dtype=bool)])
            self.onset = np.concatenate([self.onset, np.zeros(extra, dtype=np.int64)])
            self.kind = np.concatenate([self.kind, np.zeros(extra, dtype=np.int8)])
            self.cold = np.concatenate([self.cold, np.zeros(extra, dtype=bool)])
            self.seen = np.concatenate([self.seen, np.zeros(extra, dtype=np.int64)])
            self.seen_before = np.concatenate([self.seen_before, np.zeros(extra, dtype=np.int64)])

    def _slot_capacity(self) -> int:
        return self.bad.size

    def firing_of(self, slots: np.ndarray) -> np.ndarray:
        """Which of ``slots`` are in an episode (new slots are not)."""
        if slots.size:
            self.ensure(int(np.maximum.reduce(slots)) + 1)
        return self.firing[slots]

    def forget(self, slots: np.ndarray) -> None:
        slots = slots[slots < self.bad.size]
        self.bad[slots] = self.good[slots] = self.seen[slots] = self.seen_before[slots] = 0
        self.firing[slots] = self.cold[slots] = False

    def saw(self, slots: np.ndarray, window: int | np.ndarray, onset: np.ndarray, data: np.ndarray | None) -> None:
        """Advance :attr:`seen` and :attr:`seen_before` by one window (``onset``: each series' window
        its CUSUM last left 0, the window itself while at 0; ``data``: which had data, None: all).

        A sparse series' onset is its first request after the change, which can come minutes after
        the change (a storm's member serving 0.1 req/s in batches: load/detection_harness.py, the
        rough 200-model day, first request 88 s after the storm began, the last 14 s before it): the
        problem began between its last window with data before the onset and the onset. Called after
        :meth:`step` (which sized the arrays for ``slots``)."""
        seen = self.seen[slots]
        self.seen_before[slots] = np.where(onset == window, seen, self.seen_before[slots])
        self.seen[slots] = window if data is None else np.where(data, window, seen)

    def step(
        self, slots: np.ndarray, anomalous: np.ndarray, judged: np.ndarray, kind: np.ndarray,
        window: int | np.ndarray, idle: np.ndarray | None = None, onset: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance one window; returns the slots whose episode (started, ended) now.

        ``window`` is the window's index, or one per slot when the slots come from windows
        of several partitions (each partition has its own event time).

        ``judged`` is False where the window had no data to judge (too few requests for a
        latency series): such a window never starts an episode. ``idle`` (default: not
        judged) marks windows with no requests at all: they count towards ending one. A
        version that stops serving (rolled back, scaled away) has no problem left to page
        about, but a quiet model still failing its few requests is not recovered.
        """
        if slots.size:
            self.ensure(int(np.maximum.reduce(slots)) + 1)
        firing = self.firing[slots]
        old_bad = self.bad[slots]
        if not (np.count_nonzero(firing | anomalous) or np.count_nonzero(old_bad >= self.trigger)):
            # The usual window: nothing firing, nothing anomalous, so nothing starts or ends;
            # the same counts as below, in fewer array operations (this runs per window and family).
            self.bad[slots] = old_bad * ~judged
            self.good[slots] += judged
            return slots[:0], slots[:0]
        idle = ~judged if idle is None else idle
        bad = np.where(judged, np.where(anomalous, old_bad + 1, 0), old_bad)
        good = np.where(judged, np.where(anomalous, 0, self.good[slots] + 1), self.good[slots] + (firing & idle))
        start = ~firing & (bad >= self.trigger)
        end = firing & (good >= self.recover)
        # An episode ended by silence leaves its bad-window count behind: firing again must
        # take trigger anomalous windows, not one (nor none: a silent series would flap forever).
        bad = np.where(end, 0, bad)
        self.bad[slots], self.good[slots] = bad, good
        self.firing[slots] = (firing | start) & ~end
        started, ended = slots[start], slots[end]
        if onset is not None:
            self.onset[started] = onset[start]
        else:
            self.onset[started] = (window[start] if np.ndim(window) else window) - self.trigger + 1
        self.kind[started] = kind[start]
        return started, ended


@dataclass
class _Family:
    name: str
    bank: FamilyBank
    episodes: Episodes
    level: str
    """``version`` (judged per model, version and role) or ``group`` (per model and role)."""
    minimum: MinimumDuration | None = None
    """How long a CUSUM must have been out of 0 before it starts an episode (throughput's); None: no minimum."""


@dataclass(frozen=True)
class MinimumDuration:
    """Prometheus' ``for:`` for a sequential bank: a CUSUM at ``h`` starts an episode only once it left 0
    ``sustain_ms`` before (``throughput_sustain_s``), a shallow drop ``shallow_ms`` before
    (``throughput_shallow_sustain_s``, at least ``sustain_ms``). A busy model's CUSUM reaches ``h``
    within seconds, and its traffic's dips of a minute (or a few, by a fifth) are no incident."""

    sustain_ms: int
    shallow_ms: int
    shallow_ratio: float
    """A drop is shallow while its rate since the onset is above this share of its reference: the
    geometric mean of the halving chart's design and the small chart's (about 0.59x), so the drops only
    the small chart finds."""

    @classmethod
    def for_throughput(cls, settings: DetectionSettings, bank: FamilyBank) -> MinimumDuration | None:
        """The throughput family's, from the settings; None for a per-value bank, whose onset is the
        window it reached ``h``, not a CUSUM's (``trigger_windows`` is its minimum), or with both at 0."""
        shallow_s = max(settings.throughput_shallow_sustain_s, settings.throughput_sustain_s)
        if settings.throughput_bank != "sequential" or not shallow_s:
            return None
        return cls(round(settings.throughput_sustain_s * 1000), round(shallow_s * 1000),
                   float(np.sqrt(bank.drop * bank.small_drop)))

    def unmet(self, ev: Evidence, end_ms: np.ndarray | int) -> np.ndarray:
        """Rows whose CUSUM left 0 less than their minimum before ``end_ms`` (their window's end)."""
        shallow = (ev.kind == 0) & (ev.observed > self.shallow_ratio * ev.baseline)
        return end_ms - ev.since_ms < np.where(shallow, self.shallow_ms, self.sustain_ms)


@dataclass
class _Rows:
    """The closed windows of one judge call side by side: one row per series, version-level
    rows first (``slots``...), model-level ones apart (``groups``...); ``owner`` says which
    closed window a row came from (its window index, times and names)."""

    cws: list[ClosedWindow]
    slots: np.ndarray
    count: np.ndarray
    errors: np.ndarray
    p50: np.ndarray
    p95: np.ndarray
    p99: np.ndarray
    latency_start: np.ndarray
    """Where each row's ascending latencies start in ``latency``; -1: the window did not keep them."""
    window: np.ndarray
    owner: np.ndarray
    groups: np.ndarray
    group_count: np.ndarray
    group_top_slot: np.ndarray
    group_window: np.ndarray
    group_owner: np.ndarray
    latency: np.ndarray
    """Every request's latency (ms) of these windows (:attr:`ClosedWindow.latency_ms`, side by side)."""

    def part(self, rows: slice, groups: slice) -> _Rows:
        """These rows of the version-level and of the model-level series (one round's, or a step of it:
        :meth:`WindowJudge.judge_in_turns`)."""
        return _Rows(self.cws, self.slots[rows], self.count[rows], self.errors[rows], self.p50[rows], self.p95[rows],
                     self.p99[rows], self.latency_start[rows], self.window[rows], self.owner[rows], self.groups[groups],
                     self.group_count[groups], self.group_top_slot[groups], self.group_window[groups],
                     self.group_owner[groups], self.latency)

    def requests_over(self, bound_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(requests slower than each row's bound, requests it was judged on): a few numpy calls
        over the windows' requests, O(1) per request. A window that did not keep its requests'
        latencies (one built by hand) has nothing to judge: 0 of 0."""
        row, at, n = self._requests
        if not at.size:
            return np.zeros(n.size), np.zeros(n.size)
        over = np.bincount(row, weights=self.latency[at] > bound_ms[row], minlength=n.size)
        return over, n.astype(np.float64)

    def log_ss(self) -> np.ndarray:
        """Each row's sum of squared deviations of its requests' log latencies from their mean (the
        latency bank's creep chart learns the per-request variance from it); NaN where the window did
        not keep its requests' latencies or had none."""
        row, at, n = self._requests
        ss = np.full(n.size, np.nan)
        if at.size:
            x = np.log(np.maximum(self.latency[at], 1e-3))
            sx, sxx = np.bincount(row, weights=x, minlength=n.size), np.bincount(row, weights=x * x, minlength=n.size)
            has = n > 0
            ss[has] = np.maximum(sxx[has] - sx[has] ** 2 / n[has], 0.0)
        return ss

    @cached_property
    def _requests(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of every kept request, its index in ``latency``, requests kept per row): computed once a round,
        for the tail's count and the creep chart's ``log_ss`` alike (the rows do not change after they are built)."""
        n = np.where(self.latency_start >= 0, self.count, 0).astype(np.int64)
        row = np.repeat(np.arange(n.size), n)
        at = np.arange(row.size) - (np.cumsum(n) - n)[row] + self.latency_start[row]
        return row, at, n


def _latency_starts(cw: ClosedWindow, offset: int) -> np.ndarray:
    """Each row's start in the side-by-side latencies, or -1 for all rows of a window without them."""
    if cw.latency_start.size != cw.slots.size:
        return np.full(cw.slots.size, -1, dtype=np.int64)
    return cw.latency_start + offset


def _rows(cws: list[ClosedWindow]) -> _Rows:
    if len(cws) == 1:  # one partition closed a window (always so when it owns one): nothing to put side by side
        cw = cws[0]
        version_rows, group_rows = np.zeros(cw.slots.size, dtype=np.int64), np.zeros(cw.groups.size, dtype=np.int64)
        return _Rows(cws, cw.slots, cw.count, cw.errors, cw.p50, cw.p95, cw.p99, _latency_starts(cw, 0),
                     version_rows + cw.window, version_rows, cw.groups, cw.group_count, cw.group_top_slot,
                     group_rows + cw.window, group_rows, cw.latency_ms)
    cat, index = np.concatenate, np.arange(len(cws))
    sizes, group_sizes = [cw.slots.size for cw in cws], [cw.groups.size for cw in cws]
    windows = [cw.window for cw in cws]
    # Windows closed together share one latency array: each distinct array once.
    arrays: dict[int, tuple[int, np.ndarray]] = {}
    for cw in cws:
        if id(cw.latency_ms) not in arrays:
            arrays[id(cw.latency_ms)] = (sum(a.size for _, a in arrays.values()), cw.latency_ms)
    return _Rows(
        cws, cat([cw.slots for cw in cws]), cat([cw.count for cw in cws]), cat([cw.errors for cw in cws]),
        cat([cw.p50 for cw in cws]), cat([cw.p95 for cw in cws]), cat([cw.p99 for cw in cws]),
        cat([_latency_starts(cw, arrays[id(cw.latency_ms)][0]) for cw in cws]), np.repeat(windows, sizes),
        np.repeat(index, sizes), cat([cw.groups for cw in cws]), cat([cw.group_count for cw in cws]),
        cat([cw.group_top_slot for cw in cws]), np.repeat(windows, group_sizes), np.repeat(index, group_sizes),
        cat([a for _, a in arrays.values()]),
    )


class Certified(Protocol):
    """What the judge reads of a version's certification (``modelmedic.registry.CertifiedBaseline``)."""

    latency_p50_ms: float
    latency_p95_ms: float
    error_rate: float


CERTIFIED_WEIGHT = 1000.0
"""Requests a version's certified figures count for: a certification run serves thousands, so
the version's own traffic takes over its reference after about this many requests."""

GONE = 3.0
"""A series silent for this many times what its rate explains stopped serving whatever its model's other versions do
(:meth:`WindowJudge._stopped`): 30 expected requests, a silence Poisson traffic leaves by chance once in 10^13."""
THROUGHPUT_KINDS = ("throughput_drop", "throughput_surge")
FAMILIES = ("latency", "errors", "throughput", "latency_tail")
_INSUFFICIENT = {name: metrics.SERIES_INSUFFICIENT.labels(name) for name in FAMILIES}


class WindowJudge:
    """Judges closed windows and says which episodes start or end.

    One judge serves every partition of a detection plane: their windows share a
    :class:`~modelmedic.windows.SlotPool`, so the windows closed on many partitions at
    once are judged in one vectorized pass (:meth:`judge_many`), and a partition's state
    moves in and out with :meth:`rows` and :meth:`set_rows`.
    """

    def __init__(self, settings: DetectionSettings, certified: Callable[[str, str], Certified] | None = None) -> None:
        self.settings = settings
        self.certified = certified
        """A version's certified figures (the registry's ``certified_baseline``; None: none known): a new
        version without a predecessor starts from them, not from a warm-up (:meth:`_certify_new`)."""
        self._known = np.zeros(0, dtype=bool)
        """Version slots the judge has seen (judged, inherited or restored): the others are new."""
        rec = settings.recover_windows
        banks = family_banks(settings)
        # A window adds at most h / trigger_windows (judge_many): so one noisy window is never an
        # incident, and an episode starts as soon as a CUSUM reaches h.
        trig = 1
        self.latency = _Family("latency", banks["latency"], Episodes(trig, rec), "version")
        self.errors = _Family("errors", banks["errors"], Episodes(trig, rec), "version")
        self.throughput = _Family("throughput", banks["throughput"], Episodes(trig, rec), "group",
                                  MinimumDuration.for_throughput(settings, banks["throughput"]))
        self.tail = _Family("latency_tail", banks["latency_tail"], Episodes(trig, rec), "version") \
            if "latency_tail" in banks else None
        """The latency tail (:class:`~modelmedic.detectors.sequential.TailCusumBank`); None without a sequential
        latency bank, whose reference sets its bound."""

    def _families(self) -> tuple[_Family, ...]:
        return (self.latency, self.errors, self.throughput) + ((self.tail,) if self.tail else ())

    def _index(self, slots: list[int], groups: list[int]) -> list[tuple[_Family, np.ndarray]]:
        """Each family with the slots it keeps state at: version slots or group slots."""
        s, g = np.array(slots, dtype=np.int64), np.array(groups, dtype=np.int64)
        return [(fam, s if fam.level == "version" else g) for fam in self._families()]

    def forget(self, slots: list[int], groups: list[int]) -> None:
        """Reset the state of expired series so their slots can be reused."""
        for fam, idx in self._index(slots, groups):
            fam.bank.forget(idx)
            fam.episodes.forget(idx)
        self._know(np.array(slots, dtype=np.int64), False)
        self._count_insufficient()

    def rows(self, slots: list[int], groups: list[int]) -> dict[str, dict]:
        """The state of these series and groups (a partition's, for its snapshot): arrays only."""
        return {fam.name: {"bank": fam.bank.rows(idx), "episodes": fam.episodes.rows(idx)}
                for fam, idx in self._index(slots, groups)}

    def set_rows(self, slots: list[int], groups: list[int], rows: dict[str, dict]) -> None:
        """Put the state :meth:`rows` returned at (possibly other) slots and groups, in the same order."""
        for fam, idx in self._index(slots, groups):
            if fam.name not in rows:  # a snapshot from before the family existed: these series start afresh
                fam.bank.forget(idx)
                fam.episodes.forget(idx)
                continue
            fam.bank.set_rows(idx, rows[fam.name]["bank"])
            fam.episodes.set_rows(idx, rows[fam.name]["episodes"])
        self._know(np.array(slots, dtype=np.int64), True)
        self._count_insufficient()

    def insufficient_data(self) -> dict[str, int]:
        """Series per family that could not be judged at their last window (too little history yet)."""
        return {fam.name: int(np.count_nonzero(fam.episodes.cold)) for fam in self._families()}

    def _count_insufficient(self) -> None:
        for name, n in self.insufficient_data().items():
            _INSUFFICIENT[name].set(n)

    def judge(self, cw: ClosedWindow) -> list[Anomaly]:
        """All anomaly records (episode starts and ends) for one closed window."""
        return self.judge_many([cw])

    def judge_many(self, cws: list[ClosedWindow]) -> list[Anomaly]:
        """:meth:`judge` for closed windows of different partitions (disjoint slots), in one pass."""
        out: list[Anomaly] = []
        for _ in self._judging([cws], None, out):
            pass
        return out

    async def judge_in_turns(self, rounds: list[list[ClosedWindow]], rows: int) -> list[Anomaly]:
        """:meth:`judge_many` of each round in turn (round r: the r-th window each partition closed, so
        each partition's windows stay in order), in steps of at most ``rows`` series, yielding to the
        event loop between steps: a window of a hundred thousand series costs a quarter of a second to
        judge, and the loop must keep the consumer's heartbeats flowing. Series are independent (each
        its own state row), so the records are those of :meth:`judge_many` round after round, in the
        same order. The rounds' rows are put side by side once, then each round is judged on its slice
        of them: at one call per round of ~40 series, putting them side by side was ~8% of the judge's
        time (cProfile of load/bench_plane.py)."""
        out: list[Anomaly] = []
        for _ in self._judging(rounds, rows, out):
            await asyncio.sleep(0)
        return out

    def _judging(self, rounds: list[list[ClosedWindow]], rows: int | None, out: list[Anomaly]) -> Iterator[None]:
        """Judge ``rounds`` one after the other, at most ``rows`` version-level and ``rows`` model-level
        series at a time (None: all at once), yielding between steps; each round's records go to ``out``
        as one step orders them: family by family, every episode start, then every end, each in row order.
        The windows of a plane's rounds were closed together (:meth:`~modelmedic.detection.plane.DetectionPlane._judge_rounds`):
        they have the same series, so a series new to the judge is new in the first round."""
        cws = [cw for windows in rounds for cw in windows]
        for source in {id(cw.source): cw.source for cw in cws}.values():
            if source.born:
                dst, src = (np.array(side, dtype=np.int64) for side in zip(*source.born))
                for fam in self._families():
                    if fam.level == "version":
                        fam.bank.inherit(dst, src)
                self._know(dst, True)
                source.born.clear()
        r = _rows(cws)
        size_ms = cws[0].end_ms - cws[0].start_ms  # one window size for every partition (settings.windows)
        self._certify_new(r, size_ms)
        families = len(self._families())
        at = at_group = 0
        for windows in rounds:
            n, n_groups = sum(cw.slots.size for cw in windows), sum(cw.groups.size for cw in windows)
            total = max(n, n_groups, 1)
            step = total if rows is None else max(rows, 1)
            started: list[list[Anomaly]] = [[] for _ in range(families)]
            ended: list[list[Anomaly]] = [[] for _ in range(families)]
            for lo in range(0, total, step):
                if lo:
                    yield
                part = r.part(slice(at + min(lo, n), at + min(lo + step, n)),
                              slice(at_group + min(lo, n_groups), at_group + min(lo + step, n_groups)))
                for f, records in enumerate(self._judge_rows(part, size_ms)):
                    for record in records:
                        (started if record.state == "firing" else ended)[f].append(record)
            for f in range(families):
                out += started[f] + ended[f]
            at, at_group = at + n, at_group + n_groups
        self._count_insufficient()

    def _know(self, slots: np.ndarray, known: bool) -> None:
        """Mark version slots as seen by the judge (or, for forgotten ones, as free for a new series)."""
        if slots.size:
            self._grow_known(int(slots.max()) + 1)
        self._known[slots] = known

    def _grow_known(self, n: int) -> None:
        if n > self._known.size:
            grown = np.zeros(max(n, 2 * self._known.size, 64), dtype=bool)
            grown[:self._known.size] = self._known
            self._known = grown

    def _certify_new(self, r: _Rows, size_ms: int) -> None:
        """Series new to the judge (no predecessor to inherit from) start from their version's
        certified latency and error rate, when the registry has them: judged from their first
        window, not after ``grace_windows`` and ``min_requests`` of warm-up. A version with a
        predecessor keeps the baselines it inherited: learned in production, on the same
        hardware and traffic, they are the closer reference. One gather per call; a registry
        read per new version (rare). Per-value banks (``WindowSeries``) take no figures."""
        if not r.slots.size:
            return
        self._grow_known(int(r.slots.max()) + 1)
        new = np.flatnonzero(~self._known[r.slots])
        if not new.size:
            return
        new = new[np.sort(np.unique(r.slots[new], return_index=True)[1])]  # each series once: its first round
        self._know(r.slots[new], True)
        if self.certified is None:
            return
        found = [(i, figures) for i in new.tolist() if (figures := self._figures(r, i)) is not None]
        if not found:
            return
        rows = np.array([i for i, _ in found], dtype=np.int64)
        slots, t_ms = r.slots[rows], (r.window[rows] * size_ms).astype(np.float64)
        if hasattr(self.latency.bank, "certify"):
            self.latency.bank.certify(slots, np.array([f.latency_p50_ms for _, f in found]),
                                      np.array([f.latency_p95_ms for _, f in found]), t_ms, CERTIFIED_WEIGHT)
        if hasattr(self.errors.bank, "certify"):
            self.errors.bank.certify(slots, np.array([f.error_rate for _, f in found]), t_ms, CERTIFIED_WEIGHT)
        if self.tail is not None:  # the certified p50 and p95 set the reference's p99: about 1% over it
            self.tail.bank.certify(slots, np.full(slots.size, 1.0 - self.tail.bank.quantile), t_ms, CERTIFIED_WEIGHT)

    def _figures(self, r: _Rows, i: int) -> Certified | None:
        """The certified figures of row ``i``'s version, or None (not in the registry, not certified)."""
        model, version, _ = r.cws[r.owner[i]].source.keys[int(r.slots[i])]
        try:
            return self.certified(model, version)
        except ModelmedicError:
            return None

    def _judge_rows(self, r: _Rows, size_ms: int) -> tuple[list[Anomaly], ...]:
        """The records of each family (latency, errors, throughput, then latency_tail if on) for these rows."""
        window_s = size_ms / 1000.0
        h = threshold_for(window_s, 1.0 - self.settings.threshold)
        t_ms, group_t_ms = r.window * size_ms, r.group_window * size_ms

        most = h / self.settings.trigger_windows
        if self.tail is not None:  # the tail's bound comes from the latency reference before it learns this window
            reference_ms = self.latency.bank.quantile_ms(r.slots, self.tail.bank.quantile)
            bound_ms = self.tail.bank.bound_ms(r.slots, reference_ms)
            over, judged = r.requests_over(bound_ms)
        latency = self.latency.bank.score_learn(r.slots, r.count, r.p50, r.p95, t_ms, window_s, h, most, r.log_ss())
        stopped = self._stopped(r)
        by_latency = self._emit(self.latency, r, latency, r.p50, h, size_ms, stopped)
        errors = self.errors.bank.score_learn(r.slots, r.errors, r.count, t_ms, window_s, h, most)
        by_errors = self._emit(self.errors, r, errors, r.errors / np.maximum(r.count, 1), h, size_ms, stopped)
        throughput = self.throughput.bank.score_learn(r.groups, r.group_count, group_t_ms, window_s, h, most)
        by_throughput = self._emit(self.throughput, r, throughput, r.group_count / window_s, h, size_ms, None)
        if self.tail is None:
            return by_latency, by_errors, by_throughput
        # Where the median's episode is on, the tail is part of that incident (slower requests all over):
        # the tail neither learns those requests nor keeps evidence from them, so it neither pages after
        # the step ends nor takes the step's share for its usual one.
        masked = self.latency.episodes.firing[r.slots]
        over, judged = over * ~masked, judged * ~masked
        tail = self.tail.bank.score_learn(r.slots, over, judged, reference_ms, t_ms, window_s, h, most, reset=masked)
        by_tail = self._emit(self.tail, r, tail, over / np.maximum(judged, 1), h, size_ms, stopped, bound_ms,
                             masked=masked)
        return by_latency, by_errors, by_throughput, by_tail

    def _stopped(self, r: _Rows) -> np.ndarray:
        """Which version rows stopped serving (rolled back, replaced, scaled away): silent for longer than their rate
        explains (:meth:`LatencyCusumBank.stopped`) while their model's traffic in their role went on to another
        version, or for ``GONE`` times that whatever the rest did. A sparse series is silent that long by chance
        (ten expected requests: about daily at 0.25 req/s), and its firing episode ended there, to fire again with
        its next requests (``tests/unit/test_judge.py``: a page more past the flap hold).
        Only rows in an episode are looked into (their silence would end it): a few a round."""
        bank = self.latency.bank
        stopped = bank.stopped(r.slots)
        if not stopped.any():
            return stopped
        doubt = stopped & ~bank.stopped(r.slots, GONE)
        versions = [fam for fam in self._families() if fam.level == "version"]
        doubt &= np.logical_or.reduce([fam.episodes.firing_of(r.slots) for fam in versions])
        for i in np.flatnonzero(doubt).tolist():
            stopped[i] = r.cws[r.owner[i]].source.moved_on(int(r.slots[i]))
        return stopped

    def _emit(self, fam: _Family, r: _Rows, ev: Evidence, now: np.ndarray, h: float, size_ms: int,
              stopped: np.ndarray | None, bound_ms: np.ndarray | None = None,
              masked: np.ndarray | None = None) -> list[Anomaly]:
        """Step the family's episodes; the records of those that start or end.

        A firing record's ``observed`` is the metric since the onset (``ev.observed``), a
        recovered one's the metric of this window (``now``); ``baseline`` is the usual value.
        ``bound_ms``: the latency tail's bound per row (its summary names it). ``masked``: rows
        whose window neither starts nor ends an episode of this family.
        """
        by_version = fam.level == "version"
        slots, window, owner = (r.slots, r.window, r.owner) if by_version else (r.groups, r.group_window, r.group_owner)
        # A window is inconclusive (neither starts nor helps end an episode) while evidence builds
        # up below h; a version that stopped serving is no longer judged: its silence ends an episode.
        # A firing episode stays anomalous down to RESET * h: its end needs evidence, not quiet windows.
        firing = fam.episodes.firing_of(slots)
        anomalous = ev.cusum >= h * np.where(firing, RESET, 1.0)
        # A version's window without requests says nothing of its latency or errors: the chart stands where it was,
        # which goes on an episode but never helps end one. Counted as recovery, a sparse latency episode whose chart
        # dipped under RESET h for one request ended four empty seconds later (a creep at 0.17 req/s:
        # load/detection_harness.py --models 40 --hours 48 --seed 41 --start 2026-01-07), and a sparse creep could
        # fire again past the flap hold: a second page (docs/detection.md). Recovery takes recover_windows windows
        # with requests, or the version's silence (stopped).
        judged = ev.warm & (anomalous | (~ev.rising & (r.count > 0 if by_version else True)))
        if fam.minimum:  # evidence at h for a change younger than the family's minimum: inconclusive
            young = ~firing & anomalous & fam.minimum.unmet(ev, (window + 1) * size_ms)
            anomalous, judged = anomalous & ~young, judged & ~young
        if stopped is not None:
            judged &= ~stopped
        if masked is not None:
            anomalous, judged = anomalous & ~masked, judged & ~masked
        onset = ev.since_ms // size_ms
        started, ended = fam.episodes.step(slots, anomalous, judged, ev.kind, window, idle=stopped, onset=onset)
        fam.episodes.cold[slots] = ~ev.warm
        fam.episodes.saw(slots, window, onset, r.count > 0 if by_version else None)
        if not started.size and not ended.size:
            return []
        where = {int(s): i for i, s in enumerate(slots)}
        windows_per_day = 86_400_000 / size_ms
        records = []
        for slot, state in [(int(s), "firing") for s in started] + [(int(s), "recovered") for s in ended]:
            i = where[slot]
            cw = r.cws[owner[i]]
            if by_version:
                model, version, role = cw.source.keys[slot]
                series_version = version
            else:
                model, role = cw.source.group_keys[slot]
                top = cw.source.keys.get(int(r.group_top_slot[i]))
                version = top[1] if top else ""
                series_version = "*"
            kind = THROUGHPUT_KINDS[fam.episodes.kind[slot]] if fam.name == "throughput" else fam.name
            onset_ms = int(fam.episodes.onset[slot]) * size_ms
            seen_ms = int(fam.episodes.seen_before[slot]) * size_ms
            score = float(max(0.0, -np.expm1(np.log(windows_per_day) - float(ev.cusum[i]))))
            gone = stopped is not None and bool(stopped[i])
            observed = float(ev.observed[i] if state == "firing" else np.nan if gone else now[i])
            if bound_ms is not None:
                what = _tail_summary(observed, float(ev.baseline[i]), float(bound_ms[i]), float(r.p99[i]),
                                     int(r.count[i]), onset_ms, state, gone)
            else:
                what = _summary(kind, observed, float(ev.baseline[i]), onset_ms, state, gone,
                                float(self.latency.bank.usual_p95(np.array([slot]))[0]) if kind == "latency" else None,
                                creep=kind == "latency" and bool(fam.episodes.kind[slot]))
            records.append(Anomaly(
                id=stable_id(model, series_version, role, kind, onset_ms // size_ms), series=f"{model}/{series_version}/{role}",
                model=model, version=version, role=role, kind=kind, anomaly_class=_CLASS[kind],
                window_start=cw.start_ms, window_end=cw.end_ms, onset=onset_ms,
                seen_before=seen_ms if 0 < seen_ms < onset_ms else 0, observed=_finite(observed),
                baseline=_finite(float(ev.baseline[i])), score=score, state=state,
                summary=f"{model} {version} ({role}): {what}", closed_at_ms=cw.closed_at_ms,
            ))
        return records


_CLASS = {"latency": "latency", "latency_tail": "latency", "errors": "errors", "throughput_drop": "throughput",
          "throughput_surge": "throughput"}
P99_MIN_REQUESTS = 100
"""A window's nearest-rank p99 is quoted in a tail summary only from this many requests (below, it is
about the window's slowest request, not a percentile)."""


def _summary(kind: str, observed: float, baseline: float, onset_ms: int, state: str, gone: bool,
             usual_p95_ms: float | None, creep: bool = False) -> str:
    """What a person reads: the metric now and usually, in its unit, and since when; for a latency episode
    the creep chart opened (``creep``), that it is a slow rise, the median since its onset against the
    reference from before it: a creep's 10% is otherwise easy to read as nothing.

    >>> _summary("latency", 412.0, 98.0, 1_767_275_520_000, "firing", False, 150.0)
    'median latency 412 ms vs usual 98 ms (4.2x; p95 usually 150 ms) since 2026-01-01 13:52 UTC'
    >>> _summary("latency", 26.0, 23.4, 1_767_275_520_000, "firing", False, 27.0, creep=True)
    'median latency 26 ms vs usual 23 ms (1.1x, a slow rise; p95 usually 27 ms) since 2026-01-01 13:52 UTC'
    >>> _summary("throughput_drop", 0.025, 0.083, 1_767_275_520_000, "firing", False, None)
    'request rate 0.025/s vs usual 0.083/s (0.30x) since 2026-01-01 13:52 UTC'
    >>> _summary("errors", 0.0, 0.005, 1_767_275_520_000, "recovered", False, None)
    'error rate back to normal (0.00%, usual 0.50%)'
    """
    name = {"latency": "median latency", "errors": "error rate"}.get(kind, "request rate")
    if state == "recovered":
        return f"no longer serving traffic; {name} episode over" if gone else \
            f"{name} back to normal ({_fmt(observed, kind)}, usual {_fmt(baseline, kind)})"
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(onset_ms / 1000))
    ratio = observed / baseline if baseline > 0 else float("inf")
    extra = f"; p95 usually {usual_p95_ms:.0f} ms" if usual_p95_ms is not None and np.isfinite(usual_p95_ms) else ""
    times = f"{ratio:.0f}x" if kind == "errors" and ratio >= 10 else f"{ratio:.2f}x" if kind.startswith("throughput") \
        else f"{ratio:.1f}x, a slow rise" if creep else f"{ratio:.1f}x"
    return f"{name} {_fmt(observed, kind)} vs usual {_fmt(baseline, kind)} ({times}{extra}) since {since}"


def _tail_summary(share: float, usual_share: float, bound_ms: float, p99_ms: float, requests: int, onset_ms: int,
                  state: str, gone: bool) -> str:
    """What a person reads of a latency tail: how many requests are slower than the usual p99, and the
    p99 now when the window had the requests to say it.

    >>> _tail_summary(0.12, 0.01, 300.0, 912.0, 480, 1_767_275_520_000, "firing", False)
    'p99 latency 912 ms vs usual 300 ms: 12.0% of requests over 300 ms since 2026-01-01 13:52 UTC, usually 1.0%'
    >>> _tail_summary(0.12, 0.01, 300.0, 912.0, 3, 1_767_275_520_000, "firing", False)
    'p99 latency above its usual 300 ms: 12.0% of requests over 300 ms since 2026-01-01 13:52 UTC, usually 1.0%'
    >>> _tail_summary(0.0, 0.01, 300.0, 280.0, 480, 1_767_275_520_000, "recovered", False)
    'p99 latency back to normal (0.00% of requests over 300 ms, usually 1.0%)'
    """
    if state == "recovered":
        return "no longer serving traffic; p99 latency episode over" if gone else \
            f"p99 latency back to normal ({_fmt(share, 'errors')} of requests over {_fmt(bound_ms, 'latency')}, " \
            f"usually {_fmt(usual_share, 'errors')})"
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(onset_ms / 1000))
    bound = _fmt(bound_ms, "latency")
    now = f"p99 latency {_fmt(p99_ms, 'latency')} vs usual {bound}" if requests >= P99_MIN_REQUESTS \
        else f"p99 latency above its usual {bound}"
    return f"{now}: {_fmt(share, 'errors')} of requests over {bound} since {since}, usually {_fmt(usual_share, 'errors')}"


def _fmt(value: float, kind: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if kind == "errors":
        return f"{value:.2%}" if value < 0.01 else f"{value:.1%}"
    if kind == "latency":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    return f"{value:.3g}/s"


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0

"""From closed windows to anomaly records: detectors plus trigger/recover hysteresis.

Three families are judged on every closed window, each vectorized over all series:

| family     | series          | value judged                     | fires as                          |
|------------|-----------------|----------------------------------|-----------------------------------|
| latency    | model+version   | log(p95 latency)                 | ``latency`` (above baseline only) |
| errors     | model+version   | error count vs Binomial(n, rate) | ``errors``                        |
| throughput | model+role      | sqrt(request count)              | ``throughput_drop`` / ``_surge``  |

Logs and square roots make the noise of latency (multiplicative) and request counts
(Poisson) roughly constant, so one detector setting fits a 5 ms and a 500 ms model, a
10 req/s and a 10,000 req/s model. Throughput is judged per model and role, not per
version, so traffic moving to a new version during a rollout is no anomaly.

An episode starts after ``trigger_windows`` anomalous windows in a row and ends after
``recover_windows`` normal ones: one noisy window never pages, and a flapping series
never opens a new incident per flap. Anomaly ids hash the series, kind and onset window,
so re-judging the same windows after a restart yields the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from modelmedic.config import DetectionSettings
from modelmedic.detectors.base import SeriesBank, SlotState
from modelmedic.detectors.robust import RobustBank
from modelmedic.detectors.rates import BinomialRateBank
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

    def ensure(self, n: int) -> None:
        if n > self.bad.size:
            extra = max(n, 2 * self.bad.size, 64) - self.bad.size
            self.bad = np.concatenate([self.bad, np.zeros(extra, dtype=np.int64)])
            self.good = np.concatenate([self.good, np.zeros(extra, dtype=np.int64)])
            self.firing = np.concatenate([self.firing, np.zeros(extra, dtype=bool)])
            self.onset = np.concatenate([self.onset, np.zeros(extra, dtype=np.int64)])
            self.kind = np.concatenate([self.kind, np.zeros(extra, dtype=np.int8)])

    def _slot_capacity(self) -> int:
        return self.bad.size

    def forget(self, slots: np.ndarray) -> None:
        slots = slots[slots < self.bad.size]
        self.bad[slots] = self.good[slots] = 0
        self.firing[slots] = False

    def step(
        self, slots: np.ndarray, anomalous: np.ndarray, judged: np.ndarray, kind: np.ndarray,
        window: int | np.ndarray, idle: np.ndarray | None = None,
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
            self.ensure(int(slots.max()) + 1)
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
        self.onset[started] = (window[start] if np.ndim(window) else window) - self.trigger + 1
        self.kind[started] = kind[start]
        return started, ended


@dataclass
class _Family:
    name: str
    bank: SeriesBank | BinomialRateBank
    episodes: Episodes
    level: str
    """``version`` (judged per model, version and role) or ``group`` (per model and role)."""


@dataclass
class _Rows:
    """The closed windows of one judge call side by side: one row per series, version-level
    rows first (``slots``...), model-level ones apart (``groups``...); ``owner`` says which
    closed window a row came from (its window index, times and names)."""

    cws: list[ClosedWindow]
    slots: np.ndarray
    count: np.ndarray
    errors: np.ndarray
    p95: np.ndarray
    window: np.ndarray
    owner: np.ndarray
    groups: np.ndarray
    group_count: np.ndarray
    group_top_slot: np.ndarray
    group_window: np.ndarray
    group_owner: np.ndarray


def _rows(cws: list[ClosedWindow]) -> _Rows:
    if len(cws) == 1:  # one partition closed a window (always so when it owns one): nothing to put side by side
        cw = cws[0]
        version_rows, group_rows = np.zeros(cw.slots.size, dtype=np.int64), np.zeros(cw.groups.size, dtype=np.int64)
        return _Rows(cws, cw.slots, cw.count, cw.errors, cw.p95, version_rows + cw.window, version_rows,
                     cw.groups, cw.group_count, cw.group_top_slot, group_rows + cw.window, group_rows)
    cat, index = np.concatenate, np.arange(len(cws))
    sizes, group_sizes = [cw.slots.size for cw in cws], [cw.groups.size for cw in cws]
    windows = [cw.window for cw in cws]
    return _Rows(
        cws, cat([cw.slots for cw in cws]), cat([cw.count for cw in cws]), cat([cw.errors for cw in cws]),
        cat([cw.p95 for cw in cws]), np.repeat(windows, sizes), np.repeat(index, sizes),
        cat([cw.groups for cw in cws]), cat([cw.group_count for cw in cws]), cat([cw.group_top_slot for cw in cws]),
        np.repeat(windows, group_sizes), np.repeat(index, group_sizes),
    )


THROUGHPUT_KINDS = ("throughput_drop", "throughput_surge")


class WindowJudge:
    """Judges closed windows and says which episodes start or end.

    One judge serves every partition of a detection plane: their windows share a
    :class:`~modelmedic.windows.SlotPool`, so the windows closed on many partitions at
    once are judged in one vectorized pass (:meth:`judge_many`), and a partition's state
    moves in and out with :meth:`rows` and :meth:`set_rows`.
    """

    def __init__(self, settings: DetectionSettings) -> None:
        self.settings = settings
        grace = settings.grace_windows
        trig, rec = settings.trigger_windows, settings.recover_windows
        # Robust baselines: a Huber-clipped location and a MAD scale, so neither a wild window
        # nor a slowly building incident drags the baseline towards the anomaly.
        self.latency = _Family("latency", RobustBank(alpha=0.05, grace=grace, threshold=settings.threshold),
                               Episodes(trig, rec), "version")
        self.errors = _Family("errors", BinomialRateBank(grace=grace, threshold=settings.threshold),
                              Episodes(trig, rec), "version")
        self.throughput = _Family("throughput", RobustBank(alpha=0.05, grace=grace, threshold=settings.threshold),
                                  Episodes(trig, rec), "group")

    def _index(self, slots: list[int], groups: list[int]) -> list[tuple[_Family, np.ndarray]]:
        """Each family with the slots it keeps state at: version slots or group slots."""
        s, g = np.array(slots, dtype=np.int64), np.array(groups, dtype=np.int64)
        return [(fam, s if fam.level == "version" else g) for fam in (self.latency, self.errors, self.throughput)]

    def forget(self, slots: list[int], groups: list[int]) -> None:
        """Reset the state of expired series so their slots can be reused."""
        for fam, idx in self._index(slots, groups):
            fam.bank.forget(idx)
            fam.episodes.forget(idx)

    def rows(self, slots: list[int], groups: list[int]) -> dict[str, dict]:
        """The state of these series and groups (a partition's, for its snapshot)."""
        return {fam.name: {"bank": fam.bank.rows(idx), "episodes": fam.episodes.rows(idx)}
                for fam, idx in self._index(slots, groups)}

    def set_rows(self, slots: list[int], groups: list[int], rows: dict[str, dict]) -> None:
        """Put the state :meth:`rows` returned at (possibly other) slots and groups, in the same order."""
        for fam, idx in self._index(slots, groups):
            fam.bank.set_rows(idx, rows[fam.name]["bank"])
            fam.episodes.set_rows(idx, rows[fam.name]["episodes"])

    def judge(self, cw: ClosedWindow) -> list[Anomaly]:
        """All anomaly records (episode starts and ends) for one closed window."""
        return self.judge_many([cw])

    def judge_many(self, cws: list[ClosedWindow]) -> list[Anomaly]:
        """:meth:`judge` for closed windows of different partitions (disjoint slots), in one pass."""
        for source in {id(cw.source): cw.source for cw in cws}.values():
            if source.born:
                dst, src = (np.array(side, dtype=np.int64) for side in zip(*source.born))
                self.latency.bank.inherit(dst, src)
                self.errors.bank.inherit(dst, src)
                source.born.clear()
        r = _rows(cws)
        thr = self.settings.threshold
        out: list[Anomaly] = []
        enough = r.count >= self.settings.min_requests

        lat_x = np.where(enough, np.log(np.maximum(r.p95, 1e-3)), np.nan)  # log of >= 1e-3 or NaN: no warning
        scores, base = self.latency.bank.score_learn(r.slots, lat_x)
        anomalous = (scores >= thr) & (lat_x > base + np.log(self.settings.latency_ratio))
        kinds = np.zeros(r.slots.size, dtype=np.int8)
        out += self._emit(self.latency, r, anomalous, enough, kinds, scores, observed=r.p95, baseline=np.exp(base))

        # Too few requests: neither judged nor learned (0 requests is "no data" to the bank).
        e_scores, e_rate = self.errors.bank.score_learn(r.slots, np.where(enough, r.errors, 0), np.where(enough, r.count, 0))
        err_rate = np.divide(r.errors, r.count, out=np.full(r.count.size, np.nan), where=r.count > 0)
        e_anomalous = (e_scores >= thr) & (err_rate >= self.settings.error_ratio * e_rate)
        out += self._emit(self.errors, r, e_anomalous, enough, kinds, e_scores, observed=err_rate, baseline=e_rate)

        tp_x = np.sqrt(r.group_count)
        t_scores, t_base = self.throughput.bank.score_learn(r.groups, tp_x)
        t_kinds = (tp_x > t_base).astype(np.int8)  # 0 = drop, 1 = surge
        expected = np.maximum(t_base**2, 1e-9)
        ratio = r.group_count / expected
        big = (ratio <= self.settings.throughput_drop_ratio) | (ratio >= self.settings.throughput_surge_ratio)
        # Counts are at least Poisson-noisy: a quiet canary seeing 0 requests where it
        # expects 4 is chance (p = 0.02), not an outage, whatever the learned spread says.
        if np.count_nonzero(big):  # usually no count is that far off: then the tail changes nothing
            big &= _poisson_tail(r.group_count, expected, upper=t_kinds == 1) <= 1.0 - thr
        judged = np.ones(r.groups.size, dtype=bool)
        out += self._emit(self.throughput, r, (t_scores >= thr) & big, judged, t_kinds, t_scores,
                          observed=r.group_count, baseline=t_base**2)
        return out

    def _emit(
        self, fam: _Family, r: _Rows, anomalous: np.ndarray, judged: np.ndarray, kinds: np.ndarray,
        scores: np.ndarray, *, observed: np.ndarray, baseline: np.ndarray,
    ) -> list[Anomaly]:
        by_version = fam.level == "version"
        slots, window, owner = (r.slots, r.window, r.owner) if by_version else (r.groups, r.group_window, r.group_owner)
        idle = r.count == 0 if by_version else None
        started, ended = fam.episodes.step(slots, anomalous, judged, kinds, window, idle=idle)
        if not started.size and not ended.size:
            return []
        where = {int(s): i for i, s in enumerate(slots)}
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
            onset = int(fam.episodes.onset[slot])
            records.append(
                _anomaly(model, version, series_version, role, kind, onset, cw, state,
                         float(observed[i]), float(baseline[i]), float(scores[i]))
            )
        return records


_CLASS = {"latency": "latency", "errors": "throughput", "throughput_drop": "throughput", "throughput_surge": "throughput"}
_UNITS = {"latency": ("p95 latency", "ms"), "errors": ("error rate", ""), "throughput_drop": ("request rate", "/window"),
          "throughput_surge": ("request rate", "/window")}


def _anomaly(model: str, version: str, series_version: str, role: str, kind: str, onset: int, cw: ClosedWindow,
             state: str, observed: float, baseline: float, score: float) -> Anomaly:
    what, unit = _UNITS[kind]
    size = cw.end_ms - cw.start_ms
    if state == "firing":
        summary = (f"{model} {version} ({role}): {what} {_fmt(observed, kind)}{unit}, "
                   f"baseline {_fmt(baseline, kind)}{unit} (score {score:.4f})")
    elif observed != observed:  # NaN: the series stopped serving (rolled back, scaled away)
        summary = f"{model} {version} ({role}): no longer serving traffic; {what} episode over"
    else:
        summary = f"{model} {version} ({role}): {what} back to normal ({_fmt(observed, kind)}{unit})"
    return Anomaly(
        id=stable_id(model, series_version, role, kind, onset), series=f"{model}/{series_version}/{role}", model=model, version=version, role=role,
        kind=kind, anomaly_class=_CLASS[kind], window_start=cw.start_ms, window_end=cw.end_ms,
        onset=onset * size, observed=_finite(observed), baseline=_finite(baseline), score=score,
        state=state, summary=summary, closed_at_ms=cw.closed_at_ms,
    )


def _poisson_tail(count: np.ndarray, mu: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``poisson.sf(count - 1, mu)`` where ``upper`` (P(X >= count)), else ``poisson.cdf(count, mu)``.

    The same values as ``scipy.stats.poisson`` (which calls these ``scipy.special``
    functions after its argument checks, reproduced here) without its per-call overhead
    of ~100 us: this runs once per closed window.
    """
    k = np.floor(np.where(upper, count - 1, count))
    tail = np.where(upper, special.pdtrc(k, mu), special.pdtr(k, mu))
    tail = np.where(k < 0, np.where(upper, 1.0, 0.0), tail)
    return np.where((mu >= 0) & ~np.isnan(k), tail, np.nan)


def _fmt(value: float, kind: str) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.1%}" if kind == "errors" else f"{value:.1f}"


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0

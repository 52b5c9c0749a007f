"""Per-series event-time tumbling windows: the hot path's aggregation.

One :class:`PartitionWindows` per Kafka partition. Every record is keyed by model id, so
a partition holds every version and role of its models and its windows can close on the
partition's own event time. Records arrive as columns (:mod:`modelmedic.detection.columns`): a batch
is sorted by window and kept as array slices, a few numpy calls with no Python per
record. Everything else (counts, quantiles, per-model totals) is done once per closed
window, vectorized over all series with numpy.

Watermark: a window ``w`` (covering ``[w*size, (w+1)*size)`` ms) closes once the
partition's highest event time has passed its end by ``allowed_lateness_ms``. A record
for a window that already closed is *late*: counted, never silently dropped.

Restart safety: the windows remember the first offset that fed each open window, so
:meth:`resume_offset` says where a restarted consumer must re-read from to rebuild the
open windows exactly; records of windows that had already closed are skipped on replay
(:attr:`closed_through`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

import numpy as np

from modelmedic.detection.columns import InferenceColumns, RecordDecoder
from modelmedic.events import InferenceEvent

QUANTILES = (0.5, 0.95, 0.99)


class _HasOffset(Protocol):
    offset: int


_EMPTY = np.empty(0, dtype=np.uint32)
_EMPTY_SLOTS = np.empty(0, dtype=np.int64)
NOT_SERVED = -(1 << 62)
""":meth:`PartitionWindows.served_stamp` of a series not stamped since it got its slot (or not live)."""
_ONE_BY_ONE = RecordDecoder()
"""Numbers the series of the events handed to :meth:`PartitionWindows.add` one at a time."""


@dataclass(frozen=True)
class _At:
    offset: int


class Forgotten(NamedTuple):
    """Series a partition let go of (:meth:`PartitionWindows.expire`, :meth:`PartitionWindows.release`)."""

    slots: list[int]
    """Series slots, back in the pool: the judge resets their detector state."""
    groups: list[int]
    """Group slots, back in the pool."""
    numbers: list[int]
    """The decoder's numbers of those series that this partition cached: the decoder may forget them."""


_SIBLINGS_SCANNED = 64
"""A new version's predecessor is looked for among the model's most recent versions, at most this many."""
MAX_GAP_MS = 2 * 3_600_000
"""A stretch of event time with no record of the partition closes at most this much of its empty
windows (the last ones before the next record), however long it lasted, and at most the series
TTL: two hours, in which a 0.01 req/s model still shows its drop (~70 min of silence)."""


@dataclass
class ClosedWindow:
    """Metrics of one window for every tracked series of a partition (arrays by series slot)."""

    window: int
    start_ms: int
    end_ms: int
    slots: np.ndarray
    """Version-level series slots (model, version, role)."""
    count: np.ndarray
    errors: np.ndarray
    p50: np.ndarray
    p95: np.ndarray
    p99: np.ndarray
    pred_mean: np.ndarray
    pred_var: np.ndarray
    groups: np.ndarray
    """Model-level series (model, role) slots: throughput is judged here, so traffic moving
    from one version to the next during a rollout is not a throughput anomaly."""
    group_count: np.ndarray
    group_errors: np.ndarray
    group_top_slot: np.ndarray
    """For each group, the version slot that served most of its requests in this window."""
    source: PartitionWindows
    """The partition's windows: what each slot and group stands for (``keys``, ``group_keys``)."""
    closed_at_ms: int = 0
    """Wall-clock time the window was closed: an anomaly's ``closed_at_ms``, for close-to-alert latency."""
    latency_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    """Every request's latency, ascending per series row: row ``i``'s are
    ``latency_ms[latency_start[i]:latency_start[i] + count[i]]`` (the close's own sorted array,
    shared by the windows closed together; the usage stats histogram them)."""
    latency_start: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def served(self) -> list[tuple[int, tuple[str, str, str]]]:
        """(row, (model, version, role)) of every series with requests in this window."""
        keys, served = self.source.keys, self.count > 0
        return [(i, keys[s]) for i, s in zip(np.flatnonzero(served).tolist(), self.slots[served].tolist())]


class SlotPool:
    """Hands out series and group slots, unique across every :class:`PartitionWindows` sharing it.

    The detection plane gives one pool to all its partitions so that one
    :class:`~modelmedic.judge.WindowJudge` holds every partition's baselines in one set of
    arrays and judges windows of many partitions in one vectorized call: the cost of a
    judge call is mostly numpy's per-call overhead, not the number of series in it.
    Released slots are handed out again (their detector state reset by the judge first).
    """

    def __init__(self) -> None:
        self.slots = 0
        self.groups = 0
        self.free_slots: list[int] = []
        self.free_groups: list[int] = []

    def slot(self) -> int:
        if self.free_slots:
            return self.free_slots.pop()
        self.slots += 1
        return self.slots - 1

    def group(self) -> int:
        if self.free_groups:
            return self.free_groups.pop()
        self.groups += 1
        return self.groups - 1

    def release(self, slots: list[int], groups: list[int]) -> None:
        self.free_slots.extend(slots)
        self.free_groups.extend(groups)


class PartitionWindows:
    """Open windows and series of one partition."""

    def __init__(self, size_ms: int, allowed_lateness_ms: int, series_ttl_windows: int,
                 pool: SlotPool | None = None) -> None:
        self.size_ms = size_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.series_ttl_windows = series_ttl_windows
        """Windows of event time a series may be silent before it is forgotten (``windows.series_ttl_s``)."""
        self.pool = pool if pool is not None else SlotPool()
        self.slot_of: dict[tuple[str, str, str], int] = {}
        self.keys: dict[int, tuple[str, str, str]] = {}
        """Slot -> (model, version, role) of every live series."""
        self.group_of_slot: dict[int, int] = {}
        self.group_of: dict[tuple[str, str], int] = {}
        self.group_keys: dict[int, tuple[str, str]] = {}
        """Group slot -> (model, role) of every live group."""
        self.last_window: dict[int, int] = {}
        """Last window each slot had data in (for the series TTL)."""
        self.born: list[tuple[int, int]] = []
        """(new slot, predecessor slot) pairs the judge has yet to seed with baselines."""
        self.open: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
        """window -> chunks of its records, one per batch: (slot, latency_ms, ok, prediction) arrays."""
        self.first_offset: dict[int, int] = {}
        self.max_ts = 0
        self.closed_through = -1
        self.late = 0
        self.skipped_replay = 0
        self._topo: tuple | None = None
        """Cache of :meth:`_topology`; reset whenever a series is created or expired."""
        self._by_series: tuple[list, np.ndarray] = ([], _EMPTY_SLOTS)
        """(a decoder's series names, its series number -> slot or -1): a cache of ``slot_of``
        for the columns of one decoder (the plane has one)."""
        self._members: dict[int, list[int]] | None = None
        """Cache of :meth:`_group_members`; reset when series expire or move to another pool."""
        self.served_at = np.empty(0, dtype=np.int64)
        """Slot -> the time its series last served as the quality monitor was told (:meth:`mark_served`), or
        ``NOT_SERVED``; reset when a slot is handed to a series, moved along with the slots by :meth:`attach`."""

    def __getstate__(self) -> dict:
        # Snapshots hold what outlives this process, not caches of its series numbering.
        state = dict(self.__dict__)
        del state["_by_series"], state["_topo"], state["_members"]
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore a snapshot; one written before ``served_at`` was kept starts with no stamps (the quality
        monitor's snapshot of that release holds them by name)."""
        self.__dict__.update({"served_at": np.empty(0, dtype=np.int64), **state})
        self._by_series, self._topo, self._members = ([], _EMPTY_SLOTS), None, None

    # -- series bookkeeping (rare: once per new series) ---------------------------------

    def _new_slot(self, key: tuple[str, str, str], window: int) -> int:
        gkey = (key[0], key[2])
        group = self.group_of.get(gkey)
        if group is not None:
            # A new version of a model already served: it starts from its predecessor's
            # baselines (the most recently active version of the same model and role), so a
            # bad release is judged from its first windows, not after a warm-up of its own.
            # The most recent versions only: a flood of versions of one model stays linear.
            siblings = self._group_members().get(group, [])[-_SIBLINGS_SCANNED:]
            predecessor = max(siblings, key=self.last_window.__getitem__, default=None)
        else:
            predecessor = None
            group = self.group_of[gkey] = self.pool.group()
            self.group_keys[group] = gkey
        slot = self.slot_of[key] = self.pool.slot()
        self.keys[slot], self.group_of_slot[slot], self.last_window[slot] = key, group, window
        if slot < self.served_at.size:  # a slot handed out again: not its last owner's stamp
            self.served_at[slot] = NOT_SERVED
        self._group_members().setdefault(group, []).append(slot)
        self._topo = None
        if predecessor is not None:
            self.born.append((slot, predecessor))
        return slot

    def moved_on(self, slot: int) -> bool:
        """Whether another version of the series' model in its role has had requests since the series last did:
        its traffic went on to that version (a rollback, a replacement), where a sparse series' silence is a gap
        between its requests. True for a series no longer tracked."""
        group, last = self.group_of_slot.get(slot), self.last_window.get(slot)
        if group is None or last is None:
            return True
        return any(self.last_window[s] > last for s in self._group_members().get(group, ()) if s != slot)

    def _group_members(self) -> dict[int, list[int]]:
        """Group -> its series slots, oldest first: a cache of ``group_of_slot``, rebuilt after an expiry."""
        members = self.__dict__.get("_members")
        if members is None:
            members = self._members = {}
            for slot, group in self.group_of_slot.items():
                members.setdefault(group, []).append(slot)
        return members

    def expire(self, window: int, most: int | None = None) -> Forgotten:
        """Forget series silent for longer than the TTL (their slots go back to the pool), at most
        ``most`` of them (None: all); the caller calls again while ``most`` went."""
        horizon = window - self.series_ttl_windows
        slots = np.fromiter(self.last_window, np.int64, len(self.last_window))
        last = np.fromiter(self.last_window.values(), np.int64, len(self.last_window))
        gone = slots[last < horizon][:most].tolist()
        for s in gone:
            del self.slot_of[self.keys.pop(s)]
            del self.group_of_slot[s], self.last_window[s]
        live_groups = set(self.group_of_slot.values())
        dead_groups = [g for g in self.group_keys if g not in live_groups]
        for g in dead_groups:
            del self.group_of[self.group_keys.pop(g)]
        self.pool.release(gone, dead_groups)
        numbers: list[int] = []
        if gone or dead_groups:
            self._topo = self._members = None
            by_series = self._by_series[1]
            stale = np.isin(by_series, gone)
            numbers = np.flatnonzero(stale).tolist()
            by_series[stale] = -1
            if len(gone) > len(self.keys):
                self._compact()
        return Forgotten(gone, dead_groups, numbers)

    def _compact(self) -> None:
        """Rebuild the series tables after most series expired: a dict never shrinks on deletion,
        so a burst of a million names would otherwise keep its memory after they are gone."""
        for name in ("slot_of", "keys", "group_of_slot", "last_window", "group_of", "group_keys"):
            setattr(self, name, dict(getattr(self, name)))

    def release(self) -> Forgotten:
        """Give every slot and group back to the pool (the partition was revoked)."""
        slots, groups = list(self.keys), list(self.group_keys)
        self.pool.release(slots, groups)
        return Forgotten(slots, groups, np.flatnonzero(self._by_series[1] >= 0).tolist())

    def uncache(self, numbers: list[int]) -> None:
        """Drop what the series-number cache says of these decoder numbers: the decoder forgot
        them (another partition's series expired) and may give them to other series."""
        by_series = self._by_series[1]
        index = np.asarray(numbers, dtype=np.int64)
        by_series[index[index < by_series.size]] = -1

    def attach(self, pool: SlotPool) -> tuple[dict[int, int], dict[int, int]]:
        """Move every series to slots of ``pool`` (a restored snapshot joining this process's
        pool); returns the (old -> new) slot and group maps, to move detector state along."""
        slot_map = {s: pool.slot() for s in self.keys}
        group_map = {g: pool.group() for g in self.group_keys}
        self.keys = {slot_map[s]: k for s, k in self.keys.items()}
        self.slot_of = {k: slot_map[s] for k, s in self.slot_of.items()}
        self.group_of_slot = {slot_map[s]: group_map[g] for s, g in self.group_of_slot.items()}
        self.last_window = {slot_map[s]: w for s, w in self.last_window.items()}
        served_at = np.full(max(slot_map.values(), default=-1) + 1, NOT_SERVED, dtype=np.int64)
        for old, new in slot_map.items():
            served_at[new] = self._stamp_of(old)
        self.served_at = served_at
        self.group_keys = {group_map[g]: k for g, k in self.group_keys.items()}
        self.group_of = {k: group_map[g] for k, g in self.group_of.items()}
        self.born = [(slot_map[a], slot_map[b]) for a, b in self.born if a in slot_map and b in slot_map]
        self.open = {w: [(np.array([slot_map[s] for s in slots.tolist()], dtype=np.int64), *rest)
                         for slots, *rest in chunks] for w, chunks in self.open.items()}
        self.pool, self._topo, self._members, self._by_series = pool, None, None, ([], _EMPTY_SLOTS)
        return slot_map, group_map

    # -- the hot path -------------------------------------------------------------------

    def add(self, event: InferenceEvent, offset: int) -> bool:
        """Aggregate one event; False if it was late (its window already closed).

        :meth:`add_columns` for one record (the hot path always has a batch).
        """
        late, _ = self.add_columns(_ONE_BY_ONE.columns([event]), [_At(offset)])
        return not late.size

    def add_columns(self, cols: InferenceColumns, records: Sequence[_HasOffset],
                    horizon_ts: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Aggregate a batch of one partition's records.

        ``records[i]`` is the record at batch position ``i`` (``cols.index``); only the
        offset of the first record of each window is read. A record stamped after
        ``horizon_ts`` is not added: it would move the partition's event time ahead of
        every honest record. Returns the batch positions of (the late records, the
        records after the horizon). A few numpy calls per batch, plus Python per window
        and per series of the batch, none per record.
        """
        future = _EMPTY
        if len(cols) and horizon_ts is not None and cols.ts.max() > horizon_ts:
            ahead = cols.ts > horizon_ts
            future, cols = cols.index[ahead], cols.take(~ahead)
        if not len(cols):
            return _EMPTY, future
        self.max_ts = max(self.max_ts, int(cols.ts.max()))
        window = cols.ts // self.size_ms
        late = window <= self.closed_through
        if late.any():
            late_index, cols, window = cols.index[late], cols.take(~late), window[~late]
            self.late += late_index.size
        else:
            late_index = _EMPTY
        if not len(cols):
            return late_index, future
        order = np.argsort(window, kind="stable")  # by window, batch order within one (linear when sorted)
        window, slots = window[order], self._slots(cols.series[order], window[order], cols.names)
        latency, ok, prediction, index = cols.latency_ms[order], cols.ok[order], cols.prediction[order], cols.index[order]
        windows, starts = np.unique(window, return_index=True)
        bounds = [*starts.tolist(), window.size]
        for w, lo, hi in zip(windows.tolist(), bounds, bounds[1:]):
            chunk = self.open.get(w)
            if chunk is None:
                chunk = self.open[w] = []
                self.first_offset[w] = records[int(index[lo])].offset
            chunk.append((slots[lo:hi], latency[lo:hi], ok[lo:hi], prediction[lo:hi]))
        # The last window each series had data in (sorted by window: its last occurrence).
        last_window = self.last_window
        served, at = np.unique(slots[::-1], return_index=True)
        for slot, w in zip(served.tolist(), window[::-1][at].tolist()):
            if w > last_window[slot]:
                last_window[slot] = w
        return late_index, future

    def advance(self, ts: int) -> None:
        """Move event time on to ``ts`` without adding a record (records the cardinality guard refused)."""
        self.max_ts = max(self.max_ts, ts)

    def _slots(self, series: np.ndarray, window: np.ndarray, names: list[tuple[str, str, str]]) -> np.ndarray:
        """Slot of each record's series number, creating the series not seen before."""
        cached, by_series = self._by_series
        if cached is not names:  # columns of another decoder: another numbering
            by_series = _EMPTY_SLOTS
        if series.max() >= by_series.size:
            grown = np.full(max(2 * by_series.size, int(series.max()) + 1, 64), -1, dtype=np.int64)
            grown[:by_series.size] = by_series
            by_series = grown
        self._by_series = (names, by_series)
        slots = by_series[series]
        unknown = slots < 0
        if unknown.any():
            numbers, first = np.unique(series[unknown], return_index=True)
            for number, w in zip(numbers.tolist(), window[unknown][first].tolist()):
                key = names[number]
                slot = self.slot_of.get(key)
                by_series[number] = slot if slot is not None else self._new_slot(key, w)
            slots = by_series[series]
        return slots

    # -- closing ------------------------------------------------------------------------

    def ready_through(self, now_ts: int | None = None) -> int:
        """Highest window index that may close given the watermark (or a wall-clock time)."""
        ts = self.max_ts if now_ts is None else max(self.max_ts, now_ts)
        return (ts - self.allowed_lateness_ms) // self.size_ms - 1

    def close_through(self, last: int) -> list[ClosedWindow]:
        """Close every window up to ``last``, in order, including empty ones."""
        return self.close(self.shut_through(last))

    def shut_through(self, last: int) -> list[int]:
        """The windows up to ``last`` to close, in order, including empty ones: from now on a record
        for one of them is late. Their statistics come from :meth:`close`, a few at a time if
        the caller likes (their records wait in ``open`` until then)."""
        if last <= self.closed_through:
            return []
        data = sorted(w for w in self.open if w <= last)
        # The partition's first data: nothing before it to judge.
        lo = (data[0] if data else last + 1) if self.closed_through < 0 else self.closed_through + 1
        # Windows between the buffered ones are empty; after the TTL no series is left to
        # judge in them, and past MAX_GAP_MS of silence every drop worth declaring has been:
        # every idle gap (before, between or after the buffered windows, even one opened by
        # a far-off timestamp) costs at most that many window closes (sharing one set of arrays).
        gap = min(self.series_ttl_windows, -(-MAX_GAP_MS // self.size_ms))
        todo: list[int] = []
        for anchor in [*data, last + 1]:
            lo = max(lo, anchor - gap)
            todo.extend(range(lo, min(anchor, last) + 1))
            lo = max(lo, anchor + 1)
        self.closed_through = last
        return todo

    def close(self, windows: list[int]) -> list[ClosedWindow]:
        """The statistics of windows :meth:`shut_through` returned (in its order), over the series
        tracked now; each window's records are let go of."""
        return self._close(windows)

    def served_slots(self, window: int) -> np.ndarray:
        """Slots of the series with records in a shut window not closed yet (sorted, unique): what
        :meth:`ClosedWindow.served` will say of it."""
        chunks = self.open.get(window)
        if not chunks:
            return _EMPTY_SLOTS
        return np.unique(np.concatenate([chunk[0] for chunk in chunks]))

    def mark_served(self, at: int, slots: np.ndarray) -> None:
        """Stamp ``slots`` (:meth:`served_slots`) as serving at event time ``at``: the quality monitor's record of
        which series still serve (:meth:`~modelmedic.detection.quality.QualityMonitor.poll`), kept by slot so a
        window's ~17,000 series cost one numpy store, not a dict update of their names."""
        top = int(slots.max()) if slots.size else -1
        if top >= self.served_at.size:
            grown = np.full(max(top + 1, 2 * self.served_at.size), NOT_SERVED, dtype=np.int64)
            grown[:self.served_at.size] = self.served_at
            self.served_at = grown
        self.served_at[slots] = at

    def served_stamp(self, key: tuple[str, str, str]) -> int:
        """:meth:`mark_served`'s last stamp of a live series; ``NOT_SERVED`` if none since it got its slot, or if
        it is not live (never seen, or expired after ``series_ttl_windows``)."""
        slot = self.slot_of.get(key)
        return NOT_SERVED if slot is None else self._stamp_of(slot)

    def _stamp_of(self, slot: int) -> int:
        """``served_at[slot]``, or ``NOT_SERVED`` past the array (a slot never stamped here)."""
        return int(self.served_at[slot]) if slot < self.served_at.size else NOT_SERVED

    def resume_offset(self, next_offset: int) -> int:
        """Where a restart must re-read from to rebuild every open window."""
        return min(self.first_offset.values(), default=next_offset)

    def _topology(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(active slots, slot -> row array, group row of each slot row, groups), cached until
        a series is created or expired (:meth:`_new_slot`, :meth:`expire`)."""
        topo = self.__dict__.get("_topo")
        if topo is None:
            active = np.array(sorted(self.keys), dtype=np.int64)
            groups, group_row = np.unique(np.array([self.group_of_slot[s] for s in active.tolist()], dtype=np.int64),
                                          return_inverse=True)
            group_row = group_row.reshape(-1)
            row_of = np.full(int(active[-1]) + 1 if active.size else 0, -1, dtype=np.int64)
            row_of[active] = np.arange(active.size)
            for shared in (active, group_row, groups):  # handed out in every ClosedWindow until the next change
                shared.flags.writeable = False
            topo = self._topo = (active, row_of, group_row, groups)
        return topo

    def _close(self, windows: list[int]) -> list[ClosedWindow]:
        """Close ``windows`` (in order). Those without records share the statistics of one empty
        window (read-only arrays), so an idle gap of thousands of windows costs one window's
        memory, not thousands."""
        empty = [w for w in windows if w not in self.open]
        if len(empty) < 2:
            return self._close_rows(windows)
        full = {cw.window: cw for cw in self._close_rows([w for w in windows if w in self.open])}
        [blank] = self._close_rows(empty[:1])
        for name in ("count", "errors", "p50", "p95", "p99", "pred_mean", "pred_var", "group_count", "group_errors",
                     "group_top_slot", "latency_start"):
            getattr(blank, name).flags.writeable = False
        for w in empty:
            full[w] = replace(blank, window=w, start_ms=w * self.size_ms, end_ms=(w + 1) * self.size_ms)
        return [full[w] for w in windows]

    def _close_rows(self, windows: list[int]) -> list[ClosedWindow]:
        """Close ``windows`` (in order): their statistics for all series at once, one row per
        window, so closing the dozens of windows a catching-up batch spans costs about as
        much as closing one."""
        if not windows:
            return []
        active, row_of, group_row, groups = self._topology()
        n, k, ng = active.size, len(windows), groups.size
        chunks, cells = [], []
        for j, w in enumerate(windows):
            self.first_offset.pop(w, None)
            for chunk in self.open.pop(w, ()):
                chunks.append(chunk)
                cells.append(row_of[chunk[0]] + j * n)  # cell = (window, series row), flattened
        p50, p95, p99 = (np.full(k * n, np.nan) for _ in QUANTILES)
        latency, start = np.empty(0), np.zeros(k * n, dtype=np.int64)
        if chunks:
            cell = np.concatenate(cells)
            latency, ok, prediction = (np.concatenate(c) for c in list(zip(*chunks))[1:])
            count = np.bincount(cell, minlength=k * n).astype(np.float64)
            errors = count - np.bincount(cell, weights=ok, minlength=k * n)
            numeric = ~np.isnan(prediction)
            pred_n = np.bincount(cell, weights=numeric, minlength=k * n)
            pred_sum = np.bincount(cell[numeric], weights=prediction[numeric], minlength=k * n)
            pred_sq = np.bincount(cell[numeric], weights=prediction[numeric] ** 2, minlength=k * n)
            # Nearest-rank quantiles of each cell: sort by (cell, latency), then index. Two
            # passes (latency, then stably by cell: a radix sort for 16-bit cell numbers) cost
            # 2.6x less than np.lexsort at the ~6,000 records a catching-up batch holds.
            order = np.argsort(latency)
            order = order[np.argsort(cell[order].astype(np.uint16 if k * n < 1 << 16 else np.int64), kind="stable")]
            latency = latency[order]
            served = count > 0
            m = count[served]
            start = (np.cumsum(count) - count).astype(np.int64)
            for out, q in zip((p50, p95, p99), QUANTILES):
                out[served] = latency[start[served] + np.maximum(np.ceil(q * m) - 1, 0).astype(np.int64)]
        else:
            count = errors = pred_n = pred_sum = pred_sq = np.zeros(k * n)
        pred_mean = np.full(k * n, np.nan)
        np.divide(pred_sum, pred_n, out=pred_mean, where=pred_n > 0)
        pred_var = np.full(k * n, np.nan)
        two = pred_n > 1
        pred_var[two] = pred_sq[two] / pred_n[two] - pred_mean[two] ** 2
        pred_var = np.maximum(pred_var, 0.0)
        group_cell = (group_row + np.arange(k)[:, None] * ng).ravel()
        group_count = np.bincount(group_cell, weights=count, minlength=k * ng).reshape(k, ng)
        group_errors = np.bincount(group_cell, weights=errors, minlength=k * ng).reshape(k, ng)
        top = _argmax_per_group(group_cell, count, np.tile(active, k), k * ng).reshape(k, ng)
        rows = [a.reshape(k, n) for a in (count, errors, p50, p95, p99, pred_mean, pred_var, start)]
        closed_at_ms = int(time.time() * 1000)
        return [
            ClosedWindow(
                window=w, start_ms=w * self.size_ms, end_ms=(w + 1) * self.size_ms, slots=active,
                count=rows[0][j], errors=rows[1][j], p50=rows[2][j], p95=rows[3][j], p99=rows[4][j],
                pred_mean=rows[5][j], pred_var=rows[6][j], groups=groups, group_count=group_count[j],
                group_errors=group_errors[j], group_top_slot=top[j], source=self, closed_at_ms=closed_at_ms,
                latency_ms=latency, latency_start=rows[7][j],
            )
            for j, w in enumerate(windows)
        ]


def _argmax_per_group(group_row: np.ndarray, count: np.ndarray, slots: np.ndarray, ng: int) -> np.ndarray:
    """The slot with the highest count in each group row (ties: the highest slot)."""
    top = np.full(ng, -1, dtype=np.int64)
    order = np.lexsort((count, group_row))
    top[group_row[order]] = slots[order]  # later (larger count) entries overwrite earlier ones
    return top

"""Usage and performance stats of model versions: the record (with a mergeable latency
histogram), and the one buffer between production and git.

Production reports stats once per window per model; git takes a commit a few times a second at
best. :class:`StatsBuffer` merges reports in memory and commits them in bulk, at most once per
``interval_s`` across every writer of the registry (the throttle is the registry's stamp in
``.git``, so N replicas together still commit once per interval).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelmedic.errors import RegistryValidationError
from modelmedic.registry.records import StatsCommit
from modelmedic.registry.schema import number_map


GROWTH = 1.02
"""Each latency bucket's upper edge is 2% above the previous one: a bucket's midpoint
``2 * GROWTH**i / (1 + GROWTH)`` is within (GROWTH - 1) / (GROWTH + 1) < 1% of every latency in it."""
FLOOR_MS = 0.001
"""Latencies below a microsecond share the lowest bucket."""
_LOG_GROWTH = math.log(GROWTH)


def bucket_indices(latencies_ms: Any) -> Any:
    """The histogram bucket of each latency (a numpy array or sequence, in ms): bucket ``i`` holds
    ``(GROWTH**(i-1), GROWTH**i]`` ms.

    >>> bucket_indices([1.0, 1.02, 1.03, 100.0]).tolist()
    [0, 1, 2, 233]
    """
    import numpy as np  # here: the registry's CLI reads stats without paying numpy's import

    values = np.maximum(np.asarray(latencies_ms, dtype=np.float64), FLOOR_MS)
    # The small tolerance keeps a value at an exact edge in its own bucket despite log's rounding.
    return np.ceil(np.log(values) / _LOG_GROWTH - 1e-9).astype(np.int64)


@dataclass(frozen=True)
class LatencyHistogram:
    """Request counts per fixed logarithmic latency bucket: merging adds counts, so the quantiles
    of any merge of periods are the quantiles of all their requests, to within 1%.

    (Quantiles cannot be merged from quantiles: averaging two periods' p99 is not the p99 of both.)

    >>> h = LatencyHistogram.of(list(range(1, 101))).merged(LatencyHistogram.of([1000.0] * 100))
    >>> h.total, h.quantile(0.5), h.quantile(0.99)
    (200, 99.889226, 993.432974)
    """

    buckets: dict[int, int] = field(default_factory=dict)
    """Bucket index -> requests, for non-empty buckets only (see :func:`bucket_indices`)."""

    @classmethod
    def of(cls, latencies_ms: Any) -> LatencyHistogram:
        """The histogram of some latencies (ms)."""
        import numpy as np

        index, counts = np.unique(bucket_indices(latencies_ms), return_counts=True)
        return cls(dict(zip(index.tolist(), counts.tolist())))

    @property
    def total(self) -> int:
        return sum(self.buckets.values())

    def merged(self, other: LatencyHistogram) -> LatencyHistogram:
        buckets = dict(self.buckets)
        for i, n in other.buckets.items():
            buckets[i] = buckets.get(i, 0) + n
        return LatencyHistogram(buckets)

    def quantile(self, q: float) -> float:
        """The nearest-rank ``q`` quantile (the latency of the ``ceil(q * n)``-th fastest request),
        as its bucket's midpoint: within 1% of the exact one. NaN when empty."""
        total = self.total
        if total == 0:
            return math.nan
        rank, seen = max(math.ceil(q * total), 1), 0
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if seen >= rank:
                return round(2 * GROWTH**i / (1 + GROWTH), 6)
        raise AssertionError("unreachable: the ranks add up to the total")

    def to_dict(self) -> dict[str, Any]:
        return {"growth": GROWTH, "floor_ms": FLOOR_MS, "buckets": {str(i): n for i, n in sorted(self.buckets.items())}}

    @classmethod
    def from_dict(cls, data: object) -> LatencyHistogram:
        """Validate a stored histogram; it must use this code's buckets (or merging would mix scales)."""
        if not isinstance(data, Mapping) or (data.get("growth"), data.get("floor_ms")) != (GROWTH, FLOOR_MS):
            raise RegistryValidationError(
                f"latency_histogram must be {{'growth': {GROWTH}, 'floor_ms': {FLOOR_MS}, 'buckets': "
                "{index: count}} as the service writes it; remove it to fall back to the record's quantiles")
        try:
            buckets = {int(i): int(n) for i, n in data["buckets"].items()}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RegistryValidationError(f"latency_histogram.buckets must map bucket numbers to counts: {exc}") from exc
        if any(n <= 0 for n in buckets.values()):
            raise RegistryValidationError("latency_histogram.buckets holds a count below 1: list non-empty buckets only")
        return cls(buckets)


@dataclass(frozen=True)
class UsageStats:
    """Usage and performance of one version over some period, as the service measures it.

    Roll-ups merge exactly where they can: counts add, latency histograms add (so merged
    quantiles are right to within 1%), and quality metrics average by request weight.

    >>> a = UsageStats(requests=100, errors=1, latency=LatencyHistogram.of([10.0] * 100))
    >>> b = UsageStats(requests=300, errors=3, latency=LatencyHistogram.of([20.0] * 300))
    >>> m = a.merged(b)
    >>> m.requests, m.error_rate, round(m.latency_p50_ms), round(m.latency_p95_ms)
    (400, 0.01, 20, 20)
    """

    requests: int
    errors: int
    latency: LatencyHistogram
    """One count per request."""
    quality: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise RegistryValidationError(
                f"stats record has requests={self.requests}, errors={self.errors}: need 0 <= errors <= requests")
        if self.latency.total != self.requests:
            raise RegistryValidationError(f"stats record has {self.requests} requests but {self.latency.total} "
                                          "latencies in its histogram: give one per request")

    @classmethod
    def from_quantiles(cls, requests: int, errors: int, latency_p50_ms: float, latency_p95_ms: float,
                       latency_p99_ms: float, quality: Mapping[str, float] | None = None) -> UsageStats:
        """A period known only by three quantiles (a record written before histograms, or made by hand).

        Its requests are spread over the three latencies so the nearest-rank p50, p95 and p99 of the
        result are the given ones (to within a bucket); the tail above p99 is put at p99.

        >>> s = UsageStats.from_quantiles(1000, 10, 10.0, 20.0, 50.0)
        >>> s.latency_p50_ms, s.latency_p95_ms, s.latency_p99_ms
        (10.043815, 20.086522, 49.947371)
        """
        at_p50, at_p95 = math.ceil(0.5 * requests), math.ceil(0.95 * requests)
        counts = (at_p50, at_p95 - at_p50, requests - at_p95)
        bounds = bucket_indices([latency_p50_ms, latency_p95_ms, latency_p99_ms]).tolist()
        buckets: dict[int, int] = {}
        for i, n in zip(bounds, counts):
            if n:
                buckets[i] = buckets.get(i, 0) + n
        return cls(requests, errors, LatencyHistogram(buckets), dict(quality or {}))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def latency_p50_ms(self) -> float:
        return self.latency.quantile(0.50)

    @property
    def latency_p95_ms(self) -> float:
        return self.latency.quantile(0.95)

    @property
    def latency_p99_ms(self) -> float:
        return self.latency.quantile(0.99)

    def merged(self, other: UsageStats) -> UsageStats:
        """Combine two periods into one: counts and histograms add; quality averages by request weight."""
        return UsageStats(requests=self.requests + other.requests, errors=self.errors + other.errors,
                          latency=self.latency.merged(other.latency),
                          quality=_merged_quality(self.quality, self.requests, other.quality, other.requests))

    def to_dict(self) -> dict[str, Any]:
        """The stats file's record: the quantiles for people and diffs, the histogram for the next merge."""
        return {"requests": self.requests, "errors": self.errors, "error_rate": self.error_rate,
                "latency_p50_ms": self.latency_p50_ms, "latency_p95_ms": self.latency_p95_ms,
                "latency_p99_ms": self.latency_p99_ms, "quality": dict(self.quality),
                "latency_histogram": self.latency.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageStats:
        """Validate a stats record (from the service or from a stats file); say which field is wrong.

        With a ``latency_histogram`` its quantile fields are derived and ignored; without one (a
        file written before histograms), the record stands for its quantiles (:meth:`from_quantiles`).
        """
        try:
            requests, errors = int(data["requests"]), int(data["errors"])
            quality = number_map(data.get("quality", {}), "quality")
            if "latency_histogram" in data:
                return cls(requests, errors, LatencyHistogram.from_dict(data["latency_histogram"]), quality)
            return cls.from_quantiles(requests, errors, float(data["latency_p50_ms"]), float(data["latency_p95_ms"]),
                                      float(data["latency_p99_ms"]), quality)
        except KeyError as exc:
            raise RegistryValidationError(f"stats record lacks {exc.args[0]!r}: give requests, errors and "
                                          "latency_histogram, or latency_p50_ms, latency_p95_ms, latency_p99_ms "
                                          "(quality optional)") from exc
        except (TypeError, ValueError) as exc:
            raise RegistryValidationError(f"stats record has a non-numeric field: {exc}") from exc


def _merged_quality(a: Mapping[str, float], a_requests: int, b: Mapping[str, float], b_requests: int) -> dict[str, float]:
    """Quality metrics of two periods, averaged by request weight; a metric one side lacks takes the other's value."""
    total, quality = a_requests + b_requests, {}
    for k in sorted({*a, *b}):
        mine = a.get(k, b.get(k, 0.0))
        theirs = b.get(k, mine)
        quality[k] = (mine * a_requests + theirs * b_requests) / total if total else theirs
    return quality


FOLD_EVERY = 4096
"""Raw latencies a tally keeps before it folds them into its histogram: bounds the buffer's memory
per version (32 KB) while a window's requests cost an array append, not a histogram each."""


class _Tally:
    """One version's buffered stats, merged in place: adding a window costs that window's
    requests, not a copy of everything buffered (it runs per window per model)."""

    __slots__ = ("requests", "errors", "buckets", "quality", "raw", "raw_n")

    def __init__(self) -> None:
        self.requests = self.errors = self.raw_n = 0
        self.buckets: dict[int, int] = {}
        self.quality: dict[str, float] = {}
        self.raw: list[Any] = []
        """Latency arrays (ms) not yet folded into ``buckets``."""

    def add(self, stats: UsageStats) -> None:
        if stats.quality or self.quality:
            self.quality = _merged_quality(self.quality, self.requests, stats.quality, stats.requests)
        self.requests += stats.requests
        self.errors += stats.errors
        self._add_buckets(stats.latency.buckets)

    def add_latencies(self, errors: int, latencies_ms: Any) -> None:
        n = len(latencies_ms)
        self.requests += n
        self.errors += errors
        self.raw.append(latencies_ms)
        self.raw_n += n
        if self.raw_n >= FOLD_EVERY:
            self._fold()

    def stats(self) -> UsageStats:
        self._fold()
        return UsageStats(self.requests, self.errors, LatencyHistogram(dict(self.buckets)), dict(self.quality))

    def _fold(self) -> None:
        if self.raw:
            import numpy as np

            self._add_buckets(LatencyHistogram.of(np.concatenate(self.raw)).buckets)
            self.raw, self.raw_n = [], 0

    def _add_buckets(self, more: Mapping[int, int]) -> None:
        buckets = self.buckets
        for i, n in more.items():
            buckets[i] = buckets.get(i, 0) + n


class StatsStore(Protocol):
    """Where a :class:`StatsBuffer` commits: :class:`~modelmedic.registry.Registry`."""

    def check_registered(self, model: str, version: str) -> str: ...

    def commit_stats(self, batch: Mapping[tuple[str, str], UsageStats], *, now: float,
                     min_interval_s: float) -> StatsCommit: ...


class StatsBuffer:
    """Stats of (model, version) pairs between two commits, and when to commit them.

    :meth:`record` and :meth:`record_latencies` cost a dict merge or an array append (and a
    file check the first time a version is seen): they run for every reporting window of every
    model. :meth:`flush` commits everything buffered as one commit through
    :meth:`Registry.commit_stats`. Safe to record from one thread while another flushes (the
    service flushes in a worker thread: git is slow).

    >>> import tempfile
    >>> from modelmedic.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> reg = Registry.init(tmp.name)
    >>> _ = reg.register_model("demo", description="Scores demos", owners=["ds-team"],
    ...     interface={"input": {"type": "object"}, "output": {"type": "number"}})
    >>> _ = reg.add_version("demo", "1.0.0", "First release", "s3://m/demo/1.0.0", "sha256:" + "0" * 64)
    >>> buffer = StatsBuffer(reg, interval_s=60.0)
    >>> buffer.record("demo", "1.0.0", UsageStats.from_quantiles(10, errors=0, latency_p50_ms=5, latency_p95_ms=9,
    ...                                                          latency_p99_ms=12))
    >>> buffer.due(), buffer.flush(force=True), reg.stats("demo", "1.0.0").requests
    (False, True, 10)
    >>> tmp.cleanup()
    """

    def __init__(self, registry: StatsStore, *, interval_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.interval_s = interval_s
        """At most one stats commit per this many seconds, by all writers of the registry together."""
        self.clock = clock
        """Wall-clock seconds: the last commit time is shared with other processes through ``.git``."""
        self._pending: dict[tuple[str, str], _Tally] = {}
        self._known: dict[tuple[str, str], str] = {}
        """(model, version as given) -> the registered version's GTO spelling (``1.0.0`` -> ``v1.0.0``)."""
        self._lock = threading.Lock()
        self._last_commit = clock()
        """When stats were last committed, as far as this buffer knows: the first commit comes
        one interval after start, and a refused flush learns the other writer's time."""

    def record(self, model: str, version: str, stats: UsageStats | Mapping[str, Any]) -> None:
        """Merge one period of a version's stats into the buffer.

        Raises :class:`~modelmedic.errors.UnknownVersionError` (and buffers nothing) for a
        version the registry does not know, and a validation error for a malformed record.
        """
        stats = stats if isinstance(stats, UsageStats) else UsageStats.from_dict(stats)
        self._merge({(model, self._registered(model, version)): stats})

    def record_latencies(self, model: str, version: str, errors: int, latencies_ms: Any) -> None:
        """Merge one period given by every request's latency (ms, a numpy array the buffer may keep).

        The service's path: no histogram per call, the latencies are folded in every
        :data:`FOLD_EVERY` requests. Raises like :meth:`record`.
        """
        if not 0 <= errors <= len(latencies_ms):
            raise RegistryValidationError(f"{errors} errors in {len(latencies_ms)} requests: need 0 <= errors <= requests")
        key = (model, self._registered(model, version))
        with self._lock:
            tally = self._pending.get(key)
            if tally is None:
                tally = self._pending[key] = _Tally()
            tally.add_latencies(errors, latencies_ms)

    def due(self) -> bool:
        """Whether something is buffered and a flush now could commit it."""
        return bool(self._pending) and self.clock() - self._last_commit >= self.interval_s

    def flush(self, *, force: bool = False) -> bool:
        """Commit the buffer as one commit unless any writer committed stats within ``interval_s``.

        Returns whether a commit was made; when it was not, the stats stay buffered for the next
        call. ``force`` (on shutdown) commits regardless of the interval.
        """
        with self._lock:
            tallies, self._pending = self._pending, {}
        if not tallies:
            return False
        batch = {key: tally.stats() for key, tally in tallies.items()}
        try:
            result = self.registry.commit_stats(batch, now=self.clock(), min_interval_s=0.0 if force else self.interval_s)
        except BaseException:
            self._merge(batch)
            raise
        self._last_commit = result.last_commit_at
        if not result.committed:
            self._merge(batch)
        return result.committed

    def _registered(self, model: str, version: str) -> str:
        registered = self._known.get((model, version))
        if registered is None:
            registered = self._known[(model, version)] = self.registry.check_registered(model, version)
        return registered

    def _merge(self, batch: Mapping[tuple[str, str], UsageStats]) -> None:
        with self._lock:
            for key, stats in batch.items():
                tally = self._pending.get(key)
                if tally is None:
                    tally = self._pending[key] = _Tally()
                tally.add(stats)

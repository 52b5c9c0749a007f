"""Usage and performance stats of model versions: the record, and the one buffer between production and git.

Production reports stats once per window per model; git takes a commit a few times a second at
best. :class:`StatsBuffer` merges reports in memory and commits them in bulk, at most once per
``interval_s`` across every writer of the registry (the throttle is the registry's stamp in
``.git``, so N replicas together still commit once per interval).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from modelmedic.errors import RegistryValidationError
from modelmedic.registry.records import StatsCommit
from modelmedic.registry.schema import number_map

@dataclass(frozen=True)
class UsageStats:
    """Usage and performance of one version over some period, as the service measures it.

    Roll-ups merge by request weight: counts add, rates and quality average by requests. Latency
    quantiles cannot be merged exactly from quantiles; the request-weighted mean is a close,
    documented approximation that is good enough to compare versions.

    >>> a = UsageStats(requests=100, errors=1, latency_p50_ms=10, latency_p95_ms=20, latency_p99_ms=30)
    >>> b = UsageStats(requests=300, errors=3, latency_p50_ms=20, latency_p95_ms=40, latency_p99_ms=50)
    >>> m = a.merged(b)
    >>> m.requests, m.error_rate, m.latency_p50_ms
    (400, 0.01, 17.5)
    """

    requests: int
    errors: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def merged(self, other: UsageStats) -> UsageStats:
        """Combine two periods into one, weighting every average by its request count."""
        total = self.requests + other.requests
        if total == 0:
            return replace(self, quality={**self.quality, **other.quality})

        def avg(a: float, b: float) -> float:
            return (a * self.requests + b * other.requests) / total

        quality: dict[str, float] = {}
        for k in sorted({*self.quality, *other.quality}):
            mine = self.quality.get(k, other.quality.get(k, 0.0))  # a metric one side lacks takes the other's value
            quality[k] = avg(mine, other.quality.get(k, mine))
        return UsageStats(
            requests=total,
            errors=self.errors + other.errors,
            latency_p50_ms=avg(self.latency_p50_ms, other.latency_p50_ms),
            latency_p95_ms=avg(self.latency_p95_ms, other.latency_p95_ms),
            latency_p99_ms=avg(self.latency_p99_ms, other.latency_p99_ms),
            quality=quality,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageStats:
        """Validate a stats record (from the service or from a stats file); say which field is wrong."""
        try:
            stats = cls(
                requests=int(data["requests"]),
                errors=int(data["errors"]),
                latency_p50_ms=float(data["latency_p50_ms"]),
                latency_p95_ms=float(data["latency_p95_ms"]),
                latency_p99_ms=float(data["latency_p99_ms"]),
                quality=number_map(data.get("quality", {}), "quality"),
            )
        except KeyError as exc:
            raise RegistryValidationError(f"stats record lacks {exc.args[0]!r}: give requests, errors, "
                                          "latency_p50_ms, latency_p95_ms, latency_p99_ms (quality optional)") from exc
        except (TypeError, ValueError) as exc:
            raise RegistryValidationError(f"stats record has a non-numeric field: {exc}") from exc
        if stats.requests < 0 or not 0 <= stats.errors <= max(stats.requests, 0):
            raise RegistryValidationError(
                f"stats record has requests={stats.requests}, errors={stats.errors}: need 0 <= errors <= requests"
            )
        return stats



class StatsStore(Protocol):
    """Where a :class:`StatsBuffer` commits: :class:`~modelmedic.registry.Registry`."""

    def check_registered(self, model: str, version: str) -> str: ...

    def commit_stats(self, batch: Mapping[tuple[str, str], UsageStats], *, now: float,
                     min_interval_s: float) -> StatsCommit: ...


class StatsBuffer:
    """Stats of (model, version) pairs between two commits, and when to commit them.

    :meth:`record` costs a dict merge (and a file check the first time a version is seen):
    it runs for every reporting window of every model. :meth:`flush` commits everything
    buffered as one commit through :meth:`Registry.commit_stats`. Safe to record from one
    thread while another flushes (the service flushes in a worker thread: git is slow).

    >>> import tempfile
    >>> from modelmedic.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> reg = Registry.init(tmp.name)
    >>> _ = reg.register_model("demo", description="Scores demos", owners=["ds-team"],
    ...     interface={"input": {"type": "object"}, "output": {"type": "number"}})
    >>> _ = reg.add_version("demo", "1.0.0", "First release", "s3://m/demo/1.0.0", "sha256:" + "0" * 64)
    >>> buffer = StatsBuffer(reg, interval_s=60.0)
    >>> buffer.record("demo", "1.0.0", UsageStats(requests=10, errors=0, latency_p50_ms=5, latency_p95_ms=9,
    ...                                           latency_p99_ms=12))
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
        self._pending: dict[tuple[str, str], UsageStats] = {}
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
        registered = self._known.get((model, version))
        if registered is None:
            registered = self._known[(model, version)] = self.registry.check_registered(model, version)
        self._merge({(model, registered): stats})

    def due(self) -> bool:
        """Whether something is buffered and a flush now could commit it."""
        return bool(self._pending) and self.clock() - self._last_commit >= self.interval_s

    def flush(self, *, force: bool = False) -> bool:
        """Commit the buffer as one commit unless any writer committed stats within ``interval_s``.

        Returns whether a commit was made; when it was not, the stats stay buffered for the next
        call. ``force`` (on shutdown) commits regardless of the interval.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return False
        try:
            result = self.registry.commit_stats(batch, now=self.clock(), min_interval_s=0.0 if force else self.interval_s)
        except BaseException:
            self._merge(batch)
            raise
        self._last_commit = result.last_commit_at
        if not result.committed:
            self._merge(batch)
        return result.committed

    def _merge(self, batch: Mapping[tuple[str, str], UsageStats]) -> None:
        with self._lock:
            for key, stats in batch.items():
                mine = self._pending.get(key)
                self._pending[key] = stats if mine is None else mine.merged(stats)

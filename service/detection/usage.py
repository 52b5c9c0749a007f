"""Usage and performance statistics, from closed windows into the model registry's stats buffer.

The buffer and its throttle are the registry's (:class:`modelmedic.registry.StatsBuffer`); this
adapter only turns each closed window's production series into stats records (request and error
counts, and a latency histogram of every request, so the registry's merged p95/p99 are quantiles
of all requests, not averages of per-window quantiles), and commits in a worker thread so git
never stalls the hot path. Versions the registry does not know (a test build, a typo in a model
server's config) are counted and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging

from modelmedic.detection.windows import ClosedWindow
from modelmedic.errors import RegistryError
from modelmedic.registry import Registry, StatsBuffer

log = logging.getLogger("modelmedic.detection.usage")


class UsageRollup:
    """Feeds production windows to a :class:`StatsBuffer` and flushes it off the event loop."""

    def __init__(self, registry: Registry, interval_s: float = 60.0, *, buffer: StatsBuffer | None = None) -> None:
        self.buffer = buffer if buffer is not None else StatsBuffer(registry, interval_s=interval_s)
        self.skipped: dict[tuple[str, str], str] = {}
        """Versions the registry refused, with why (reported once each, then ignored)."""

    def add(self, cw: ClosedWindow) -> None:
        """Record one closed window's production series: counts and every request's latency."""
        for i, (model, version, role) in cw.served():
            if role != "production" or (model, version) in self.skipped:
                continue
            start = int(cw.latency_start[i])
            latencies = cw.latency_ms[start:start + int(cw.count[i])].copy()  # not a view: the window's array goes
            try:
                self.buffer.record_latencies(model, version, int(cw.errors[i]), latencies)
            except RegistryError as exc:
                self.skipped[(model, version)] = str(exc)
                log.warning("usage stats of %s %s not recorded: %s", model, version, exc)

    def due(self) -> bool:
        return self.buffer.due()

    async def flush(self, *, force: bool = False) -> None:
        """Commit the buffer (in a thread: git is slow); a failed commit is logged and kept for the next try."""
        try:
            await asyncio.to_thread(self.buffer.flush, force=force)
        except RegistryError as exc:
            log.error("usage stats not committed to the registry: %s", exc)


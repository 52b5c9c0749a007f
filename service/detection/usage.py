"""Usage and performance statistics, rolled up from the stream into the model registry.

Every closed window adds its per-version request count, errors and latency quantiles to
an in-memory roll-up (vectorized per window, nothing per event). Every ``interval_s`` the
roll-up is handed to :meth:`Registry.record_stats` and flushed as **one** git commit,
in a worker thread so git never stalls the hot path; the registry itself caps commits
at one per interval across every replica. Versions the registry does not know (a test
build, a typo in a model server's config) are counted and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from modelmedic.errors import RegistryError
from modelmedic.registry import Registry, UsageStats
from modelmedic.detection.windows import ClosedWindow

log = logging.getLogger("modelmedic.detection.usage")


class UsageRollup:
    """Per (model, version) production stats between two flushes."""

    def __init__(self, registry: Registry, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self.clock = clock
        self.pending: dict[tuple[str, str], UsageStats] = {}
        self.skipped: dict[tuple[str, str], str] = {}
        """Versions the registry refused, with why (reported once each)."""
        self._last_flush = clock()

    def add(self, cw: ClosedWindow) -> None:
        """Fold one closed window's production series in."""
        for i, (model, version, role) in cw.served():
            if role != "production":
                continue
            stats = UsageStats(requests=int(cw.count[i]), errors=int(cw.errors[i]), latency_p50_ms=float(cw.p50[i]),
                               latency_p95_ms=float(cw.p95[i]), latency_p99_ms=float(cw.p99[i]))
            key = (model, version)
            self.pending[key] = self.pending[key].merged(stats) if key in self.pending else stats

    def due(self) -> bool:
        return bool(self.pending) and self.clock() - self._last_flush >= self.interval_s

    async def flush(self, *, force: bool = False) -> None:
        """Hand the roll-up to the registry and commit it (in a thread: git is slow)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        self._last_flush = self.clock()
        await asyncio.to_thread(self._commit, pending, force)

    def _commit(self, pending: dict[tuple[str, str], UsageStats], force: bool) -> None:
        for (model, version), stats in pending.items():
            if (model, version) in self.skipped:
                continue
            try:
                self.registry.record_stats(model, version, stats)
            except RegistryError as exc:
                self.skipped[(model, version)] = str(exc)
                log.warning("usage stats of %s %s not recorded: %s", model, version, exc)
        try:
            self.registry.flush(force=force)
        except RegistryError as exc:
            log.error("usage stats not committed to the registry: %s", exc)

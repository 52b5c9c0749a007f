"""A probe of the event loop's responsiveness: the longest time it went without running a task.

aiokafka's heartbeats, the HTTP status page and every timer run on the loop; work that holds
it longer than the consumer group's session timeout gets the consumer thrown out of its
group. Tests run the work under ``async with LoopLag() as lag:`` and bound ``lag.longest_cpu``:
the CPU time of the longest stretch, which is what the code under test controls; ``lag.longest``
(wall time) also counts the time other processes of a busy machine held the core.
"""

from __future__ import annotations

import asyncio
import time


class LoopLag:
    """Records the longest gap between two turns of a task that yields at every turn."""

    def __init__(self) -> None:
        self.longest = 0.0
        """Seconds, the longest the loop went without running the probe (wall time)."""
        self.longest_cpu = 0.0
        """CPU seconds this thread spent in the longest such stretch (by CPU time): the work that held the loop."""
        self.turns = 0
        """How many times the probe ran: at least the number of times the work under test yielded."""
        self._stop = False
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        await asyncio.sleep(0)  # the probe runs from here on
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        if self._task is not None:
            await self._task

    async def _probe(self) -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not self._stop:
            await asyncio.sleep(0)
            now, now_cpu = time.perf_counter(), time.thread_time()
            self.longest, last = max(self.longest, now - last), now
            self.longest_cpu, last_cpu = max(self.longest_cpu, now_cpu - last_cpu), now_cpu
            self.turns += 1

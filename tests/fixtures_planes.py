"""Running a plane for the length of a block, as the service runs it: the integration tests' way in.

Plain helpers (no fixtures): a test builds its detection or response plane with the settings
and collaborators it is about, then runs it here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol


class Plane(Protocol):
    """What the service's planes have in common: ``run`` until ``stop`` is set, ``ready`` once they serve."""

    ready: asyncio.Event

    async def run(self, stop: asyncio.Event) -> None: ...


@contextlib.asynccontextmanager
async def running(plane: Plane, *, timeout: float = 30.0) -> AsyncIterator[asyncio.Task]:
    """Run ``plane`` until the block ends: enter once it is ready (its task is yielded, to check it still
    runs), and on leaving stop it and wait for it to end, each within ``timeout`` seconds."""
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        await asyncio.wait_for(plane.ready.wait(), timeout)
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout)

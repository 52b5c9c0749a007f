"""An asyncio event loop on a virtual clock, for tests of code that times itself with ``loop.time()``.

Latencies measured on the wall clock depend on how busy the machine is: the certification load generator's
steps measure each request from when it was due, so a test process starved for 200 ms on a loaded CI machine
records a 200 ms request the fake server answered at once. On this loop the clock moves only when every task
waits on a timer, and then straight to the next timer: ``asyncio.sleep(0.3)`` takes exactly 0.3 s of loop
time and no wall time, and work between timers takes none, however slow the machine.

Only for code whose waits are timers and in-memory transports (``httpx.MockTransport``): a wait on a socket
or another thread with a timer pending would see the clock jump past it.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` starts at 0 and advances by the select timeout when nothing is ready."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        poll = self._selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready = poll(0)
            if ready or timeout is None:  # I/O to handle, or no timer to jump to: wait as a real loop would
                return ready or poll(None)
            self._virtual_now += timeout  # only timers left: the next one is due now
            return []

        self._selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._virtual_now

    def hold(self, seconds: float) -> None:
        """Stand for work that blocks the loop ``seconds`` (``time.sleep`` on the wall clock): the clock moves and
        no callback runs meanwhile."""
        self._virtual_now += seconds


def run_in_virtual_time(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` (a sync test calls this, not pytest-asyncio)."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)

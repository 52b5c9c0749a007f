"""One retry policy for every outbound call: alert sinks (HTTP) and the Kubernetes API.

Both talk to a server that is most likely busy exactly when modelmedic needs it (an
incident), so both back off the same way: bounded exponential steps with jitter, and a
server's ``Retry-After`` hint honoured up to a cap.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; ``sleep`` and ``jitter`` are injectable for tests.

    A call is tried at most ``attempts`` times. Before try ``n + 1`` it waits between half
    and all of ``min(max_delay_s, base_delay_s * 2**n)``: the random half spreads replicas
    that failed together, the fixed half keeps a floor. A server's ``Retry-After`` wins over
    the backoff, capped at ``max_retry_after_s`` so one misbehaving endpoint cannot park a
    call for an hour.

    >>> policy = RetryPolicy(attempts=4, base_delay_s=0.5, max_delay_s=1.5, jitter=lambda: 0.5)
    >>> [policy.backoff(n) for n in range(4)]
    [0.375, 0.75, 1.125, 1.125]
    """

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 5.0
    max_retry_after_s: float = 30.0
    sleep: Callable[[float], Awaitable[object]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)
    """Uniform in [0, 1)."""

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try ``attempt`` (from 0)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return ceiling / 2 + self.jitter() * ceiling / 2

    def retry_after(self, header: str | None, now: float) -> float | None:
        """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), capped; None if absent or unparsable."""
        if not header:
            return None
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(header).timestamp() - now
            except (TypeError, ValueError):
                return None
        if math.isnan(seconds):
            return None
        return min(max(seconds, 0.0), self.max_retry_after_s)

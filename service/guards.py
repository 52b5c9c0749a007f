"""Guard rails on automatic remediation: cooldowns, hourly caps, concurrency, storms.

Pure logic with the clock passed in (epoch ms), so every rule is tested exactly and the
state can be rebuilt from the incident history after a restart.

- **cooldown**: after acting on a model, leave it alone for ``cooldown_s``; a second
  action on top of one that has not had time to work makes things worse.
- **hourly cap**: at most ``max_actions_per_hour`` actions per model in any hour.
- **concurrency**: at most ``max_concurrent`` remediations in flight service-wide.
- **storm**: when ``storm_models`` distinct models open incidents within
  ``storm_window_s``, the cause is shared (a network, a feature store, Kafka itself):
  page once with the list and remediate none of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class GuardRails:
    cooldown_s: float = 300.0
    max_actions_per_hour: int = 6
    max_concurrent: int = 5
    storm_models: int = 10
    storm_window_s: float = 60.0
    _actions: dict[str, deque[int]] = field(default_factory=dict)
    _opened: deque[tuple[int, str]] = field(default_factory=deque)
    in_flight: int = 0

    def refusal(self, model: str, now_ms: int) -> str | None:
        """Why an action on ``model`` may not run now, or None if it may."""
        if self.in_flight >= self.max_concurrent:
            return f"{self.in_flight} remediations already running (max_concurrent={self.max_concurrent})"
        history = self._actions.get(model, deque())
        while history and history[0] <= now_ms - 3_600_000:
            history.popleft()
        if history and now_ms - history[-1] < self.cooldown_s * 1000:
            wait = self.cooldown_s - (now_ms - history[-1]) / 1000
            return f"{model} was acted on {(now_ms - history[-1]) / 1000:.0f}s ago (cooldown {self.cooldown_s:g}s, {wait:.0f}s left)"
        if len(history) >= self.max_actions_per_hour:
            return f"{model} already had {len(history)} actions this hour (max_actions_per_hour={self.max_actions_per_hour})"
        return None

    def acted(self, model: str, now_ms: int) -> None:
        """Record an action (also used to replay history after a restart)."""
        self._actions.setdefault(model, deque()).append(now_ms)

    def storm(self, model: str, now_ms: int) -> list[str] | None:
        """Record a new incident on ``model``; the models of the storm if this makes one."""
        self._opened.append((now_ms, model))
        while self._opened and self._opened[0][0] < now_ms - self.storm_window_s * 1000:
            self._opened.popleft()
        models = sorted({m for _, m in self._opened})
        return models if len(models) >= self.storm_models else None

"""Guard rails on remediation, automatic or by hand: cooldowns, hourly caps, concurrency, storms.

Pure logic with the clock passed in (epoch ms), so every rule is tested exactly
(tests/unit/test_guards.py) and the state can be rebuilt from the incident history after a
restart. They hold for every playbook run, automatic or by hand (tests/integration/test_guard_rails.py).

- **cooldown**: after acting on a model, leave it alone for ``cooldown_s``; a second
  action on top of one that has not had time to work makes things worse.
- **hourly cap**: at most ``max_actions_per_hour`` actions per model in any hour.
- **concurrency**: at most ``max_concurrent`` remediations in flight service-wide.
- **storm**: when ``storm_models`` distinct models' problems start within
  ``storm_window_s``, the cause is shared (a network, a feature store, Kafka itself):
  page once with the list and remediate none of them (judged in event time, with a hold:
  :mod:`modelmedic.response.storms`).
"""

from __future__ import annotations

from collections import deque

from modelmedic.errors import ModelmedicError
from modelmedic.response.policy import GuardRails


class GuardRailRefused(ModelmedicError):
    """A playbook run by hand was refused by a guard rail; the message says which and when it lifts."""


class Guards:
    """The state behind the policy's :class:`~modelmedic.policy.GuardRails`."""

    def __init__(self, rails: GuardRails) -> None:
        self.rails = rails
        self._actions: dict[str, deque[tuple[int, str]]] = {}
        """model -> (time, incident id) of each action that changed something."""
        self.in_flight = 0

    def admit(self, model: str, incident_id: str, now_ms: int, *, manual: bool = False) -> str | None:
        """Why a run on ``model`` for ``incident_id`` may not start now; None if it may, and then
        it holds one of the ``max_concurrent`` slots until :meth:`release`."""
        refusal = self.refusal(model, incident_id, now_ms, manual=manual)
        if refusal is None:
            self.in_flight += 1
        return refusal

    def occupy(self) -> None:
        """Hold a slot without asking (a run admitted before a restart, resumed)."""
        self.in_flight += 1

    def release(self) -> None:
        """A run admitted by :meth:`admit` or :meth:`occupy` ended."""
        self.in_flight -= 1

    def refusal(self, model: str, incident_id: str, now_ms: int, *, manual: bool = False) -> str | None:
        """Why an action on ``model`` for ``incident_id`` may not run now, or None if it may.

        For automatic runs the cooldown is about *other* incidents: the next playbook of the
        same incident comes after its own verification window, by design. A run by hand has
        no such window, so every earlier action on the model counts.
        """
        if self.in_flight >= self.rails.max_concurrent:
            return f"{self.in_flight} remediations already running (max_concurrent={self.rails.max_concurrent})"
        history = self._actions.get(model, deque())
        while history and history[0][0] <= now_ms - 3_600_000:
            history.popleft()
        others = [t for t, incident in history if manual or incident != incident_id]
        if others and now_ms - others[-1] < self.rails.cooldown_s * 1000:
            ago = (now_ms - others[-1]) / 1000
            return f"{model} was acted on {ago:.0f}s ago (cooldown {self.rails.cooldown_s:g}s, {self.rails.cooldown_s - ago:.0f}s left)"
        if len(history) >= self.rails.max_actions_per_hour:
            return f"{model} already had {len(history)} actions this hour (max_actions_per_hour={self.rails.max_actions_per_hour})"
        return None

    def acted(self, model: str, incident_id: str, now_ms: int) -> None:
        """Record an action that changed something (also replayed from history after a restart
        or a rebalance, which may replay one already recorded: it counts once)."""
        actions = self._actions.setdefault(model, deque())
        if (now_ms, incident_id) not in actions:
            actions.append((now_ms, incident_id))

"""Storms in event time: many models anomalous together page once, before any of them does.

Pure logic with both clocks passed in (unit-tested in tests/unit/test_storms.py). A storm
is ``storm_models`` distinct models whose incidents fired (the firing anomaly's
``window_end``) within ``storm_window_s`` of each other **in event time**, so a backlog
drained in one second is judged by when its anomalies happened, not by when they were
read: unrelated alarms hours apart never form a storm, and ten models failing in the same
minute do, however fast or slow they arrive.

So that a storm pages once before any member pages, a new incident is *held* (no page, no
playbook) until event time passes its firing by ``storm_hold_s``. Event time is the latest
``window_end`` seen, moved on by the wall clock while no anomaly advances it
(:meth:`StormWatch.now`): during catch-up anomalies carry it forward fast; live, and after
a backlog ends, the wall clock carries it, so a lone incident is paged ``storm_hold_s``
after it fired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelmedic.events import stable_id
from modelmedic.response.incidents import Incident
from modelmedic.response.policy import GuardRails


@dataclass
class Storm:
    """An open storm: its incident id and the event-time span of its members' firings."""

    id: str
    first_ms: int
    last_ms: int


class StormWatch:
    """Which new incidents make a storm, which join one, and when a held one may page."""

    def __init__(self, rails: GuardRails) -> None:
        self.rails = rails
        self.window_ms = int(rails.storm_window_s * 1000)
        self.hold_ms = int(rails.storm_hold_s * 1000)
        self.watermark_ms = 0
        """The latest event time an anomaly carried."""
        self._advanced_at_ms = 0
        """Wall clock when the watermark last moved."""
        self._fired: list[tuple[int, str]] = []
        """(event time, model) of recent new incidents."""
        self.storms: list[Storm] = []
        """Open storms (the response plane drops a storm when it resolves)."""

    @classmethod
    def rebuilt(cls, rails: GuardRails, incidents: Iterable[Incident], wall_ms: int) -> StormWatch:
        """The watch as the incidents left it (after a restart or a rebalance): event time,
        recent firings and open storms (incidents of model ``*``)."""
        watch = cls(rails)
        ordered = sorted((i for i in incidents if i.fired_at_ms), key=lambda i: i.fired_at_ms)
        for incident in ordered:
            watch.observe(incident.fired_at_ms, wall_ms)
            if incident.model != "*":
                watch.fired(incident.model, incident.fired_at_ms)
        for storm in (i for i in ordered if i.model == "*" and i.active):
            fired = [m.fired_at_ms for m in ordered if m.storm == storm.id] or [storm.fired_at_ms]
            watch.storms.append(Storm(storm.id, min(fired), max(fired)))
        return watch

    def observe(self, event_ms: int, wall_ms: int) -> None:
        """An anomaly record carried event time ``event_ms``."""
        if event_ms > self.watermark_ms:
            self.watermark_ms, self._advanced_at_ms = event_ms, wall_ms
            horizon = event_ms - 2 * self.window_ms - self.hold_ms
            self._fired = [(t, m) for t, m in self._fired if t >= horizon]

    def now(self, wall_ms: int) -> int:
        """Event time now: the watermark, moved on by the wall clock since it last moved."""
        return self.watermark_ms + max(0, wall_ms - self._advanced_at_ms)

    def due(self, fired_ms: int, wall_ms: int) -> bool:
        """Has a held incident that fired at ``fired_ms`` waited out the hold?"""
        return self.now(wall_ms) >= fired_ms + self.hold_ms

    def storm_of(self, fired_ms: int) -> Storm | None:
        """The open storm an incident firing at ``fired_ms`` belongs to (within the storm window of its span)."""
        for storm in self.storms:
            if storm.first_ms - self.window_ms <= fired_ms <= storm.last_ms + self.window_ms:
                return storm
        return None

    def fired(self, model: str, fired_ms: int) -> list[str] | None:
        """Record a new incident of ``model``; the models of the storm it completes, if it does.

        Any ``storm_window_s`` span of event time containing ``fired_ms`` with
        ``storm_models`` distinct models is a storm; arrival order does not matter.
        """
        self._fired.append((fired_ms, model))
        near = sorted((t, m) for t, m in self._fired if abs(t - fired_ms) <= self.window_ms)
        for start, _ in near:
            if start > fired_ms:
                break
            members = {m for t, m in near if start <= t <= start + self.window_ms}
            if len(members) >= self.rails.storm_models:
                return sorted(members)
        return None

    def open_storm(self, role: str, members_fired_ms: list[int]) -> Storm:
        """A storm formed: its id follows from its first member's event time, so every replica
        and every replay names it the same."""
        first, last = min(members_fired_ms), max(members_fired_ms)
        storm = Storm("storm-" + stable_id("storm", role, first), first, last)
        self.storms.append(storm)
        return storm

    def joined(self, storm: Storm, fired_ms: int) -> None:
        storm.first_ms, storm.last_ms = min(storm.first_ms, fired_ms), max(storm.last_ms, fired_ms)

    def ended(self, storm_id: str) -> None:
        self.storms = [s for s in self.storms if s.id != storm_id]

"""Storm incidents: many models anomalous together are one incident, paged once, remediated nowhere.

:class:`StormHandling` is a part of :class:`~modelmedic.response.plane.ResponsePlane` (a mixin:
the plane's book, storm watch and Kafka writes are its own), kept apart so the plane reads as
one incident's course; *when* incidents form a storm is :mod:`modelmedic.response.storms`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmedic.response.incidents import Incident, IncidentBook
from modelmedic.response.storms import Firing, Storm, StormWatch

if TYPE_CHECKING:
    from modelmedic.response.delivery import Courier


class StormHandling:
    """Opening, joining and ending storm incidents; every attribute below is the plane's own."""

    book: IncidentBook
    storms: StormWatch
    courier: Courier
    clock: Callable[[], int]

    if TYPE_CHECKING:  # the plane's own, declared for the type checker
        async def _save(self, incident: Incident) -> None: ...
        async def _audit(self, incident: Incident, action: str, details: dict, actor: str = "modelmedic") -> None: ...
        def _owe(self, incident: Incident, status: str) -> bool: ...

    async def _start_storm(self, incident: Incident, models: list[str]) -> Incident:
        """``models``' problems started within the storm window (event time): one storm incident,
        one page, no per-model remediation. ``incident`` made it (the member that completed it, or
        the held one whose wait ended with a quorum held: :meth:`StormWatch.quorum_of`). Held
        incidents of those models join it without a page, and so do other held incidents the storm
        takes (:meth:`StormWatch.onset_in`: a sparse member whose onset was estimated minutes early
        fired before the storm formed). Returns the storm's incident, held for ``storm_hold_s``."""
        window = self.storms.window_ms
        open_held = [i for i in self.book.open_incidents() if i.held and i.model != "*" and i is not incident]
        makers = [i for i in open_held if i.model in models and abs(i.opened_at_ms - incident.opened_at_ms) <= window]
        storm = self.storms.open_storm(incident.role, [Firing.of(i) for i in [*makers, incident]])
        held = makers + [i for i in open_held if i not in makers and self.storms.onset_in(storm, Firing.of(i)) is not None]
        record = Incident(  # (fired_at_ms: its page waits out the hold from the member that made it a storm)
            id=storm.id, series=f"*/*/{incident.role}", model="*", version="*", role=incident.role,
            anomaly_class=incident.anomaly_class, kinds=["storm"], firing=["storm"], anomaly_ids=[], summary="",
            evidence={}, opened_at_ms=storm.first_ms, fired_at_ms=incident.fired_at_ms, created_at_ms=self.clock(),
        )
        self.book.load(record)
        for member in [*held, incident]:
            await self._join_storm(member, storm)
        record.members = sorted(set(record.members) | set(models))
        self._describe_storm(record)
        record.held = True  # its page waits out the hold too: members arriving meanwhile are in it
        await self._save(record)
        return record

    async def _join_storm(self, incident: Incident, storm: Storm) -> None:
        """Paged through the storm: the incident owes no page of its own and runs no playbook."""
        self.storms.joined(storm, Firing.of(incident))
        incident.held = False
        incident.storm = storm.id
        await self._save(incident)
        await self._audit(incident, "storm-member", {"storm": storm.id})
        record = self.book.by_id[storm.id]
        record.members = sorted(set(record.members) | {incident.model})
        self._describe_storm(record)
        await self._save(record)

    def _describe_storm(self, storm: Incident) -> None:
        storm.summary = (f"{len(storm.members)} models anomalous, their problems starting within {self.storms.rails.storm_window_s:g}s: "
                         f"suspect a shared cause; no per-model remediation ({', '.join(storm.members[:20])})")
        storm.evidence = {"models": storm.members}

    async def _maybe_end_storm(self, storm_id: str) -> None:
        storm = self.book.by_id.get(storm_id)
        if storm is None or not storm.active:
            return
        members = [i for i in self.book.by_id.values() if i.storm == storm_id]
        if members and all(not m.active for m in members):
            self.storms.ended(storm_id)
            self.book.close(storm, f"resolved: all {len(members)} models of the storm recovered", self.clock())
            self._owe(storm, "resolved")
            await self._save(storm)
            await self._audit(storm, "resolved", {"resolution": storm.resolution})
            self.courier.dispatch(storm)

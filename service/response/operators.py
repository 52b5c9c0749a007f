"""What a person does to an incident: acknowledge, resolve, silence, run a playbook by hand.

:class:`OperatorActions` is a part of :class:`~modelmedic.response.plane.ResponsePlane`
(a mixin: the plane's lock, book, guards and Kafka writes are its own), kept in its own
module so the plane's automatic course (anomalies in, pages and playbooks out) reads apart
from what people ask of it. Every action is saved to the incident topic and audited under
the person's name before its effect leaves the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmedic.errors import NotOwnedError
from modelmedic.remediations import Outcome, PlaybookRegistry, idempotency_key
from modelmedic.response.guards import GuardRailRefused, Guards
from modelmedic.response.incidents import Attempt, Incident, IncidentBook

if TYPE_CHECKING:
    from modelmedic.response.delivery import Courier


class OperatorActions:
    """The plane's operator actions; every attribute below is the plane's own."""

    book: IncidentBook
    guards: Guards
    playbooks: PlaybookRegistry
    courier: Courier
    clock: Callable[[], int]
    dry_run: bool
    _lock: asyncio.Lock

    if TYPE_CHECKING:  # the plane's own, declared for the type checker
        async def _save(self, incident: Incident) -> None: ...
        async def _audit(self, incident: Incident, action: str, details: dict, actor: str = "modelmedic") -> None: ...
        def _owe(self, incident: Incident, status: str) -> bool: ...
        def _owns(self, incident: Incident) -> bool: ...
        async def _run_attempt(self, incident: Incident, attempt: Attempt) -> Outcome: ...

    async def acknowledge(self, incident_id: str, by: str, via: str = "modelmedic") -> Incident:
        """A person took it (``via``: where they acknowledged it, modelmedic or PagerDuty): no more
        automatic remediation or timed escalation, and every sink that heard the page is told
        (PagerDuty's incident is acknowledged, Slack and Alertmanager say who took it)."""
        incident = self._get(incident_id)
        async with self._lock:
            incident.acknowledge(by, self.clock())
            self._owe(incident, "acknowledged")
            await self._save(incident)
            await self._audit(incident, "acknowledged", {"via": via}, actor=by)
            self.courier.dispatch(incident)
        return incident

    async def resolve(self, incident_id: str, by: str, via: str = "modelmedic") -> Incident:
        """Resolved by a person (in modelmedic or at PagerDuty): the resolve goes to every sink that heard the page."""
        incident = self._get(incident_id)
        async with self._lock:
            if not incident.active:
                return incident
            self.book.close(incident, f"resolved by {by}", self.clock())
            self._owe(incident, "resolved")
            await self._save(incident)
            await self._audit(incident, "resolved", {"resolution": incident.resolution, "via": via}, actor=by)
            self.courier.dispatch(incident)
        return incident

    async def silence(self, incident_id: str, minutes: float, by: str) -> Incident:
        incident = self._get(incident_id)
        async with self._lock:
            incident.silenced_until_ms = self.clock() + int(minutes * 60_000)
            incident.cancel_firing()
            await self._save(incident)
            await self._audit(incident, "silenced", {"minutes": minutes}, actor=by)
        return incident

    async def trigger(self, incident_id: str, playbook: str, params: dict, by: str) -> Outcome:
        """Run a playbook by hand on an incident's target. Every guard rail applies (cooldown,
        counting this incident's own actions too; hourly cap; max_concurrent; the global
        dry run); a refusal raises :class:`GuardRailRefused` saying which."""
        incident = self._get(incident_id)
        self.playbooks.validate(playbook, params)
        attempt = Attempt(playbook=playbook, key=idempotency_key(incident.id, playbook, 1000 + len(incident.attempts)),
                          at=self.clock(), params=params, by=by)
        refusal = self.guards.admit(incident.model, incident.id, self.clock(), manual=True)
        if refusal is not None:
            await self._audit(incident, "guard-rail", {"refused": refusal, "playbook": playbook}, actor=by)
            raise GuardRailRefused(f"{playbook} on incident {incident.id} refused by a guard rail: {refusal}; "
                                   "wait until it lifts, or change guard_rails in the policy")
        try:
            async with self._lock:
                incident.record_manual(attempt)
                await self._save(incident)
                await self._audit(incident, "playbook-start", {"playbook": playbook, "params": params,
                                                               "dry_run": self.dry_run}, actor=by)
            outcome = await self._run_attempt(incident, attempt)
        finally:
            self.guards.release()
        async with self._lock:
            attempt.finish(outcome.status, outcome.message)
            if outcome.acted:
                self.guards.acted(incident.model, incident.id, self.clock())
            await self._save(incident)
            await self._audit(incident, "playbook-end", {"playbook": playbook, "status": outcome.status,
                                                         "message": outcome.message}, actor=by)
        return outcome

    def _get(self, incident_id: str) -> Incident:
        incident = self.book.by_id.get(incident_id)
        if incident is None:
            raise KeyError(f"no incident {incident_id!r}: list them with GET /api/v1/incidents")
        if not self._owns(incident):
            raise NotOwnedError(f"incident {incident_id} belongs to another replica (its model's partition); "
                                "retry: the request will reach the owner, or call the owning pod directly")
        return incident

"""One incident's remediation: the rule's playbooks in order, each written as started before it runs.

:class:`Remediation` is a part of :class:`~modelmedic.response.plane.ResponsePlane` (a mixin:
the plane's book, guard rails, playbooks and Kafka writes are its own), kept apart so the plane
reads as one incident's course. The write order is what makes a crash safe: an attempt is
saved before its playbook runs (so a restart resumes it under the same idempotency key and
the playbook recognises a replay), and its outcome is saved before verification starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, idempotency_key, run_playbook
from modelmedic.response.guards import Guards
from modelmedic.response.incidents import Attempt, Incident
from modelmedic.response.policy import Policy, Rule

if TYPE_CHECKING:
    from modelmedic.alerting import Alerter
    from modelmedic.kube import KubeClient
    from modelmedic.registry import Registry
    from modelmedic.response.silences import Silence


class Remediation:
    """Running, resuming and finishing playbooks for an incident; every attribute below is the plane's own."""

    guards: Guards
    policy: Policy
    playbooks: PlaybookRegistry
    k8s: KubeClient | None
    registry: Registry | None
    alerter: Alerter
    dry_run: bool
    clock: Callable[[], int]
    _lock: asyncio.Lock

    if TYPE_CHECKING:  # the plane's own, declared for the type checker
        async def _save(self, incident: Incident) -> None: ...
        async def _audit(self, incident: Incident, action: str, details: dict, actor: str = "modelmedic") -> None: ...
        async def _escalate(self, incident: Incident, reason: str) -> None: ...
        def _rule(self, incident: Incident) -> Rule: ...
        def _silence(self, incident: Incident, *, pausing: bool) -> Silence | None: ...

    @staticmethod
    def _remediable(incident: Incident) -> bool:
        """Automatic remediation goes on only while nobody took the incident and it is not resolved."""
        return incident.active and incident.state not in ("escalated", "acknowledged")

    async def _remediate(self, incident: Incident, *, resume: bool = False) -> None:
        """Run the rule's next playbook; on success verify, otherwise try the next or escalate."""
        rule = self._rule(incident)
        while self._remediable(incident):
            if resume:
                self.guards.occupy()  # admitted before the restart
            else:
                if incident.next_step >= len(rule.playbooks):
                    await self._escalate(incident, "no playbook restored the series")
                    return
                paused = self._silence(incident, pausing=True)
                if paused is not None:  # (a maintenance window that began since the incident opened)
                    await self._escalate(incident, f"automatic remediation paused by {paused.describe()}")
                    return
                refusal = self.guards.admit(incident.model, incident.id, self.clock())
                if refusal is not None:
                    await self._audit(incident, "guard-rail", {"refused": refusal})
                    await self._escalate(incident, f"automatic remediation held back: {refusal}")
                    return
            try:
                attempt = incident.attempts[-1] if resume else await self._start_next(incident, rule)
                if attempt is None:
                    return
                outcome = await self._run_attempt(incident, attempt)
            finally:
                self.guards.release()
            resume = False
            async with self._lock:
                attempt.finish(outcome.status, outcome.message)
                if outcome.acted:
                    self.guards.acted(incident.model, incident.id, self.clock())
                await self._audit(incident, "playbook-end", {"playbook": attempt.playbook, "status": outcome.status,
                                                             "message": outcome.message, "details": outcome.details})
                replayed = outcome.status == "skipped" and outcome.details.get("idempotency_key") == attempt.key
                if self._remediable(incident) and (outcome.status in ("done", "dry_run") or replayed):
                    # (replayed: it acted before a crash)
                    incident.verify(self.clock() + int(rule.verify_s * 1000))
                    await self._save(incident)
                    return  # tick() takes it from here
                await self._save(incident)

    async def _start_next(self, incident: Incident, rule: Rule) -> Attempt | None:
        """Write the rule's next playbook run as started (before it runs); None if the incident
        was taken or resolved meanwhile."""
        step = rule.playbooks[incident.next_step]
        attempt = Attempt(playbook=step.name, key=idempotency_key(incident.id, step.name, incident.next_step),
                          at=self.clock(), step=incident.next_step, params=step.params)
        async with self._lock:
            if not self._remediable(incident):
                return None
            incident.start_attempt(attempt)
            await self._save(incident)
            await self._audit(incident, "playbook-start", {"playbook": step.name, "params": step.params,
                                                           "idempotency_key": attempt.key, "dry_run": self.dry_run})
        return attempt

    async def _run_attempt(self, incident: Incident, attempt: Attempt) -> Outcome:
        if self.k8s is None:
            return Outcome.failed("no Kubernetes access configured (kubernetes.kubeconfig or kubernetes.in_cluster)")
        try:
            pb = self.playbooks.get(attempt.playbook)
        except Exception as exc:  # an unknown or broken plugin is reported, never fatal
            return Outcome.failed(str(exc))
        ctx = PlaybookContext(
            k8s=self.k8s, target=self.policy.target(incident.model, incident.version, incident.role),
            incident_id=incident.id, anomaly_class=incident.anomaly_class, kind=incident.kinds[0],
            evidence=incident.evidence, dry_run=self.dry_run, idempotency_key=attempt.key,
            registry=self.registry, alerter=self.alerter,
        )
        return await run_playbook(pb, ctx, attempt.params)

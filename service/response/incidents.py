"""Incidents: one per problem, from the first anomaly to resolution.

:class:`IncidentBook` is the pure logic (no I/O, unit-tested): an anomaly record either
opens an incident, joins the open incident of the same series and class, is a replay of
one already seen (ignored), or recovers one. The response plane
(:mod:`modelmedic.response.plane`) runs it on the anomalies topic, drives each incident
through its lifecycle and keeps every incident in a compacted Kafka topic.

Lifecycle::

    open ──► remediating ──► verifying ──► resolved
      │            │  (next playbook) ▲        ▲
      │            ▼                  │        │
      └──────► escalated (level k) ──► acknowledged
"""

from __future__ import annotations

from typing import Literal

import msgspec

from modelmedic.alerting import Alert
from modelmedic.events import Anomaly

State = Literal["open", "remediating", "verifying", "escalated", "acknowledged", "resolved"]

SEVERITY = {"latency": "critical", "throughput": "critical", "prediction": "error", "drift": "warning"}


class Incident(msgspec.Struct):
    """One problem of one series, from first anomaly to recovery."""

    id: str
    series: str
    model: str
    version: str
    role: str
    anomaly_class: str
    kinds: list[str]
    firing: list[str]
    """Kinds still anomalous; the incident resolves when this empties."""
    anomaly_ids: list[str]
    summary: str
    evidence: dict
    opened_at_ms: int
    state: State = "open"
    resolved_at_ms: int | None = None
    pending: Literal["firing", "resolved"] | None = None
    """The alert this incident owes (written before sending, cleared after)."""
    alerted: list[str] = msgspec.field(default_factory=list)
    """Alerts already delivered: ``firing`` and/or ``resolved``."""
    escalation_level: int = 0
    resolution: str = ""
    """What the recovery looked like (the recovered anomaly's sentence)."""
    attempts: list[dict] = msgspec.field(default_factory=list)
    """Playbook runs: name, idempotency key, status (``running`` until it returns), message, time."""
    next_step: int = 0
    """Index of the next playbook of the incident's rule to try."""
    verify_deadline_ms: int | None = None
    """While verifying: when the series must have recovered by."""
    acknowledged_by: str | None = None
    silenced_until_ms: int = 0
    """No pages (escalations included) before this time; the incident still runs."""
    storm: str | None = None
    """The storm incident this one belongs to: a shared cause, paged once for all."""
    members: list[str] = msgspec.field(default_factory=list)
    """For a storm incident: the models caught in it."""
    escalation_reason: str = ""
    created_at_ms: int = 0
    """Wall-clock time the response plane opened it (``opened_at_ms`` is the anomaly's event
    time): escalation timetables run on this clock."""
    firing_anomalies: dict[str, str] = msgspec.field(default_factory=dict)
    """Anomaly id -> kind of every anomaly of this incident still firing. Several series of
    one model can fire the same kind (two versions' latency): the incident lasts until the
    last of them recovers, not the first. Empty in incidents stored before it existed."""

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    def alert(self, status: Literal["firing", "resolved"], severity: str | None = None, note: str | None = None) -> Alert:
        """The message for the sinks; the dedup key is the incident id, for its whole life."""
        evidence = {**self.evidence, "note": note} if note else self.evidence
        if self.attempts:
            evidence = {**evidence, "tried": self.tried()}
        return Alert(
            incident_id=self.id, dedup_key=f"modelmedic-{self.id}", status=status,
            severity=severity or SEVERITY.get(self.anomaly_class, "error"),
            summary=self._headline(status), model=self.model,
            version=self.version or "*", role=self.role, kind=self.kinds[0], anomaly_class=self.anomaly_class,
            escalation_level=self.escalation_level, started_at_ms=self.opened_at_ms,
            ended_at_ms=self.resolved_at_ms if status == "resolved" else None, evidence=evidence,
        )


    def _headline(self, status: str) -> str:
        if status == "resolved" and self.resolution:
            return self.resolution
        if self.escalation_level:
            return f"ESCALATED (level {self.escalation_level}): {self.summary}. {self.escalation_reason}"
        return self.summary

    def tried(self) -> str:
        """What remediation did, in one line, for pages and the audit trail."""
        return "; ".join(f"{a['playbook']}: {a['status']} ({a.get('message', '')})" for a in self.attempts) or "nothing"


def _evidence(a: Anomaly) -> dict:
    return {"kind": a.kind, "observed": a.observed, "baseline": a.baseline, "score": round(a.score, 6),
            "window_start_ms": a.window_start, "window_end_ms": a.window_end, "anomaly_id": a.id}


class IncidentBook:
    """Every incident, indexed by id, by anomaly id and by open (series, class)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Incident] = {}
        self._by_anomaly: dict[str, str] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._open_model: dict[tuple[str, str], str] = {}
        """(model, role) -> its open incident: a second symptom of the same model (its
        throughput surging while its latency climbs) is the same problem, not a new page."""

    def load(self, incident: Incident) -> None:
        """Add an incident read back from the store."""
        self.by_id[incident.id] = incident
        for aid in incident.anomaly_ids:
            self._by_anomaly[aid] = incident.id
        if incident.active:
            self._open[(incident.series, incident.anomaly_class)] = incident.id
            self._open_model.setdefault((incident.model, incident.role), incident.id)
        else:  # read back resolved (another replica resolved it): no index may still point at it
            self._forget_open(incident)

    def open_incidents(self) -> list[Incident]:
        return [self.by_id[i] for i in self._open.values()]

    def is_new(self, a: Anomaly) -> bool:
        """Would this firing record open a new incident (not a replay, not joining an open one)?"""
        return (a.id not in self._by_anomaly and (a.series, a.anomaly_class) not in self._open
                and (a.model, a.role) not in self._open_model)

    def apply(self, a: Anomaly) -> Incident | None:
        """Fold one anomaly record in; returns the incident if it changed (None: a replay)."""
        if a.state == "firing":
            if a.id in self._by_anomaly:
                return None
            open_id = self._open.get((a.series, a.anomaly_class)) or self._open_model.get((a.model, a.role))
            if open_id is not None:
                return self._join(self.by_id[open_id], a)
            return self._open_new(a)
        incident_id = self._by_anomaly.get(a.id)
        if incident_id is None:
            return None
        incident = self.by_id[incident_id]
        if incident.firing_anomalies:
            if incident.firing_anomalies.get(a.id) != a.kind:
                return None
            del incident.firing_anomalies[a.id]
            still = set(incident.firing_anomalies.values())
            incident.firing = [k for k in incident.firing if k in still]
        elif a.kind in incident.firing:  # stored before firing_anomalies: by kind
            incident.firing.remove(a.kind)
        else:
            return None
        if not incident.firing and incident.active:
            incident.state = "resolved"
            incident.resolved_at_ms = max(a.window_end, incident.opened_at_ms)
            incident.pending = "resolved"
            incident.resolution = f"resolved: {a.summary}"
            self._forget_open(incident)
        return incident

    def _open_new(self, a: Anomaly) -> Incident:
        incident = Incident(
            id=a.id, series=a.series, model=a.model, version=a.version, role=a.role, anomaly_class=a.anomaly_class,
            kinds=[a.kind], firing=[a.kind], anomaly_ids=[a.id], summary=a.summary, evidence=_evidence(a),
            opened_at_ms=a.onset, pending="firing", firing_anomalies={a.id: a.kind},
        )
        self.load(incident)
        return incident

    def _join(self, incident: Incident, a: Anomaly) -> Incident:
        incident.anomaly_ids.append(a.id)
        self._by_anomaly[a.id] = incident.id
        if a.kind not in incident.kinds:
            incident.kinds.append(a.kind)
        # Only symptoms of the incident's own series must recover before it resolves (that
        # is what remediation is verified against); another series of the same model (its
        # traffic surging while its latency climbs) is recorded as a related symptom.
        if a.series == incident.series and a.kind not in incident.firing:
            incident.firing.append(a.kind)
        if incident.firing_anomalies:  # (empty while active: stored before it existed, tracked by kind)
            incident.firing_anomalies[a.id] = a.kind
        incident.evidence.setdefault("also", []).append(_evidence(a))
        return incident

    def close(self, incident: Incident, resolution: str, now_ms: int) -> None:
        """Resolve by hand or by decision (an operator, a storm ending), owing a resolve alert."""
        if not incident.active:
            return
        incident.state = "resolved"
        incident.firing = []
        incident.firing_anomalies = {}
        incident.resolved_at_ms = max(now_ms, incident.opened_at_ms)
        incident.pending = "resolved"
        incident.resolution = resolution
        self._forget_open(incident)

    def _forget_open(self, incident: Incident) -> None:
        for index, key in ((self._open, (incident.series, incident.anomaly_class)),
                           (self._open_model, (incident.model, incident.role))):
            if index.get(key) == incident.id:
                del index[key]

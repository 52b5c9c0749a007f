"""Incidents: one per problem, alerted once, remembered across crashes.

:class:`IncidentBook` is the pure logic (no I/O, unit-tested): an anomaly record either
opens an incident, joins the open incident of the same series and class, is a replay of
one already seen (ignored), or recovers one. :class:`ResponsePlane` runs it on the
anomalies topic and keeps every incident in a compacted Kafka topic keyed by incident id.

Order of writes, so that a crash at any point neither loses nor repeats a page:

1. the incident is written with ``pending`` = the alert it owes (``firing``/``resolved``);
2. the alert is sent to every sink;
3. the incident is written again with the alert marked sent;
4. only then is the anomaly's offset committed.

A crash before 1 replays the anomaly (same id, same incident). A crash between 1 and 3
re-sends the owed alert on restart: at-least-once, and every sink dedupes it by the
incident's stable ``dedup_key`` (PagerDuty's dedup_key, Alertmanager's identical label
set, the webhook's ``Idempotency-Key``). A crash after 3 finds nothing owed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import msgspec

from modelmedic import metrics
from modelmedic.alerting import Alert, Alerter
from modelmedic.config import Settings
from modelmedic.events import Anomaly, decode_anomaly
from modelmedic.kafka import consumer as make_consumer
from modelmedic.kafka import ensure_topics, producer as make_producer, read_compacted

log = logging.getLogger("modelmedic.incidents")

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
    state: Literal["open", "resolved"] = "open"
    resolved_at_ms: int | None = None
    pending: Literal["firing", "resolved"] | None = None
    """The alert this incident owes (written before sending, cleared after)."""
    alerted: list[str] = msgspec.field(default_factory=list)
    """Alerts already delivered: ``firing`` and/or ``resolved``."""
    escalation_level: int = 0
    resolution: str = ""
    """What the recovery looked like (the recovered anomaly's sentence)."""

    def alert(self, status: Literal["firing", "resolved"]) -> Alert:
        """The message for the sinks; the dedup key is the incident id, for its whole life."""
        return Alert(
            incident_id=self.id, dedup_key=f"modelmedic-{self.id}", status=status,
            severity=SEVERITY.get(self.anomaly_class, "error"),
            summary=self.resolution if status == "resolved" and self.resolution else self.summary, model=self.model,
            version=self.version or "*", role=self.role, kind=self.kinds[0], anomaly_class=self.anomaly_class,
            escalation_level=self.escalation_level, started_at_ms=self.opened_at_ms,
            ended_at_ms=self.resolved_at_ms if status == "resolved" else None, evidence=self.evidence,
        )


def _evidence(a: Anomaly) -> dict:
    return {"kind": a.kind, "observed": a.observed, "baseline": a.baseline, "score": round(a.score, 6),
            "window_start_ms": a.window_start, "window_end_ms": a.window_end, "anomaly_id": a.id}


class IncidentBook:
    """Every incident, indexed by id, by anomaly id and by open (series, class)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Incident] = {}
        self._by_anomaly: dict[str, str] = {}
        self._open: dict[tuple[str, str], str] = {}

    def load(self, incident: Incident) -> None:
        """Add an incident read back from the store."""
        self.by_id[incident.id] = incident
        for aid in incident.anomaly_ids:
            self._by_anomaly[aid] = incident.id
        if incident.state == "open":
            self._open[(incident.series, incident.anomaly_class)] = incident.id

    def open_incidents(self) -> list[Incident]:
        return [self.by_id[i] for i in self._open.values()]

    def apply(self, a: Anomaly) -> Incident | None:
        """Fold one anomaly record in; returns the incident if it changed (None: a replay)."""
        if a.state == "firing":
            if a.id in self._by_anomaly:
                return None
            open_id = self._open.get((a.series, a.anomaly_class))
            if open_id is not None:
                return self._join(self.by_id[open_id], a)
            return self._open_new(a)
        incident_id = self._by_anomaly.get(a.id)
        if incident_id is None:
            return None
        incident = self.by_id[incident_id]
        if a.kind not in incident.firing:
            return None
        incident.firing.remove(a.kind)
        if not incident.firing and incident.state == "open":
            incident.state = "resolved"
            incident.resolved_at_ms = max(a.window_end, incident.opened_at_ms)
            incident.pending = "resolved"
            incident.resolution = f"resolved: {a.summary}"
            del self._open[(incident.series, incident.anomaly_class)]
        return incident

    def _open_new(self, a: Anomaly) -> Incident:
        incident = Incident(
            id=a.id, series=a.series, model=a.model, version=a.version, role=a.role, anomaly_class=a.anomaly_class,
            kinds=[a.kind], firing=[a.kind], anomaly_ids=[a.id], summary=a.summary, evidence=_evidence(a),
            opened_at_ms=a.onset, pending="firing",
        )
        self.load(incident)
        return incident

    def _join(self, incident: Incident, a: Anomaly) -> Incident:
        incident.anomaly_ids.append(a.id)
        self._by_anomaly[a.id] = incident.id
        if a.kind not in incident.kinds:
            incident.kinds.append(a.kind)
        if a.kind not in incident.firing:
            incident.firing.append(a.kind)
        incident.evidence.setdefault("also", []).append(_evidence(a))
        return incident


class ResponsePlane:
    """Consumes anomalies, keeps the incident book in Kafka, delivers alerts."""

    def __init__(self, settings: Settings, alerter: Alerter, *, group_id: str | None = None) -> None:
        self.settings = settings
        self.alerter = alerter
        self.group_id = group_id or f"{settings.kafka.group_id}-response"
        self.book = IncidentBook()
        self.deliveries: list[tuple[float, str, str]] = []
        """(wall time, incident id, status) of recent deliveries, for the status page and tests."""
        self.ready = asyncio.Event()
        self._producer = None

    async def run(self, stop: asyncio.Event) -> None:
        k = self.settings.kafka
        await ensure_topics(k)
        for raw in (await read_compacted(k, k.topics.incidents)).values():
            self.book.load(msgspec.json.decode(raw, type=Incident))
        metrics.OPEN_INCIDENTS.set(len(self.book.open_incidents()))
        self._producer = make_producer(k)
        consumer = make_consumer(k, k.topics.anomalies, group_id=self.group_id, fetch_max_wait_ms=10, max_poll_records=500)
        await self._producer.start()
        try:
            await consumer.start()
            await self._deliver_owed()
            self.ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        await self.handle(decode_anomaly(record.value))
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await self._producer.stop()

    async def handle(self, anomaly: Anomaly) -> None:
        incident = self.book.apply(anomaly)
        if incident is None:
            return
        transition = "resolved" if incident.pending == "resolved" else ("opened" if incident.pending else "updated")
        metrics.INCIDENTS.labels(incident.anomaly_class, transition).inc()
        metrics.OPEN_INCIDENTS.set(len(self.book.open_incidents()))
        await self._save(incident)
        if incident.pending:
            await self._deliver(incident)

    async def _deliver_owed(self) -> None:
        """Alerts a crash left owed: written as pending, never marked sent."""
        for incident in list(self.book.by_id.values()):
            if incident.pending:
                log.info("incident %s: re-sending owed %s alert after a restart", incident.id, incident.pending)
                await self._deliver(incident)

    async def _deliver(self, incident: Incident) -> None:
        status = incident.pending
        results = await self.alerter.send(incident.alert(status))
        failed = [r for r in results if not r.ok]
        if results and len(failed) == len(results):
            log.error("incident %s: %s alert reached no sink; will retry on the next change or restart", incident.id, status)
            return
        incident.alerted.append(status)
        incident.pending = None
        await self._save(incident)
        self.deliveries.append((time.time(), incident.id, status))
        del self.deliveries[:-1000]
        log.warning("incident %s %s: %s", incident.id, status, incident.summary,
                    extra={"model": incident.model, "version": incident.version, "incident_id": incident.id})

    async def _save(self, incident: Incident) -> None:
        await self._producer.send_and_wait(
            self.settings.kafka.topics.incidents, msgspec.json.encode(incident), key=incident.id.encode()
        )

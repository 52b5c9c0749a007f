"""What the response plane reads from Kafka, decoded; what it cannot read, dead-lettered.

The detection plane writes the anomalies topic and this plane the incidents topic, but
whoever may write to a topic can write anything, and a release of another contract may
(issue 17: one bad anomaly record crash-looped the service, one bad incident record left
it never ready, owning no incident). A record that does not decode goes to the
dead-letter topic with its reason and source in headers, as the detection plane's do,
is counted (``modelmedic_response_dead_letters_total{topic}``), and the plane goes on.
"""

from __future__ import annotations

import logging

import msgspec

from modelmedic import metrics
from modelmedic.config import KafkaSettings
from modelmedic.events import Anomaly, Rejected, dead_letter_headers, read_anomaly, read_state
from modelmedic.response.incidents import Incident

log = logging.getLogger("modelmedic.response.intake")

_INCIDENT = msgspec.json.Decoder(Incident)


class Intake:
    """Decodes the records the response plane consumes and dead-letters those it cannot."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._dead_incidents: set[tuple[bytes | None, int]] = set()
        """(key, hash of the value) of the incident records dead-lettered: every rebalance reads them again."""

    async def anomalies(self, producer, batch: dict) -> list[Anomaly]:
        """A fetched batch's anomaly records, in order, without the ones dead-lettered."""
        anomalies = []
        for records in batch.values():
            for record in records:
                anomaly = read_anomaly(record.value)
                if anomaly.__class__ is Rejected:
                    await self._dead_letter(producer, anomaly, record.key, record.topic, "anomalies", record.partition,
                                            record.offset)
                else:
                    anomalies.append(anomaly)
        return anomalies

    async def incidents(self, producer, latest: dict[bytes, bytes]) -> list[Incident]:
        """The incidents of the incidents topic (``latest``: its value per key); one that does not decode is
        dead-lettered once per process (the topic keeps it until its key is written again)."""
        incidents = []
        for key, raw in latest.items():
            incident = read_state(raw, _INCIDENT, "incident")
            if incident.__class__ is not Rejected:
                incidents.append(incident)
            elif (key, hash(raw)) not in self._dead_incidents:
                self._dead_incidents.add((key, hash(raw)))
                await self._dead_letter(producer, incident, key, self.kafka.topics.incidents, "incidents")
        return incidents

    async def _dead_letter(self, producer, rejected: Rejected, key: bytes | None, topic: str, kind: str,
                           partition: int | None = None, offset: int | None = None) -> None:
        """Send one record to the dead-letter topic and count it (``kind``: ``anomalies`` or ``incidents``).
        Awaited: the dead letter is in Kafka before the offset past its record is committed."""
        headers = dead_letter_headers(rejected, topic, partition, offset)
        await (await producer.send(self.kafka.topics.dlq, rejected.raw, key=key, headers=headers))
        metrics.UNREADABLE.labels(kind).inc()
        log.error("unreadable record of %s (key %r, partition %s, offset %s) sent to %s: %s", topic, key, partition,
                  offset, self.kafka.topics.dlq, rejected.reason)

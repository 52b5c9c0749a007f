"""``modelmedic replay FILE.jsonl`` emits what the live service emits for the same events (issue 13 item 1).

The same fleet (a latency step injected on one model, canaries on two) is produced to a
real Kafka topic and drained by the real detection plane, and replayed from a JSONL file
through the command: the anomaly records must be the same, ids and states, record for
record.
"""

from __future__ import annotations

import asyncio

import pytest

from fixtures_kafka import produce, read_to_end
from load.fleet import FleetSpec, Incident, generate
from modelmedic.cli import main as cli_main
from modelmedic.config import Settings
from modelmedic.detection.plane import drain
from modelmedic.events import Anomaly, decode_anomaly
from modelmedic.kafka import ensure_topics

pytestmark = pytest.mark.integration
START_MS = 1_767_225_600_000


async def read_anomalies(settings: Settings, topic: str) -> list[Anomaly]:
    """Every anomaly record of ``topic``, in offset order per partition."""
    return [decode_anomaly(r.value) for r in await read_to_end(settings, topic)]


async def test_replay_of_a_jsonl_file_emits_the_anomalies_the_live_plane_emits(settings, tmp_path):
    spec = FleetSpec(models=6, rate=20, seed=3, canary_fraction=0.1, canary_every=3)
    records = list(generate(spec, [Incident.parse("latency_spike:model-002@240+120x4")], START_MS, 480))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(value + b"\n" for _, value in records))

    await ensure_topics(settings.kafka)
    await produce(settings, settings.kafka.topics.inference, records)
    await asyncio.wait_for(drain(settings, max_records=len(records)), 180)
    live = await read_anomalies(settings, settings.kafka.topics.anomalies)

    out = tmp_path / "anomalies.jsonl"
    assert await asyncio.to_thread(cli_main, ["replay", str(events), "--partitions", str(settings.kafka.partitions),
                                              "--output", str(out)]) == 0
    replayed = [decode_anomaly(line) for line in out.read_bytes().splitlines()]

    fired = [(a.model, a.kind, a.state) for a in replayed]
    assert ("model-002", "latency", "firing") in fired, "the injected step was found: there is something to compare"
    assert sorted((a.id, a.state) for a in replayed) == sorted((a.id, a.state) for a in live)
    assert sorted((a.id, a.state, a.kind, a.window_end) for a in replayed) == \
        sorted((a.id, a.state, a.kind, a.window_end) for a in live)
    assert not any(a.kind == "throughput_drop" for a in replayed), "the file's end is no outage"

"""Partition snapshots are data, never code (issue 17, item 1).

A snapshot is restored by rebuilding plain values and objects of an allow-list of classes:
a pickle on the state topic is rejected without being loaded, so whatever it would run
never runs. A real partition's state (windows, detector baselines, episodes, the quality
monitor with its joins and drift tests) survives the round trip exactly: the restored
plane publishes the anomalies the uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from pathlib import Path

import msgspec
import numpy as np
import pytest
from aiokafka import TopicPartition

from fixtures_snapshots import code_running_pickle
from load.fleet import FleetSpec, Incident, generate
from modelmedic import metrics
from modelmedic.config import Settings, load_settings
from modelmedic.detection.packed import Packed
from modelmedic.detection.plane import DetectionPlane
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import FORMAT, VERSION, decode_snapshot, encode_snapshot
from modelmedic.errors import SnapshotRejected
from modelmedic.testing import FakeConsumer, FakeProducer, Record, offline_plane

START_MS = 1_767_225_600_000


class _SeekingConsumer(FakeConsumer):
    """A fake consumer that remembers where the plane seeks to after a restore."""

    def __init__(self) -> None:
        super().__init__()
        self.seeks: dict[TopicPartition, int] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


def _settings() -> Settings:
    return load_settings(windows={"idle_close_ms": 600_000})


def _quality(settings: Settings) -> QualityMonitor:
    return QualityMonitor(settings.windows.size_ms, settings.quality,
                          label_sample_every=settings.detection.quality_sample_every)


def _records(topic: str) -> list[Record]:
    """200 s of a fleet with canaries (the quality monitor's joins fill) and a latency incident at 120 s."""
    spec = FleetSpec(models=6, rate=30, canary_fraction=1.0, canary_every=2, seed=5)
    incidents = [Incident.parse("latency_spike:model-001@120+30x5")]
    return [Record(topic, 0, i, value, key) for i, (key, value) in enumerate(generate(spec, incidents, START_MS, 200))]


async def _feed(plane: DetectionPlane, records: list[Record]) -> None:
    for i in range(0, len(records), 500):
        chunk = records[i:i + 500]
        await plane._process({TopicPartition(chunk[0].topic, 0): chunk})


def _ids(plane: DetectionPlane) -> list[tuple[str, str]]:
    return [(a.id, a.state) for a in plane.published]


async def test_a_partition_restored_from_its_snapshot_carries_on_as_if_never_interrupted() -> None:
    settings = _settings()
    records = _records(settings.kafka.topics.inference)
    cut = len(records) // 2
    live_producer = FakeProducer()
    live = offline_plane(settings, quality=lambda: _quality(settings), producer=live_producer)
    await _feed(live, records[:cut])
    await live._checkpoint([0])
    [blob] = [value for topic, value in live_producer.sent if topic == settings.kafka.topics.state]
    assert blob[:1] != b"\x80"  # not a pickle

    consumer = _SeekingConsumer()
    restored = offline_plane(settings, partitions=0, consumer=consumer)
    restored._snapshots = {restored._snapshot_key(0): blob}
    await restored._restore([0])
    resume = consumer.seeks[TopicPartition(settings.kafka.topics.inference, 0)]
    assert 0 < resume <= cut and restored.parts[0].replay_until == cut
    assert restored.parts[0].quality is not None and restored.parts[0].quality._label_join.items

    before = len(live.published)
    await _feed(live, records[cut:])
    await _feed(restored, records[resume:])
    assert _ids(restored) == _ids(live)[before:]
    assert ("firing" in {state for _, state in _ids(restored)}), "the incident after the cut must fire"


def test_encoding_is_stable_through_a_round_trip() -> None:
    state = {"a": (1, "x", 2.5, None, True), "b": {("m", "1", "production"): 3}, "c": np.arange(5, dtype=np.int32),
             "d": [np.float64(1.5), {1, 2}, float("nan"), b"raw"], "e": {"nested": [[1, 2], (3,)]}}
    blob = encode_snapshot(state, b"key")
    back = decode_snapshot(blob, b"key")
    assert back["a"] == state["a"] and back["b"] == state["b"] and back["e"] == state["e"]
    assert back["c"].dtype == np.int32 and back["c"].tolist() == [0, 1, 2, 3, 4] and back["c"].flags.writeable
    assert type(back["d"][0]) is np.float64 and back["d"][1] == {1, 2} and np.isnan(back["d"][2])
    assert encode_snapshot(back, b"key") == blob


def test_a_pickle_is_rejected_and_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for blob in (code_running_pickle(marker), zlib.compress(code_running_pickle(marker))):
        with pytest.raises(SnapshotRejected) as caught:
            decode_snapshot(blob)
        assert caught.value.kind == "format"
    assert not marker.exists()


@pytest.mark.parametrize("version", [3, 6])
def test_another_layout_version_is_rejected(version: int) -> None:
    blob = msgspec.msgpack.encode([FORMAT, version, b"", zlib.compress(msgspec.msgpack.encode({"windows": None}))])
    with pytest.raises(SnapshotRejected, match=f"v{version} is not") as caught:
        decode_snapshot(blob)
    assert caught.value.kind == "version"


def test_with_a_key_an_unsigned_or_forged_snapshot_is_rejected() -> None:
    for blob in (encode_snapshot({"a": 1}), encode_snapshot({"a": 1}, b"other key")):
        with pytest.raises(SnapshotRejected) as caught:
            decode_snapshot(blob, b"the key")
        assert caught.value.kind == "signature"
    assert decode_snapshot(encode_snapshot({"a": 1}, b"the key"), b"the key") == {"a": 1}


def test_the_signature_covers_the_blobs_beside_the_body() -> None:
    blob = encode_snapshot({"joins": [Packed(b"chunk one"), Packed(b"chunk two")]}, b"the key")
    assert decode_snapshot(blob, b"the key") == {"joins": [b"chunk one", b"chunk two"]}
    fmt, version, mac, body, blobs = msgspec.msgpack.decode(blob)
    for forged in ([b"chunk one", b"chunk 2!!"], [b"chunk onechunk two", b""], [b"chunk one"]):
        with pytest.raises(SnapshotRejected) as caught:
            decode_snapshot(msgspec.msgpack.encode([fmt, version, mac, body, forged]), b"the key")
        assert caught.value.kind == "signature"


def test_a_snapshot_of_the_layout_before_blobs_restores() -> None:
    """v4 (no blobs beside the body) as the release before wrote it, signed as it signed it."""
    body = zlib.compress(msgspec.msgpack.encode({"a": [0, 1, 2], "b": None}), 1)
    mac = hmac.new(b"the key", f"{FORMAT}:4:".encode() + body, hashlib.sha256).digest()
    assert VERSION == 5
    assert decode_snapshot(msgspec.msgpack.encode([FORMAT, 4, mac, body]), b"the key") == {"a": [1, 2], "b": None}


@pytest.mark.parametrize("tree", [
    [8, "os.system"],  # a function not on the allow-list
    [7, "subprocess.Popen", {"args": "touch x"}],  # a class not on the allow-list
    [5, "|O", [1], b"\x00" * 8],  # an object array
    [5, "<f8", [4], b"\x00" * 8],  # fewer bytes than its shape says
    [99, 1],  # an unknown tag
])
def test_a_body_with_anything_but_allowed_data_is_rejected(tree: list) -> None:
    blob = msgspec.msgpack.encode([FORMAT, VERSION, b"", zlib.compress(msgspec.msgpack.encode({"x": tree}))])
    with pytest.raises(SnapshotRejected) as caught:
        decode_snapshot(blob)
    assert caught.value.kind == "body"


def test_a_body_that_inflates_past_the_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelmedic.detection.snapshots.MAX_BODY_BYTES", 1000)
    blob = encode_snapshot({"zeros": b"\x00" * 100_000})
    assert len(blob) < 1000
    with pytest.raises(SnapshotRejected, match="inflates to more than 1000 bytes"):
        decode_snapshot(blob)


def test_state_that_is_not_data_is_refused_when_written() -> None:
    with pytest.raises(TypeError, match="is not snapshot data"):
        encode_snapshot({"socket": object()})


async def test_the_plane_counts_a_rejected_snapshot_and_starts_the_partition_afresh(tmp_path: Path) -> None:
    settings = _settings()
    marker = tmp_path / "pwned"
    plane = offline_plane(settings, partitions=0, consumer=_SeekingConsumer())
    plane._snapshots = {plane._snapshot_key(0): zlib.compress(code_running_pickle(marker))}
    rejected = metrics.SNAPSHOTS_REJECTED.labels("format")._value.get()
    await plane._restore([0])
    assert metrics.SNAPSHOTS_REJECTED.labels("format")._value.get() == rejected + 1
    assert not plane.parts[0].windows.keys and plane.parts[0].next_offset == 0
    assert not marker.exists()

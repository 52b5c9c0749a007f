"""The inference contract's optional ``features``: decoded for the sampled requests only, by the
native decoder and by the msgspec fallback alike; features outside the contract are dropped and
counted, never the event."""

from __future__ import annotations

import json
import zlib

import pytest

from modelmedic import metrics
from modelmedic.config import QualitySettings
from modelmedic.detection.columns import RecordDecoder
from modelmedic.detection.features import FeatureMonitor, decode_features
from modelmedic.events import MAX_FEATURES, InferenceEvent, decode_inference

TS = 1_700_000_000_000
K = 4  # the sample: one request in K by the CRC-32 of its id


def sampled_ids(n: int, k: int = K) -> list[str]:
    """``n`` request ids in the sample."""
    ids = (f"r-{i}" for i in range(10 * n * k))
    return [rid for rid in ids if zlib.crc32(rid.encode()) % k == 0][:n]


def unsampled_id() -> str:
    return next(f"u-{i}" for i in range(100) if zlib.crc32(f"u-{i}".encode()) % K)


def record(rid: str, features: object = None, *, odd: bool = False, **fields: object) -> bytes:
    """An inference record; ``odd``: with a repeated field, which the native decoder leaves to msgspec."""
    event = {"model": "fraud", "version": "1.0.0", "role": "production", "request_id": rid, "ts": TS,
             "latency_ms": 5.0, "ok": True, "prediction": 0.5, **fields}
    if features is not None:
        event["features"] = features
    text = json.dumps(event)
    return (text[:-1] + ', "ok": true}').encode() if odd else text.encode()


FEATURES = {"amount": 12.5, "country": "FR", "first_purchase": True, "age": None, "items": 3}


@pytest.mark.parametrize("odd", [False, True], ids=["native", "msgspec fallback"])
def test_sampled_features_are_handed_on_as_json_text(odd: bool) -> None:
    sampled, other = sampled_ids(2), unsampled_id()
    values = [record(sampled[0], FEATURES, odd=odd), record(other, FEATURES, odd=odd), record(sampled[1], odd=odd),
              record(sampled[1], None, odd=odd, role="shadow")]
    cols = RecordDecoder(sample_every=K).decode(values).columns
    assert len(cols) == 4 and [row[0] for row in cols.sample] == [0, 2]  # the features change nothing else
    assert [(i, cols.names[s], ts) for i, s, ts, _ in cols.features] == [(0, ("fraud", "1.0.0", "production"), TS)]
    assert json.loads(cols.features[0][3]) == FEATURES


def test_no_features_is_no_change() -> None:
    """An old producer's records decode to the same columns and sample, with no features."""
    rids = sampled_ids(3) + [unsampled_id()]
    old = RecordDecoder(sample_every=K).decode([record(r) for r in rids]).columns
    null = RecordDecoder(sample_every=K).decode(
        [record(r).replace(b'"prediction"', b'"features": null, "prediction"') for r in rids]).columns
    assert old.features == [] and null.features == []
    assert old.sample == null.sample and all((a == b).all() for a, b in zip(old.arrays(), null.arrays()))


@pytest.mark.parametrize("features", [[1, 2], 7, "amount=3", True])
@pytest.mark.parametrize("odd", [False, True], ids=["native", "msgspec fallback"])
def test_features_that_are_not_an_object_are_a_dead_letter(features, odd: bool) -> None:
    """The field's type is checked on every record, as every field's is (a first byte, natively)."""
    decoded = RecordDecoder(sample_every=K).decode([record(sampled_ids(1)[0], features, odd=odd)])
    assert len(decoded.columns) == 0 and [i for i, _ in decoded.rejected] == [0]
    assert "got `" in decoded.rejected[0][1].reason and "at `$.features`" in decoded.rejected[0][1].reason


@pytest.mark.parametrize(("features", "reason"), [
    ({"amount": [1, 2]}, "value"),
    ({"amount": {"usd": 1}}, "value"),
    ({f"f{i}": i for i in range(MAX_FEATURES + 1)}, "too_many"),
    ({"": 1}, "name"),
    ({"x" * 129: 1}, "name"),
])
@pytest.mark.parametrize("odd", [False, True], ids=["native", "msgspec fallback"])
def test_features_outside_the_contract_are_dropped_and_counted_not_the_event(features, reason: str, odd: bool) -> None:
    rid = sampled_ids(1)[0]
    raw = record(rid, features, odd=odd)
    assert isinstance(decode_inference(raw), InferenceEvent)  # the event is valid: it is not dead-lettered
    decoded = RecordDecoder(sample_every=K).decode([raw])
    assert decoded.rejected == [] and len(decoded.columns) == 1 and len(decoded.columns.sample) == 1
    monitor = FeatureMonitor(60_000, QualitySettings())
    before = metrics.FEATURES_DROPPED.labels(reason)._value.get()
    monitor.observe(decoded.columns.features, decoded.columns.names)
    assert monitor.dropped == {reason: 1} and monitor.skipped == 0
    assert metrics.FEATURES_DROPPED.labels(reason)._value.get() == before + 1


@pytest.mark.parametrize("odd", [False, True], ids=["native", "msgspec fallback"])
def test_a_number_out_of_range_drops_the_features_only(odd: bool) -> None:
    raw = record(sampled_ids(1)[0], {"amount": 1.0}, odd=odd).replace(b'"amount": 1.0', b'"amount": 1e999')
    assert isinstance(decode_inference(raw), InferenceEvent)
    cols = RecordDecoder(sample_every=K).decode([raw]).columns
    assert len(cols) == 1 and decode_features(cols.features[0][3]) == "value"


def test_the_most_features_are_accepted() -> None:
    features = {f"feature_{i}": float(i) for i in range(MAX_FEATURES)}
    assert decode_features(json.dumps(features).encode()) == features

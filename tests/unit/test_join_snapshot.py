"""A quality monitor's joins survive a snapshot in their chunked form, and snapshots written before it restore.

The label and canary joins (up to 50,000 and 20,000 entries a partition) are snapshotted as compressed
msgpack chunks (``_Pending.chunks``), which the snapshot carries beside its body and which are
encoded again only where their entries changed; before, as one msgpack document each, before that
as one flat list of plain values each, and before that as (key, value) tuples.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import msgspec
import pytest

from modelmedic.config import QualitySettings
from modelmedic.detection import quality
from modelmedic.detection.packed import Packed
from modelmedic.detection.quality import QualityMonitor, _Pending
from modelmedic.detection.snapshots import BLOB, LIST, _from_tree, _to_tree, decode_snapshot, encode_snapshot
from modelmedic.events import InferenceEvent

T0 = 1_767_225_600_000


def _monitor() -> QualityMonitor:
    m = QualityMonitor(1_000, QualitySettings())
    for i in range(300):
        prediction = [0.2, 0.8] if i % 3 == 0 else float(i)  # probability vectors wait as lists
        m.observe_inference(InferenceEvent(f"m{i % 3}", "1", "production", f"r{i}", T0 + i, 5.0, True, prediction))
        if i % 2:  # canary predictions before their twin wait in the canary join
            m.observe_inference(InferenceEvent(f"m{i % 3}", "0", "canary", f"c{i}", T0 + i, 5.0, True, float(i)))
    return m


def test_the_joins_round_trip_through_a_snapshot() -> None:
    m = _monitor()
    assert len(m._label_join.items) == 300 and len(m._canary_join.items) == 150
    restored = decode_snapshot(encode_snapshot({"quality": m}, None), None)["quality"]
    for name in ("_label_join", "_canary_join"):
        before, after = getattr(m, name), getattr(restored, name)
        assert list(after.items.items()) == list(before.items.items())  # same entries, same (expiry) order
        assert (after.now, after.first_ts, after.ttl_ms, after.cap) == (before.now, before.first_ts, before.ttl_ms,
                                                                      before.cap)
    empty = _from_tree(_to_tree(_Pending(10, 5), []), [])
    assert empty.items == OrderedDict() and empty.put(("m", "r"), (1, "1", 0.5, False)) is None


def test_a_join_snapshotted_as_tuples_restores() -> None:
    old = _Pending(60_000, 10)
    state = {"ttl_ms": 60_000, "cap": 10, "now": T0, "first_ts": T0,
             "items": OrderedDict([(("m", "r1"), (T0, "1", 0.5, False)), (("m", "r2"), (T0 + 1, "1", [0.1, 0.9], True))])}
    old.__setstate__(state)
    assert list(old.items) == [("m", "r1"), ("m", "r2")] and old.items[("m", "r2")] == (T0 + 1, "1", [0.1, 0.9], True)


def test_a_join_is_packed_chunks_beside_the_snapshot_tree() -> None:
    """Not a node per entry: the encoder walks none of the (up to 50,000) entries, nor compresses them again."""
    blobs: list[bytes] = []
    _, name, attributes = _to_tree(_monitor()._label_join, blobs)
    assert name.endswith("._Pending") and attributes["chunks"] == [LIST, [BLOB, 0], [BLOB, 1]]  # 300 entries
    assert len(blobs) == 2 and all(isinstance(blob.obj, Packed) for blob in blobs)
    assert not {"items", "flat", "packed"} & attributes.keys()


def _entry(rng: random.Random, i: int) -> tuple[tuple[str, str], tuple]:
    prediction = [0.3, 0.7] if i % 5 == 0 else float(i)
    return (f"m{rng.randrange(7)}", f"1-{i:x}"), (T0 + i, "1", prediction, bool(i % 2))


@pytest.mark.parametrize("seed", range(5))
def test_chunks_encode_the_join_exactly_whatever_happened_to_it(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries join at the back, leave from the front (expiry) and from anywhere (a label), change in place (a
    twin found) and come back at the back (a repeated canary); after each round the chunks, decoded, are the
    join, in order, and only chunks whose entries changed were encoded again."""
    monkeypatch.setattr(quality, "JOIN_CHUNK", 16)
    rng, join, n = random.Random(seed), _Pending(2_000, 10_000), 0
    encoded = []
    monkeypatch.setattr(quality, "deflate", lambda raw: encoded.append(raw) or Packed(raw))
    monkeypatch.setattr(quality, "inflate", bytes)
    for _ in range(60):
        added, touched = rng.randrange(0, 40), 1  # the front, by expiry
        for _ in range(added):
            join.put(*_entry(rng, n))
            n += 1
        keys = list(join.items)
        for key in rng.sample(keys, min(len(keys), rng.randrange(0, 6))):
            join.items.pop(key)
            touched += 1
        for key in rng.sample(keys, min(len(keys), rng.randrange(0, 3))):
            if key in join.items:
                value = join.items[key]
                join.items[key] = (*value[:3], not value[3])  # in place, as a twin found marks it
                touched += 1
        if keys and rng.random() < 0.3 and keys[-1] in join.items:
            join.items[keys[-1]] = join.items.pop(keys[-1])  # moved to the back, as a repeated canary
            touched += 1
        join.advance(T0 + n - rng.randrange(1_000, 3_000))
        encoded.clear()
        restored = _Pending.__new__(_Pending)
        restored.__setstate__(join.__getstate__())
        assert list(restored.items.items()) == list(join.items.items())
        # a touch re-encodes its chunk, and the next one when its last entry left
        assert sum(len(msgspec.msgpack.decode(raw)) for raw in encoded) <= added + 2 * 16 * touched
    encoded.clear()
    join.chunks()
    assert encoded == []  # nothing changed since the last: nothing encoded


def test_a_join_snapshotted_as_one_msgpack_document_restores() -> None:
    old = _Pending(60_000, 10)
    old.__setstate__({"ttl_ms": 60_000, "cap": 10, "now": T0, "first_ts": T0,
                      "packed": msgspec.msgpack.encode([[["m", "r1"], [T0, "1", 0.5, False]]])})
    assert list(old.items.items()) == [(("m", "r1"), (T0, "1", 0.5, False))] and old.chunks()


def test_a_join_snapshotted_as_a_flat_list_restores() -> None:
    old = _Pending(60_000, 10)
    old.__setstate__({"ttl_ms": 60_000, "cap": 10, "now": T0, "first_ts": T0, "shape": [2, 4],
                      "flat": ["m", "r1", T0, "1", 0.5, False, "m", "r2", T0 + 1, "1", [0.1, 0.9], True]})
    assert list(old.items.items()) == [(("m", "r1"), (T0, "1", 0.5, False)), (("m", "r2"), (T0 + 1, "1", [0.1, 0.9], True))]

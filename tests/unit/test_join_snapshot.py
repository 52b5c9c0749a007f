"""A quality monitor's joins survive a snapshot in their packed form, and snapshots written before it restore.

The label and canary joins (up to 50,000 and 20,000 entries a partition) are snapshotted as one
msgpack document each (``_Pending.__getstate__``), which the encoder copies as bytes; before, as
one flat list of plain values each, and before that as (key, value) tuples.
"""

from __future__ import annotations

from collections import OrderedDict

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor, _Pending
from modelmedic.detection.snapshots import _from_tree, _to_tree, decode_snapshot, encode_snapshot
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
    empty = _from_tree(_to_tree(_Pending(10, 5)))
    assert empty.items == OrderedDict() and empty.put(("m", "r"), (1, "1", 0.5, False)) is None


def test_a_join_snapshotted_as_tuples_restores() -> None:
    old = _Pending(60_000, 10)
    state = {"ttl_ms": 60_000, "cap": 10, "now": T0, "first_ts": T0,
             "items": OrderedDict([(("m", "r1"), (T0, "1", 0.5, False)), (("m", "r2"), (T0 + 1, "1", [0.1, 0.9], True))])}
    old.__setstate__(state)
    assert list(old.items) == [("m", "r1"), ("m", "r2")] and old.items[("m", "r2")] == (T0 + 1, "1", [0.1, 0.9], True)


def test_a_join_is_one_bytes_value_in_the_snapshot_tree() -> None:
    """Not a node per entry: the encoder walks none of the (up to 50,000) entries."""
    _, name, attributes = _to_tree(_monitor()._label_join)
    assert name.endswith("._Pending") and isinstance(attributes["packed"], bytes)
    assert not {"items", "flat"} & attributes.keys()


def test_a_join_snapshotted_as_a_flat_list_restores() -> None:
    old = _Pending(60_000, 10)
    old.__setstate__({"ttl_ms": 60_000, "cap": 10, "now": T0, "first_ts": T0, "shape": [2, 4],
                      "flat": ["m", "r1", T0, "1", 0.5, False, "m", "r2", T0 + 1, "1", [0.1, 0.9], True]})
    assert list(old.items.items()) == [(("m", "r1"), (T0, "1", 0.5, False)), (("m", "r2"), (T0 + 1, "1", [0.1, 0.9], True))]

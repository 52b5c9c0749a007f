"""The quality monitor's record of which series still serve, kept by the windows' slots (``QualityMonitor.watch``):
one numpy store a window instead of a dict update of ~17,000 names at 100k models (docs/benchmarks.md, "The quality
monitor"), with the same readings through slot reuse, a restore into another pool, and a snapshot of the release
before, which kept the stamps by name.

OLD_TREE is the snapshot tree (``detection/snapshots.py``: msgpack, zlib, base64) of a partition's windows and monitor
written by the code of 2012bc4: model "m", version "1.0", one sampled request at T0, then served (requests in the
windows, none sampled) in each 1-minute window through T0 + 8 min, polled with the names that served; horizon (and
``series_ttl_ms``) 10 minutes.
"""

from __future__ import annotations

import base64
import zlib

import msgspec
import numpy as np

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import _from_tree, decode_snapshot, encode_snapshot
from modelmedic.detection.windows import NOT_SERVED, PartitionWindows, SlotPool
from modelmedic.events import InferenceEvent

W, T0, MIN = 60_000, 1_700_000_040_000, 60_000
SERIES = ("m", "1.0", "production")
OLD_TREE = (
    "eJy9V01sVFUUfs8WQRITSVAEQUmMIdFQYWNcENtEEzdCaoyyvN5570576XvvPu+90zJoIhp0gwunrSa6Eeh0ZjqdmUILKsHFBFhghoKJKxND0IUx"
    "/oWlOzz3590ZfoqJaexm3vm55+ee75x7+n51giYhmxBTa3/YGbOQRDEJaTAQEkkCSVkyYOUDw5hLqjj7DeOat6Eq6CGCYrH825tLOIrYBAlRhCVJ"
    "iBDA9hYF4ZQIJGWErJnlHQ+VU8YicPfUPd29FjE5DIpHZgV8Cb8ywlkhFX49zwlBmlfy5jVhJCWvqriI5af6pv3j8czugV31lLOwoA175TFSFFN9"
    "3l1kTW0BTmq7oOPVMs5U3xTo99qpG5G1dpt0PsJC2lxBesU/+fq2co7xpOSVWUqSH70NfYr5yKT3iT+9ZmYPfb7kX1zn2T/FyfdwNg4B553cbuD4"
    "/u3CG4PK0qZVs/ToqlnavGqWtqyapcdWzdLWVbO0bVUsNfKUC4X7vCDSAUxjb5OvC3ufLormb+nXl7FGJ3K/DmJtJcYHkRRXPc8/evWP6HoriJiA"
    "VpajgPSR0Ztl1dNeS4zRNAU2J2mEi171rQKOqCxCJz9z10628oFXze9ellDJ+DXvlZbpD9SdHosRzpEICRynEUFknPCifzrACeZFRA6mYFD5hSja"
    "pyw35ZRxzeoMnv1M/X3etKIY8xGadAbnbmWTfB7sOPaSZUegTZzwWyM8aYWSRYTjJAAn1811f+P8sxzOUZVYr5YNZdFq5SgWK9mOaYJSDKVbn0U4"
    "gXlcSC9faln6AAMVcz8utYMIpkhIk5HlfdtP53EkCMKQQiyAz1GIi53BLc/9/PvWF3c2zJ1mtzF96KeXWxvfttwspixeqwv+WEEGLCbi8QXD6yaX"
    "wdOayKI9achRxukhpuK94j2wo30q894N+MLwAhGSxlAzd7jpODmaiPXnHBkAZnJQXgCSU2446QhOXewLIad5CajME04gTtAzHIOy5b5fW4ZW2UV0"
    "nIR1Q2uP8+ZbQ27zGUNI8INoIgkfxwDKztA+k3gzFVQ1BRGjLAo7g98Zdl0lqTsAUvc/PNZQNNgTELtYt0BDgDQnAQOWvp0Hzx1r9jyM9sJqeYJl"
    "AWxfWMq+dEkh6oIkexYdsyfRBcd0uZ5yLJdu07F0xo2ueUFdEl877krZL4VYYmSbGuUK4QgBAB0xsLpVaNE1ZEfUmW5MPTcDm8CXXQGRnAbIXAtI"
    "ZmEEBWPtqr3Xqf7jMcyZJ+85Z9BeJT1ayxy8p175FfcMd+oNo/5RxfRYO+s+a+ZYRSNZtCsKhijxGvo3YBxqKr26pgjnjLsGmdUwAs9P3+GZcTGg"
    "pQPDXLFVKC8p+pr38JyrbLvlPvWQvHyp4gpcc3Ut63KuAMpZg+g5JQ0igrnrl3tPjYWVyj+Lo3QUd17IlZ/99Ini2TrSm47S7ty8YVTKCpvtWtbw"
    "k15n0EqqqgFIImFHQzlVWdjWauYLJVP6qAJjdoEnUNp592/rVyfrVUzA52vZDGjPQomJPFzVccT29fqlf6gCV46Lot3QvxpysIrWcliQiCakPecm"
    "Wnvellq/LHcYgptWZSXh+aoZZok/b98pCqedXlWO0iQhodeyHyhH8nDOa2a01v++7WWXAQ823M/hBuoZ9P8O1GFzrR9UzNSAZ2EmwCm8AzMJmzDR"
    "/Ll/qGa2AXjOh6y/SoqDMRJe9D+eRyb+/+RPTynt8cLwCh5dCazH7aXJyePxCb5r2olUTzpYnK8gCcAW/0fuVXRAjayw1N/KWhuauJBIf747UkWp"
    "v44ypGgigxsQ1YDDuCLhpF76VSJl9VoqTMPcgoa86/8dWXCDLatl0XG4mdG9aPrrC/OcChQW0ogGavFqWg7j0ICJ17Ik7EWUK9RlBzhT65nX6u5N"
    "Rm7pTL6UuskjkN3pYLkzDxIZp2rXulUpw3cWSEwFrIfeV5YsJApPel80ev8A4ySPzw=="
)


def _event(rid: str, ts: int, model: str = "m") -> InferenceEvent:
    return InferenceEvent(model, "1.0", "production", rid, ts, 5.0, True, 1.0)


def _served_for_8_minutes() -> tuple[PartitionWindows, QualityMonitor]:
    """OLD_TREE's partition, built by this release: the monitor watches the windows and is polled with slots."""
    windows = PartitionWindows(W, 0, 10_000)
    mon = QualityMonitor(W, QualitySettings(label_horizon_ms=10 * MIN), label_sample_every=1, clock=None)
    mon.watch(windows)
    mon.observe_inference(_event("r0", T0))
    for i in range(8):
        windows.add(_event(f"u{i}", T0 + i * MIN), i)
        mon.poll(T0 + (i + 1) * MIN, windows.served_slots((T0 + i * MIN) // W))
    return windows, mon


def _restored(snap: dict) -> tuple[PartitionWindows, QualityMonitor]:
    """A snapshot's windows and monitor joining a process whose pool has handed out other slots already."""
    windows, mon = snap["windows"], snap["quality"]
    pool = SlotPool()
    for _ in range(5):
        pool.slot()
    windows.attach(pool)
    mon.watch(windows)
    return windows, mon


def _tracked_until(windows: PartitionWindows, mon: QualityMonitor) -> int:
    """Minutes after T0 of the first poll without traffic at which the model is forgotten (``series_ttl_ms``)."""
    for minute in range(9, 30):
        mon.poll(T0 + minute * MIN, windows.served_slots(-1))
        if not mon.sizes()["models"]:
            return minute
    raise AssertionError("never forgotten")


def test_the_model_lives_series_ttl_ms_after_its_last_served_window_not_its_last_sampled_request() -> None:
    windows, mon = _served_for_8_minutes()
    assert windows.served_stamp(SERIES) == T0 + 8 * MIN - 1
    assert _tracked_until(windows, mon) == 18  # the stamp (8 min - 1 ms) + 10 min; its one sampled request: 10


def test_stamps_by_slot_survive_a_snapshot_and_a_restore_into_another_pool() -> None:
    windows, mon = _served_for_8_minutes()
    assert "_windows" not in mon.__getstate__()  # the windows are the partition's, snapshotted on their own
    windows, mon = _restored(decode_snapshot(encode_snapshot({"windows": windows, "quality": mon})))
    assert windows.slot_of[SERIES] != 0  # renumbered
    assert windows.served_stamp(SERIES) == T0 + 8 * MIN - 1
    assert _tracked_until(windows, mon) == 18


def test_a_snapshot_of_the_release_before_keeps_its_stamps_by_name() -> None:
    tree = msgspec.msgpack.decode(zlib.decompress(base64.b64decode("".join(OLD_TREE))))
    windows, mon = _restored(_from_tree(tree, []))
    assert windows.served_stamp(SERIES) == NOT_SERVED  # its windows kept none
    assert _tracked_until(windows, mon) == 18  # not 10: the monitor's names still say when it served


def test_a_slot_handed_out_again_carries_no_stamp_of_its_last_series() -> None:
    windows = PartitionWindows(W, 0, 2)
    windows.add(_event("a", T0, model="a"), 0)
    slot = windows.slot_of[("a", "1.0", "production")]
    windows.mark_served(T0 + MIN - 1, np.array([slot]))
    windows.expire(T0 // W + 5)  # "a" silent past the windows' TTL: its slot goes back to the pool
    windows.add(_event("b", T0 + 6 * MIN, model="b"), 1)
    assert windows.slot_of[("b", "1.0", "production")] == slot
    assert windows.served_stamp(("b", "1.0", "production")) == NOT_SERVED
    assert windows.served_stamp(("a", "1.0", "production")) == NOT_SERVED

"""While catching up, the periodic checkpoint waits for ``detection.snapshot_replay_records`` records.

A checkpoint bounds the replay after a crash. During a drain ``snapshot_interval_s`` of
wall time is hundreds of thousands of records, and each checkpoint re-encodes every
partition's state at its largest (about 20% of ``modelmedic run``'s CPU while draining a
backlog, load/bench_service.py); there the bound is kept in records instead. At the live
rate nothing changes: a checkpoint every interval.
"""

from __future__ import annotations

import time

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.testing import FakeConsumer, offline_plane

from test_judge_batching import _batch


def _plane(catching_up: bool) -> DetectionPlane:
    """An offline plane checkpointing every 5 s, or every 150 records while a poll's worth waits behind each batch."""
    settings = load_settings()
    settings = settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"quality": False, "snapshot_interval_s": 5.0, "snapshot_replay_records": 150})})
    lag = FakeConsumer(lambda tp: plane.parts[tp.partition].next_offset + settings.kafka.max_poll_records)
    plane = offline_plane(settings, 1, consumer=lag if catching_up else None)
    return plane


async def test_catching_up_the_checkpoint_waits_for_the_replay_records_as_well_as_the_interval() -> None:
    plane = _plane(catching_up=True)
    await plane._process(_batch(plane, 0, 10))  # 100 records
    plane._last_snapshot = time.monotonic() - 6  # the interval has passed
    assert plane._checkpoint_due() is False  # 100 records since the last checkpoint: a crash replays only those
    await plane._process(_batch(plane, 0, 10))
    assert plane._checkpoint_due() is True  # 200 >= 150
    await plane._checkpoint(plane.unsaved())
    await plane._process(_batch(plane, 0, 20))
    assert plane._checkpoint_due() is False  # 200 records, but the interval has not passed


async def test_at_the_live_rate_the_checkpoint_comes_every_interval() -> None:
    plane = _plane(catching_up=False)
    await plane._process(_batch(plane, 0, 1))  # 10 records, nothing behind them
    assert plane._checkpoint_due() is False
    plane._last_snapshot = time.monotonic() - 6
    assert plane._checkpoint_due() is True

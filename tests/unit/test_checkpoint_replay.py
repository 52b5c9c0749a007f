"""While catching up, the periodic checkpoint waits for ``detection.snapshot_replay_records`` records.

A checkpoint bounds the replay after a crash. During a drain ``snapshot_interval_s`` of
wall time is hundreds of thousands of records, and each checkpoint re-encodes every
partition's state at its largest (about 20% of ``modelmedic run``'s CPU while draining a
backlog, load/bench_service.py); there the bound is kept in records instead. At the live
rate a checkpoint every interval, unless the last one's encoding took more than
``snapshot_cpu_share`` of the time since: then the next waits longer.
"""

from __future__ import annotations

import time

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.testing import FakeConsumer, offline_plane

from test_judge_batching import _batch


def _plane(catching_up: bool, cpu_share: float = 0.05) -> DetectionPlane:
    """An offline plane checkpointing every 5 s, or every 150 records while a poll's worth waits behind each batch."""
    settings = load_settings()
    settings = settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"quality": False, "snapshot_interval_s": 5.0, "snapshot_replay_records": 150,
                "snapshot_cpu_share": cpu_share})})
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


async def test_a_checkpoint_that_cost_more_than_its_share_of_the_interval_pushes_the_next_one_back() -> None:
    cheap, costly = _plane(catching_up=False), _plane(catching_up=False, cpu_share=1e-9)
    for plane in (cheap, costly):
        await plane._process(_batch(plane, 0, 1))
        await plane._checkpoint(plane.unsaved())
        await plane._process(_batch(plane, 0, 1))
        plane._last_snapshot = time.monotonic() - 6  # the interval has passed
    assert cheap._checkpoint_due() is True  # encoding a small state: far below 5% of 6 s
    # Encoding took at least a microsecond, i.e. at 1e-9 of a core the next checkpoint waits over 1,000 s.
    assert costly._snapshot_gap_s > 1_000
    assert costly._checkpoint_due() is False

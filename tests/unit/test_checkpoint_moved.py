"""The periodic checkpoint snapshots only the partitions whose state moved since their last snapshot.

An idle replica used to re-encode every partition's unchanged state every
``detection.snapshot_interval_s`` (about 8.5% of a core after a drained backlog of
1,000,000 events, load/bench_service.py). A partition moves when it takes records or
labels, or shuts windows (an idle close on the wall clock included).
"""

from __future__ import annotations

from modelmedic.config import load_settings
from modelmedic.testing import offline_plane

from test_judge_batching import _batch


async def test_only_partitions_that_moved_are_snapshotted_again() -> None:
    settings = load_settings()
    plane = offline_plane(settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"quality": False})}), 2)
    assert plane.unsaved() == [0, 1]  # never snapshotted
    await plane._checkpoint(plane.unsaved())
    assert plane.unsaved() == []
    await plane._process(_batch(plane, 1, 5))
    assert plane.unsaved() == [1]
    await plane._checkpoint(plane.unsaved())
    assert plane.unsaved() == []
    windows = plane.parts[0].windows
    windows.shut_through(windows.closed_through + 3)  # windows shut without a record (idle close)
    assert plane.unsaved() == [0]

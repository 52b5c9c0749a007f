"""Each checkpoint publishes the quality joins' entries (``modelmedic_quality_join_entries``).

The joins fill for hours (a sampled prediction without a label waits ``quality.label_horizon_ms``), and a
replica's memory grows with them: the soak (load/soak.py) reads the gauge to tell that bounded filling
from a leak.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from modelmedic.config import load_settings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.testing import offline_plane

from test_judge_batching import _batch


def _entries(join: str) -> float | None:
    return REGISTRY.get_sample_value("modelmedic_quality_join_entries", {"join": join})


async def test_a_checkpoint_sets_the_join_entries_summed_over_partitions() -> None:
    settings = load_settings()
    d = settings.detection
    plane = offline_plane(settings, 2, lambda: QualityMonitor(settings.windows.size_ms, settings.quality,
                                                              label_sample_every=d.quality_sample_every))
    await plane._process(_batch(plane, 0, 10))  # 100 requests of one model, one in four sampled
    await plane._process(_batch(plane, 1, 20))
    await plane._checkpoint(plane.unsaved())
    pending = [state.quality.sizes()["label_pending"] for state in plane.parts.values()]
    assert all(n > 0 for n in pending)  # no label came: every sampled prediction still waits
    assert _entries("label") == sum(pending)
    assert _entries("judged") == _entries("canary") == _entries("twin") == 0

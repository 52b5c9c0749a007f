"""How late labels come, measured on the joined ones: what ``quality.label_horizon_ms`` is sized from (issue 14).

Per production version a bounded count per delay bucket and the maximum (the quality API's view), and the
process's ``modelmedic_quality_label_delay_seconds`` histogram. Seeded; no sleeps.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import decode_snapshot, encode_snapshot
from modelmedic.events import LabelEvent

W = 60_000
T0 = 1_700_000_040_000
NAMES = [("m", "1.0", "production"), ("m", "2.0", "production")]


def _count() -> float:
    return REGISTRY.get_sample_value("modelmedic_quality_label_delay_seconds_count") or 0.0


def _bucket(le: str) -> float:
    return REGISTRY.get_sample_value("modelmedic_quality_label_delay_seconds_bucket", {"le": le}) or 0.0


def test_joined_labels_delays_give_quantiles_a_maximum_and_the_histogram() -> None:
    """1,000 predictions of version 1.0 labelled 5-30 minutes later (uniform): the median falls in the
    (15, 20] minute bucket, the 95th and 99th percentiles in (20, 30] (given as the maximum, below 30); an
    orphan label is not a delay; a version without labels has no view."""
    rng = np.random.default_rng(7)
    mon = QualityMonitor(W, QualitySettings(drift_window=10**9), clock=None)
    mon.observe_sampled([(0, 0, T0 + 1000 * i, True, f"r{i}", 1) for i in range(1000)]
                        + [(0, 1, T0, True, "s0", 1)], NAMES)
    delays = rng.integers(5 * W, 30 * W, size=1000)
    labels = sorted((LabelEvent("m", f"r{i}", int(T0 + 1000 * i + d), 1) for i, d in enumerate(delays)),
                    key=lambda e: e.ts)
    count, over_hour = _count(), _bucket("3600.0") - _bucket("1800.0")
    for label in labels:
        mon.observe_label(label)
    mon.observe_label(LabelEvent("m", "never-sent", T0 + 40 * W, 1))
    view = mon.label_delay("m", "1.0")
    assert view == {"labels": 1000, "max_ms": int(delays.max()), "horizon_ms": 6 * 3600 * 1000,
                    "p50_ms": 1_200_000, "p95_ms": int(delays.max()), "p99_ms": int(delays.max())}
    assert _count() - count == 1000 and _bucket("3600.0") - _bucket("1800.0") == over_hour
    assert mon.label_delay("m", "2.0") is None and mon.label_delay("other", "1.0") is None
    restored = decode_snapshot(encode_snapshot({"quality": mon}, None), None)["quality"]
    assert restored.label_delay("m", "1.0") == view


def test_a_delay_past_a_day_and_a_label_before_its_prediction() -> None:
    """Past the last bucket (a day) the quantile is the maximum; a label stamped before its prediction
    (producers' clocks) counts as no delay."""
    mon = QualityMonitor(W, QualitySettings(drift_window=10**9, label_horizon_ms=3 * 86_400_000), clock=None)
    mon.observe_sampled([(0, 0, T0, True, "a", 1), (0, 0, T0 + 1, True, "b", 1)], NAMES)
    mon.observe_label(LabelEvent("m", "a", T0 - 5_000, 1))
    mon.observe_label(LabelEvent("m", "b", T0 + 1 + 2 * 86_400_000, 1))
    assert mon.label_delay("m", "1.0") == {"labels": 2, "max_ms": 2 * 86_400_000, "horizon_ms": 3 * 86_400_000,
                                           "p50_ms": 1_000, "p95_ms": 2 * 86_400_000, "p99_ms": 2 * 86_400_000}


def test_a_snapshot_written_before_the_delays_and_thinned_counts_restores_with_defaults() -> None:
    """The version's delays, the model's thinned counts and the monitor's ``labels_unjoined_thinned`` are
    missing from an older snapshot: they start empty, and a label then joins and is counted."""
    mon = QualityMonitor(W, QualitySettings(drift_window=10**9), clock=None)
    mon.observe_sampled([(0, 0, T0, True, "a", 1), (0, 0, T0 + 1, True, "b", 1)], NAMES)
    m = mon._models["m"]
    vs = m.versions["1.0"]
    old_version = {k: v for k, v in vs.__getstate__().items() if k not in ("delays", "delay_max_ms")}
    old_model = {k: v for k, v in m.__getstate__().items() if not k.startswith("thinned")}
    vs.__setstate__(old_version)
    m.__setstate__(old_model)
    state = dict(mon.__dict__)
    del state["labels_unjoined_thinned"]
    restored = QualityMonitor.__new__(QualityMonitor)
    restored.__setstate__(state)
    assert restored.labels_unjoined_thinned == 0 and restored.label_delay("m", "1.0") is None
    assert (m.thinned, m.thinned_before) == (0, 0)
    restored.observe_label(LabelEvent("m", "a", T0 + 90_000, 1))
    restored.observe_label(LabelEvent("m", "x", T0 + 90_000, 1))
    assert restored.label_delay("m", "1.0")["max_ms"] == 90_000 and restored.labels_orphan == 1

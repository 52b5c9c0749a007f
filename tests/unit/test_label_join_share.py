"""The label join at fleet scale: a bounded join shared between models, so late labels still find predictions.

Before, the join kept the latest ``label_max_pending`` sampled predictions of the partition: a fleet
filled it within minutes and every label later than that found nothing (at 100k models, 50,000 entries
held ~40 s of predictions; labels come 5-30 minutes late). Seeded; no sleeps.
"""

from __future__ import annotations

import numpy as np

from modelmedic import metrics
from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.events import LabelEvent

W = 60_000
T0 = 1_700_000_040_000
HOUR = 3_600_000


def fleet(rng: np.random.Generator, models: int, every_ms: int, hours: float, mirrored_every: int):
    """Rows per window (production, and the canary's twin 2 ms later for every ``mirrored_every``-th model),
    the names, and each production prediction's label with its time (5-30 minutes later)."""
    names = [(f"m{i}", "1.0", "production") for i in range(models)]
    names += [(f"m{i}", "0.9", "canary") for i in range(0, models, mirrored_every)]
    canary_of = {i: models + k for k, i in enumerate(range(0, models, mirrored_every))}
    rows, labels = [], []
    for i in range(models):
        ts = T0 + rng.integers(0, every_ms)
        while ts < T0 + hours * HOUR:
            rid, value = f"m{i}-{ts}", int(rng.integers(0, 3))
            rows.append((0, i, int(ts), True, rid, value))
            if i in canary_of:
                rows.append((0, canary_of[i], int(ts) + 2, True, rid, value))
            labels.append(LabelEvent(f"m{i}", rid, int(ts + rng.integers(5 * 60_000, 30 * 60_000)), value))
            ts += rng.integers(every_ms // 2, 3 * every_ms // 2)
    rows.sort(key=lambda r: r[2])
    labels.sort(key=lambda e: e.ts)
    return rows, names, labels


def feed(mon: QualityMonitor, rows, names, labels) -> tuple[int, int]:
    """Everything in event-time order, a window at a time, polling each window's end.
    Returns (labels that found their prediction, peak entries in the label join)."""
    judged = peak = 0
    r = lab = 0
    end = T0 + W
    while r < len(rows) or lab < len(labels):
        batch = []
        while r < len(rows) and rows[r][2] < end:
            batch.append(rows[r])
            r += 1
        mon.observe_sampled(batch, names)
        while lab < len(labels) and labels[lab].ts < end:
            before = mon.labels_orphan + mon.labels_duplicate + mon.labels_missed
            mon.observe_label(labels[lab])
            judged += before == mon.labels_orphan + mon.labels_duplicate + mon.labels_missed
            lab += 1
        peak = max(peak, mon.sizes()["label_pending"])
        mon.poll(end)
        end += W
    return judged, peak


def test_labels_5_to_30_minutes_late_find_their_predictions_in_a_full_fleet():
    """500 models, a request every ~30 s each, a 2,000-entry join: the partition's latest 2,000 predictions span
    2 minutes, so a label 5-30 minutes late found nothing before (2,000 of 120,077 labels met their prediction:
    those of the last 2,000 predictions, after traffic stopped). Now each model keeps a spread share of its
    predictions, and those wait for their labels (7,733 met, none pushed out)."""
    rng = np.random.default_rng(14)
    rows, names, labels = fleet(rng, models=500, every_ms=30_000, hours=2, mirrored_every=5)
    mon = QualityMonitor(W, QualitySettings(label_max_pending=2_000, label_horizon_ms=HOUR, drift_window=10**9,
                                            canary_expected_rate=0.01), clock=None)
    judged, peak = feed(mon, rows, names, labels)
    production = len(labels)
    kept = production - mon.predictions_thinned
    assert peak <= 2_000
    assert mon.predictions_thinned > production / 2  # the join cannot hold them all: most are left out
    assert judged >= 0.95 * kept and judged > 5_000  # and what is kept meets its label
    assert mon.labels_missed == mon.labels_dropped < 0.05 * kept
    pairs = sum(vs.canary.pairs for m in mon._models.values() for vs in m.versions.values() if vs.canary)
    assert pairs == len(rows) - production  # every canary prediction met its twin, kept for its label or not


def test_a_label_whose_prediction_was_pushed_out_is_counted_missed():
    """One model sends 300 predictions in a burst into a 100-entry join: its share cannot adapt within the burst,
    the oldest are pushed out, and their labels are counted missed (and exported), not orphans."""
    names = [("m", "1.0", "production")]
    mon = QualityMonitor(W, QualitySettings(label_max_pending=100, label_horizon_ms=W, drift_window=10**9), clock=None)
    mon.observe_sampled([(0, 0, T0 + i, True, f"r{i}", 1) for i in range(300)], names)
    exported = metrics.LABELS_MISSED._value.get()
    for i in range(300):
        mon.observe_label(LabelEvent("m", f"r{i}", T0 + 1_000, 1))
    assert 0 < mon.labels_dropped < 100 and mon.labels_missed == mon.labels_dropped
    assert metrics.LABELS_MISSED._value.get() - exported == mon.labels_missed
    assert mon.labels_unjoined_thinned == mon.predictions_thinned > 0 and mon.labels_orphan == 0


def test_labels_of_thinned_predictions_are_told_from_labels_of_requests_never_seen():
    """A busy model's left-out predictions' labels count as ``labels_unjoined_thinned`` (sizing, exported), up to
    the number it left out within the horizon; labels for requests never seen count as orphans (a producer
    problem), for a model that thinned once that number is used up, and for one that never thinned. Before, all
    of them were orphans."""
    names = [("busy", "1.0", "production"), ("quiet", "1.0", "production")]
    mon = QualityMonitor(W, QualitySettings(label_max_pending=100, label_horizon_ms=HOUR, drift_window=10**9), clock=None)
    mon.observe_sampled([(0, 0, T0 + i, True, f"b{i}", 1) for i in range(150)] + [(0, 1, T0 + 200, True, "q0", 1)], names)
    exported = metrics.LABELS_UNJOINED_THINNED._value.get()
    thinned = mon.predictions_thinned
    assert thinned > 0 and mon.labels_dropped == 0
    for i in range(150):
        mon.observe_label(LabelEvent("busy", f"b{i}", T0 + 60_000, 1))
    assert mon.labels_unjoined_thinned == thinned and mon.labels_orphan == 0
    assert metrics.LABELS_UNJOINED_THINNED._value.get() - exported == thinned
    mon.observe_label(LabelEvent("busy", "never-sent", T0 + 60_000, 1))  # its thinned predictions all accounted for
    mon.observe_label(LabelEvent("quiet", "never-sent", T0 + 60_000, 1))
    mon.observe_label(LabelEvent("unknown", "never-sent", T0 + 60_000, 1))
    assert mon.labels_orphan == 3 and mon.labels_unjoined_thinned == thinned
    assert mon.counters()["labels_unjoined_thinned"] == thinned


def test_thinned_predictions_are_accounted_for_one_horizon_and_at_most_two():
    """A label a horizon after its left-out prediction is still put down to the share; two horizons on, the
    model's left-out predictions are forgotten (their labels would have expired) and a label is an orphan."""
    names = [("busy", "1.0", "production")]
    mon = QualityMonitor(W, QualitySettings(label_max_pending=10, label_horizon_ms=HOUR, drift_window=10**9,
                                            series_ttl_ms=10 * HOUR), clock=None)
    mon.observe_sampled([(0, 0, T0 + i, True, f"b{i}", 1) for i in range(40)], names)
    assert mon.predictions_thinned >= 2
    mon.observe_label(LabelEvent("busy", "b-late", T0 + HOUR + 39, 1))
    mon.observe_label(LabelEvent("busy", "b-too-late", T0 + 3 * HOUR, 1))
    assert mon.labels_unjoined_thinned == 1 and mon.labels_orphan == 1

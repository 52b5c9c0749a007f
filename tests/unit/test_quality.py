"""Model-quality detectors: canary divergence, delayed labels, drift. Seeded; false alarms measured."""

from __future__ import annotations

import numpy as np
import pytest

from modelmedic.detectors.quality import CanaryDivergence, Decision, DelayedLabelPerformance, PredictionDrift


def feed_canary(d: CanaryDivergence, prod, canary, start: int = 0, lag: float = 0.5) -> list[Decision]:
    """Each request's production prediction, then the canary's ``lag`` seconds later."""
    onsets = []
    for i, (p, c) in enumerate(zip(prod, canary), start):
        for role, value, ts in (("production", p, i), ("canary", c, i + lag)):
            decision = d.observe(role, f"r{i}", ts, value)
            if decision:
                onsets.append(decision)
    return onsets


# ---------------------------------------------------------------- canary divergence


def test_canary_flipping_5_percent_of_labels_is_flagged_soon():
    rng = np.random.default_rng(1)
    prod = rng.integers(0, 3, 5000)
    canary = np.where(rng.random(5000) < 0.05, (prod + 1) % 3, prod)
    d = CanaryDivergence(expected_rate=0.01)
    onsets = feed_canary(d, prod.tolist(), canary.tolist())
    assert onsets and onsets[0].anomalous and onsets[0].kind == "prediction"
    assert d.decision().evidence["pairs"] == 5000
    assert "disagrees" in onsets[0].message and onsets[0].evidence["disagreement_rate"] < 0.1
    assert onsets[0].evidence["pairs"] < 1000  # requests to detection


def test_canary_learns_its_expected_rate_then_flags_a_bad_version():
    rng = np.random.default_rng(2)
    prod = rng.integers(0, 2, 20_000).tolist()
    d = CanaryDivergence(warmup=1000)
    assert feed_canary(d, prod[:5000], prod[:5000]) == []  # the same version: p0 learned from 0 disagreements
    flipped = [1 - v if rng.random() < 0.05 else v for v in prod[5000:]]
    assert feed_canary(d, prod[5000:], flipped, start=5000)


@pytest.mark.parametrize("true_rate", [0.0, 0.005, 0.01])
def test_healthy_canary_false_alarms_over_a_long_run(true_rate):
    """200k joined requests at or below the tolerated rate: at most one false alarm (alpha = 1e-4)."""
    rng = np.random.default_rng(3)
    n = 200_000
    prod = rng.integers(0, 5, n)
    canary = np.where(rng.random(n) < true_rate, (prod + 1) % 5, prod)
    d = CanaryDivergence(expected_rate=0.01)
    onsets = feed_canary(d, prod.tolist(), canary.tolist())
    assert len(onsets) <= (1 if true_rate == 0.01 else 0)


def test_numeric_canary_noise_within_tolerance_is_quiet_a_bad_one_is_not():
    rng = np.random.default_rng(4)
    prod = rng.random(20_000)
    same = prod + rng.uniform(-1e-4, 1e-4, prod.size)  # float noise, both signs
    assert feed_canary(CanaryDivergence(expected_rate=0.01, tolerance=1e-3), prod.tolist(), same.tolist()) == []
    bad = np.where(rng.random(prod.size) < 0.05, rng.random(prod.size), prod)
    assert feed_canary(CanaryDivergence(expected_rate=0.01, tolerance=1e-3), prod.tolist(), bad.tolist())
    biased = prod + 5e-4  # within tolerance, always higher: the sign test sees it
    onsets = feed_canary(CanaryDivergence(expected_rate=0.01, tolerance=1e-3), prod.tolist(), biased.tolist())
    assert onsets and "sign test" in onsets[0].message


def test_canary_join_is_bounded_and_counts_what_never_joined():
    d = CanaryDivergence(window_s=10, max_pending=100)
    for i in range(1000):
        d.observe("production", f"p{i}", i, 1)  # no canary ever answers
    e = d.decision().evidence
    assert len(d._join.pending) <= 11 and e["unjoined_expired"] >= 989 and e["pairs"] == 0
    d2 = CanaryDivergence(window_s=1e9, max_pending=100)
    for i in range(1000):
        d2.observe("canary", f"c{i}", i, 1)
    assert len(d2._join.pending) == 100 and d2.decision().evidence["unjoined_dropped"] == 900
    d2.observe("canary", "c999", 1000, 1)  # same role twice never pairs with itself
    assert d2.decision().evidence["pairs"] == 0


# ---------------------------------------------------------------- delayed labels


def labelled_stream(rng, n: int, accuracy: float, delay=(60, 3600), p_missing=0.1, p_dup=0.05):
    """Predictions at 1/s; labels arrive minutes to an hour late, shuffled, some twice, some never."""
    events = []
    for i in range(n):
        events.append((float(i), "prediction", f"r{i}", 1))
        if rng.random() < p_missing:
            continue
        label = 1 if rng.random() < accuracy else 0
        for _ in range(1 + (rng.random() < p_dup)):
            events.append((i + rng.uniform(*delay), "label", f"r{i}", label))
    events.sort(key=lambda e: e[0])
    return events


def feed_labels(d: DelayedLabelPerformance, events) -> list[Decision]:
    onsets = []
    for ts, what, rid, value in events:
        if what == "prediction":
            d.observe_prediction(rid, ts, value)
        elif decision := d.observe_label(rid, ts, value):
            onsets.append(decision)
    return onsets


def test_delayed_labels_at_the_certified_accuracy_raise_no_alarm_over_a_long_run():
    rng = np.random.default_rng(5)
    d = DelayedLabelPerformance(baseline=0.9)
    assert feed_labels(d, labelled_stream(rng, 50_000, accuracy=0.9)) == []
    e = d.decision().evidence
    assert 0.87 < e["accuracy"] < 0.93 and e["duplicate"] > 1000 and e["expired"] > 3000 and e["orphan"] == 0


def test_delayed_labels_detect_an_accuracy_drop():
    rng = np.random.default_rng(6)
    d = DelayedLabelPerformance(baseline=0.9)
    events = labelled_stream(rng, 20_000, accuracy=0.9) + [
        (ts + 20_000, what, rid + "b", value) for ts, what, rid, value in labelled_stream(rng, 10_000, accuracy=0.8)
    ]
    onsets = feed_labels(d, events)
    assert len(onsets) == 1 and onsets[0].kind == "prediction"
    ev = onsets[0].evidence
    assert ev["accuracy_high"] < 0.88 and "below the certified 90.0%" in onsets[0].message


def test_delayed_labels_memory_is_bounded_and_late_labels_are_orphans():
    d = DelayedLabelPerformance(baseline=0.9, horizon_s=100, max_pending=50)
    for i in range(1000):
        d.observe_prediction(f"r{i}", i, 1)
    assert len(d._join.pending) <= 50
    d.observe_label("r0", 2000, 1)
    e = d.decision().evidence
    assert e["orphan"] == 1 and e["expired"] + e["dropped"] == 1000 and e["outcomes"] == 0


# ---------------------------------------------------------------- drift


def test_numeric_drift_quiet_then_flagged():
    rng = np.random.default_rng(7)
    d = PredictionDrift(reference=rng.beta(2, 5, 5000))
    quiet = [d.observe(float(v)) for v in rng.beta(2, 5, 20_000)]
    assert not any(quiet)
    onsets = [x for x in (d.observe(float(v)) for v in rng.beta(3, 4, 2000)) if x]
    assert len(onsets) == 1 and onsets[0].kind == "drift" and onsets[0].evidence["ks_p"] < 1e-4


def test_categorical_drift_with_learned_reference_and_new_classes():
    rng = np.random.default_rng(8)
    classes = np.array(["cat", "dog", "bird"])
    d = PredictionDrift(window=1000)
    quiet = [d.observe(str(v)) for v in rng.choice(classes, 20_000, p=[0.6, 0.3, 0.1])]
    assert not any(quiet) and d.decision().evidence["js_distance"] < 0.1
    shifted = rng.choice(np.r_[classes, ["fish"]], 2000, p=[0.3, 0.3, 0.1, 0.3])
    onsets = [x for x in (d.observe(str(v)) for v in shifted) if x]
    assert len(onsets) == 1 and onsets[0].evidence["psi"] > 0.25 and "drifted" in onsets[0].message

"""Leave-one-category-out scoring (load/nab_loo.py): NAB's one threshold per profile, chosen on the other categories."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "load"))
import nab  # noqa: E402
import nab_loo  # noqa: E402

from modelmedic.detectors import CalibratedBank  # noqa: E402

COSTS = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}


def _file(name: str, windows: list[tuple[int, int]], n: int = 1000) -> nab.DataFile:
    return nab.DataFile(name, [str(i) for i in range(n)], np.zeros(n), windows)


def test_a_held_out_low_fp_score_is_taken_at_the_low_fp_threshold_of_the_other_categories():
    # Training category: a second window is found at 0.3 only at the price of 12 false rows,
    # worth it at 0.11 a false row (standard: threshold 0.3) but not at 0.22 (low-FP: 0.9).
    train = _file("a/train.csv", [(500, 540), (800, 840)])
    s_train = np.zeros(1000)
    s_train[500], s_train[800], s_train[200:212] = 0.9, 0.3, 0.3
    # Held-out category: the same false rows, one window found at 0.9.
    held = _file("b/held.csv", [(500, 540)])
    s_held = np.zeros(1000)
    s_held[500], s_held[200:212] = 0.9, 0.3

    got, at_standard = nab_loo.held_out_scores(([train], [s_train]), ([held], [s_held]), COSTS)

    assert got[1] == pytest.approx(100.0)  # low-FP threshold 0.9: the window, no false row
    assert at_standard[0] == pytest.approx(100.0 * (1.0 - 12 * 0.22 + 1.0) / 2.0)  # threshold 0.3: 12 false rows
    assert got[0] == pytest.approx(100.0 * (1.0 - 12 * 0.11 + 1.0) / 2.0)
    assert got[2] == pytest.approx(at_standard[1])  # low-FN chose 0.3 too


def test_a_held_out_category_without_windows_has_no_normalized_score():
    train = _file("a/train.csv", [(500, 540)])
    got, at_standard = nab_loo.held_out_scores(([train], [np.zeros(1000)]), ([_file("b/none.csv", [])], [np.zeros(1000)]), COSTS)
    assert all(math.isnan(v) for v in got + at_standard)


def test_false_rows_are_the_rows_at_the_threshold_outside_windows_and_probation():
    f = _file("a/f.csv", [(500, 540)])
    s = np.zeros(1000)
    s[[10, 500, 520, 700, 900]] = [0.9, 0.9, 0.4, 0.5, 0.3]  # row 10 is in the probation (150 rows of 1000)
    assert f.probation > 10
    assert nab_loo.false_rows(f, s, 0.4).tolist() == [700]
    assert nab_loo.false_positives([f, f], [s, s], 0.3) == 4


def test_describe_false_rows_names_each_false_row_with_its_values_and_the_windows_found():
    f = _file("a/f.csv", [(500, 540), (800, 840)])
    f.values[697:701] = [1.0, 2.0, 3.0, 40.0]
    s = np.zeros(1000)
    s[[520, 700]] = [0.6, 0.5]
    lines = nab_loo.describe_false_rows(f, s, 0.5)
    assert lines[0] == "a/f.csv: 1 false rows; windows (first row at the threshold, or None): 500-540: 520, 800-840: None"
    assert len(lines) == 2 and "row    700" in lines[1] and "value 40" in lines[1] and "after [1, 2, 3]" in lines[1]
    assert lines[1].endswith("score 0.500")


def test_a_dead_sensor_and_a_halved_speed_are_found_by_the_sustained_channel():
    """Seeded synthTraffic files (default seed) whose sensor dies at the value of its usual brief
    dropouts (file 2) or whose speed halves for an incident (file 5's first window): each point is
    a surprise the series' everyday dropouts calibrate to 2-3 digits, and the points are learned one
    by one, so without the sustained channel (``sustain=0``) nothing in the window reaches 0.5; with
    it, the 12th point of the run does (CalibratedBank docstring, docs/detection.md)."""
    corpus = {f.name: f for f in nab_loo.synthetic_corpus(nab_loo.SEED)}
    for name, window in (("synthTraffic/synthTraffic_2.csv", 0), ("synthTraffic/synthTraffic_5.csv", 0)):
        f = corpus[name]
        a, b = f.windows[window]
        onset, t = (a + b) // 2, nab_loo.epochs(f)
        assert f.values[onset - 1] > 40 and f.values[onset] < 0.6 * f.values[onset - 1]  # the incident's first row
        before = CalibratedBank(sustain=0).score_series(f.values, t)[0]
        after = CalibratedBank().score_series(f.values, t)[0]
        assert before[a : b + 1].max() < 0.5, name
        found = np.flatnonzero(after[a : b + 1] >= 0.5) + a
        assert found.size and onset + 8 <= found[0] <= onset + 12, (name, found)

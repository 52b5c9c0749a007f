"""The NAB scorer (load/nab.py) on hand-checked slices and against published results; replay."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from modelmedic.cli import main as cli_main
from modelmedic.detectors import default_bank
from modelmedic.errors import ModelmedicError
from modelmedic.detection.replay import epoch_seconds, read_csv, replay_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "load"))
import nab  # noqa: E402

STANDARD = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}
LOW_FN = {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}


def toy(n: int = 100, windows=((40, 49),)) -> nab.DataFile:
    return nab.DataFile("toy/a.csv", [str(i) for i in range(n)], np.zeros(n), list(windows))


def test_scaled_sigmoid():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(3.5) == -1.0


def test_row_rewards_on_a_slice():
    f = toy()  # probation: 15 rows; one window, rows 40..49 (width 10)
    reward, window = nab.row_rewards(f, STANDARD)
    assert f.probation == 15 and (window[:15] == -2).all()
    assert reward[20] == -0.11  # before any window
    assert reward[40] == pytest.approx(1.0) and reward[49] == pytest.approx(nab.scaled_sigmoid(-0.1) / nab.scaled_sigmoid(-1))
    assert reward[50] == pytest.approx(0.11 * nab.scaled_sigmoid(1 / 9))  # one row past the window's end
    assert (window[40:50] == 0).all() and (window[50:] == -1).all()


def test_sweep_and_normalization_on_a_slice():
    f = toy()
    perfect = np.zeros(100)
    perfect[40] = 1.0
    assert nab.normalized_score([f], [perfect], STANDARD)[0] == pytest.approx(100.0)
    assert nab.normalized_score([f], [np.zeros(100)], STANDARD)[0] == pytest.approx(0.0)
    late = np.zeros(100)
    late[45], late[20], late[30] = 0.9, 0.95, 0.5  # a hit half-way, one FP above it, one below
    # best threshold 0.9: the hit and one false positive (the one at 0.5 is not detected)
    expected_raw = nab.scaled_sigmoid(-5 / 10) / nab.scaled_sigmoid(-1) - 0.11
    score, threshold = nab.normalized_score([f], [late], STANDARD)
    assert threshold == 0.9 and score == pytest.approx(100 * (expected_raw + 1) / 2)
    # low-FN doubles a miss: the null score moves, and so does the normalized one
    assert nab.normalized_score([f], [late], LOW_FN)[0] == pytest.approx(100 * (expected_raw + 2) / 3)


def test_windows_inside_probation_are_not_scored():
    f = toy(windows=((2, 8), (40, 49)))
    _, _, n_windows = nab.corpus_curve([f], [np.zeros(100)], STANDARD)
    assert n_windows == 1


def test_row_rewards_match_a_published_results_file():
    name = "realKnownCause/ec2_request_latency_system_failure.csv"
    f = nab.load_corpus(names=[name])[0]
    with open(nab.NAB_ROOT / "results/ARTime/realKnownCause/ARTime_ec2_request_latency_system_failure.csv") as fh:
        rows = list(csv.DictReader(fh))
    for profile, cost in nab.load_profiles().items():
        reward, _ = nab.row_rewards(f, cost)
        assert np.allclose(reward, [float(r[f"S(t)_{profile}"]) for r in rows], atol=1e-9)


def test_reproduces_the_published_score_of_a_published_detector():
    corpus = nab.load_corpus()
    published = json.loads((nab.NAB_ROOT / "published_scores_on_this_subset.json").read_text())["numenta"]
    assert nab.score_all(corpus, nab.published_scores("numenta", corpus)) == published


# ---------------------------------------------------------------- replay


def test_replay_scores_are_the_streaming_banks_scores():
    """Replay (one series alone, row by row) gives each series the scores the streaming path gives it:
    one bank holding many series in arbitrary slots, one ``score_learn`` call per window for all of them."""
    stamps = [str(1_704_067_200 + 300 * i) for i in range(600)]  # 5-minute rows, past the default bank's warm-up
    rng = np.random.default_rng(7)
    series = [10 * (k + 1) + np.sin(np.arange(len(stamps)) / 3.0) + rng.normal(0, 0.2, len(stamps)) for k in range(3)]
    series[1][500] += 25
    bank, slots = default_bank(), np.array([5, 0, 2])
    streamed = np.zeros((len(series), len(stamps)))
    for i, stamp in enumerate(stamps):
        at = np.full(len(series), epoch_seconds(stamp))
        streamed[:, i], _ = bank.score_learn(slots, np.array([x[i] for x in series]), at)
    for k, values in enumerate(series):
        # The batch path (score_series, one scalar loop) equals score_learn up to float rounding.
        np.testing.assert_allclose(replay_scores(stamps, values), streamed[k], rtol=0, atol=1e-12, err_msg=f"series {k}")
    assert int(np.argmax(streamed[1])) == 500, "the spike scores highest: the scores compared are not all zero"


def test_replay_command_prints_one_row_per_input_row(tmp_path):
    src = tmp_path / "series.csv"
    src.write_text("timestamp,value\n" + "".join(f"2024-01-01 00:{m:02d}:00,{10 + m % 3}\n" for m in range(60)))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["replay", str(src), "--detector", "robust"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 60 and list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert rows[7]["timestamp"] == "2024-01-01 00:07:00" and float(rows[7]["value"]) == 11
    dest = tmp_path / "scores.csv"
    assert cli_main(["replay", str(src), "-d", "robust", "--output", str(dest)]) == 0
    assert dest.read_text() == out.getvalue()


def test_replay_errors_say_what_to_do(tmp_path):
    with pytest.raises(ModelmedicError, match="pass an existing CSV"):
        read_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,v\n1,2\n")
    assert cli_main(["replay", str(bad)]) == 1  # a plain ModelmedicError: "other" (modelmedic.cli exit codes)
    with pytest.raises(ModelmedicError, match="choose one of"):
        replay_scores(["1"], [1.0], "nope")


def test_score_at_the_best_threshold_is_the_normalized_score_and_categories_split_the_corpus():
    a = toy()
    b = nab.DataFile("other/b.csv", a.timestamps, a.values, [(60, 69)])
    s_a, s_b = np.zeros(100), np.zeros(100)
    s_a[41], s_a[80], s_b[30] = 0.9, 0.6, 0.7  # a: early hit and one FP; b: only an FP
    best, threshold = nab.normalized_score([a, b], [s_a, s_b], STANDARD)
    assert nab.score_at([a, b], [s_a, s_b], STANDARD, threshold) == pytest.approx(best)
    assert nab.score_at([a], [s_a], STANDARD, 0.95) == pytest.approx(0.0)  # nothing detected: the null score
    one = nab.score_at([a], [s_a], STANDARD, threshold)
    assert one > nab.score_at([b], [s_b], STANDARD, threshold)

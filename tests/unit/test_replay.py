"""``modelmedic replay`` runs what the service runs (issue 13 item 1): a metric CSV through the
configured per-value bank's batch path, inference events through the real detection plane."""

from __future__ import annotations

import asyncio
import csv
import io
from contextlib import redirect_stdout

import numpy as np
import pytest

from load.fleet import FleetSpec, Incident, generate
from modelmedic.cli import main as cli_main
from modelmedic.config import DetectionSettings, load_settings
from modelmedic.detection.banks import ThroughputSeries, family_banks, series_bank
from modelmedic.detection.judge import WindowJudge
from modelmedic.detection.replay import replay_events, replay_scores
from modelmedic.errors import ConfigError
from modelmedic.events import decode_anomaly

START_MS = 1_767_225_600_000


def _csv(tmp_path, values) -> str:
    src = tmp_path / "series.csv"
    src.write_text("timestamp,value\n" + "".join(f"{1_704_067_200 + 300 * i},{v}\n" for i, v in enumerate(values)))
    return str(src)


def _counts(n: int = 800, seed: int = 5) -> np.ndarray:
    """Poisson counts with a burst: a throughput series as the judge sees it, one count per window."""
    x = np.random.default_rng(seed).poisson(4.0, n).astype(float)
    x[700:704] = 40
    return x


def test_the_csv_scores_come_from_detection_metric_bank_one_row_per_input_row(tmp_path) -> None:
    values = _counts()
    src = _csv(tmp_path, values)
    config = tmp_path / "settings.yaml"
    config.write_text("detection:\n  metric_bank: robust\n")
    runs = {}
    for name, argv in {"calibrated": [], "robust": ["--config", str(config)], "flag": ["--detector", "robust"]}.items():
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli_main(["replay", src, *argv]) == 0
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert len(rows) == values.size and list(rows[0]) == ["timestamp", "value", "anomaly_score"]
        runs[name] = np.array([float(r["anomaly_score"]) for r in rows])
        assert ((runs[name] >= 0) & (runs[name] <= 1)).all()
    assert np.array_equal(runs["robust"], runs["flag"])  # the configured bank is the flag's default
    assert not np.array_equal(runs["calibrated"], runs["robust"])
    assert int(np.argmax(runs["calibrated"])) == 700


def test_the_csv_scores_are_what_the_judge_s_bank_of_that_name_scores_window_by_window() -> None:
    """One construction path: a family set to ``calibrated`` holds the bank ``replay`` runs, and
    fed one count per window it scores what replay's batch path scores."""
    x = _counts()
    stamps = [str(1_704_067_200 + 300 * i) for i in range(x.size)]
    judge_bank = family_banks(DetectionSettings(throughput_bank="calibrated"))["throughput"]
    assert isinstance(judge_bank, ThroughputSeries) and repr(judge_bank.bank) == repr(series_bank("calibrated"))
    streamed = [judge_bank.bank.score_learn(np.array([3]), x[i:i + 1], np.array([float(stamps[i])]))[0][0]
                for i in range(x.size)]
    np.testing.assert_allclose(replay_scores(stamps, x, "calibrated"), streamed, rtol=0, atol=1e-12)
    assert max(streamed) >= 0.5


def test_an_unknown_bank_name_says_what_to_choose() -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        series_bank("nope")
    with pytest.raises(ConfigError, match="latency_bank"):
        load_settings(detection={"latency_bank": "nope"})


def _fleet_lines(seconds: float = 480) -> list[bytes]:
    spec = FleetSpec(models=6, rate=20, seed=3, canary_fraction=0.1, canary_every=3)
    return [value for _, value in generate(spec, [Incident.parse("latency_spike:model-002@240+120x4")], START_MS, seconds)]


def test_jsonl_events_go_through_the_plane_and_the_file_s_end_is_no_outage(tmp_path) -> None:
    lines = _fleet_lines()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in lines))
    out = tmp_path / "anomalies.jsonl"
    assert cli_main(["replay", str(events), "--output", str(out)]) == 0
    anomalies = [decode_anomaly(line) for line in out.read_bytes().splitlines()]
    assert [(a.model, a.kind, a.state) for a in anomalies] == [("model-002", "latency", "firing"),
                                                               ("model-002", "latency", "recovered")]
    assert anomalies[0].id == anomalies[1].id
    # Every model's traffic stops with the file: a live service idle-closing the windows after it
    # would have seen six drops. Cut 30 s into the step, the stream ends with the episode still open.
    early = asyncio.run(replay_events(lines[: len(lines) * 270 // 480], load_settings()))
    assert [(a.id, a.state) for a in early] == [(anomalies[0].id, "firing")]


def test_jsonl_replay_is_judged_by_the_configured_banks_and_refuses_a_detector(tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in _fleet_lines(360)))
    assert cli_main(["replay", str(events), "--detector", "robust"]) == 1  # a plain ModelmedicError: "other" (modelmedic.cli exit codes)
    settings = load_settings(detection={"latency_bank": "calibrated"})
    judge = WindowJudge(settings.detection)
    assert repr(judge.latency.bank.bank) == repr(series_bank("calibrated"))
    anomalies = asyncio.run(replay_events(_fleet_lines(360), settings))
    assert ("model-002", "latency", "firing") in [(a.model, a.kind, a.state) for a in anomalies]

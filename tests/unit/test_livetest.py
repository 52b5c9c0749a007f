"""Live-test verdicts: paired by request id, gates explained, too little evidence fails."""

from __future__ import annotations

from modelmedic.events import InferenceEvent
from modelmedic.release.livetest import LiveTestPolicy, LiveTestStats, judge, render_markdown


def _pair(stats: LiveTestStats, i: int, prod: object, shadow: object, shadow_ok: bool = True) -> None:
    stats.observe(InferenceEvent("m", "1.0.0", "production", f"r{i}", 1, 10.0, True, prod), 1e-6)
    stats.observe(InferenceEvent("m", "2.0.0", "shadow", f"r{i}", 1, 11.0, shadow_ok, shadow), 1e-6)


def test_numbers_agree_within_a_relative_tolerance_and_other_models_are_ignored():
    stats = LiveTestStats("m", "2.0.0")
    for i in range(300):
        _pair(stats, i, 100.0, 100.0 + 1e-5 if i % 2 else 101.0)
    stats.observe(InferenceEvent("other", "2.0.0", "shadow", "r1", 1, 1.0, True, 1.0), 1e-6)
    assert (stats.pairs, stats.disagreements, stats.shadow.requests) == (300, 150, 300)
    report = judge(stats, LiveTestPolicy())
    assert not report["passed"] and report["gates"][3]["observed"] == 0.5


def test_too_few_pairs_is_inconclusive_and_says_so():
    stats = LiveTestStats("m", "2.0.0")
    for i in range(10):
        _pair(stats, i, "a", "a")
    report = judge(stats, LiveTestPolicy(min_pairs=200))
    assert not report["passed"]
    assert [g["gate"] for g in report["gates"] if not g["passed"]] == ["paired requests"]
    assert "FAILED" in render_markdown(report) and "| paired requests | 10 | >= 200 | FAIL |" in render_markdown(report)


def test_shadow_errors_count_against_it():
    stats = LiveTestStats("m", "2.0.0")
    for i in range(400):
        _pair(stats, i, "a", "a", shadow_ok=i % 10 != 0)
    gates = {g["gate"]: g for g in judge(stats, LiveTestPolicy())["gates"]}
    assert not gates["error rate vs production"]["passed"] and gates["error rate vs production"]["observed"] == 0.1

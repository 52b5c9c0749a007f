"""Certification: policy parsing, inputs, gate arithmetic, report rendering, and a whole run over
httpx.MockTransport with a real git registry (no sockets)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import matplotlib.image
import pytest

from modelmedic.release.certification import certify
from modelmedic.release.inputs import CertificationPolicy, Sample, load_certification_policy, load_samples
from modelmedic.release.loadgen import Measurement, StepResult, measure
from modelmedic.release.report import (
    Gate,
    absolute_gates,
    build_report,
    plot_ladder,
    relative_gates,
    render_markdown,
    render_png,
)
from modelmedic.errors import CertificationInputError, EndpointError, PromotionError, RegistryValidationError
from modelmedic.registry import CertifiedBaseline, Registry, check_certification
from virtual_time import run_in_virtual_time

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def step(rate: float, p99: float, errors: int = 0, requests: int = 100, achieved: float | None = None) -> StepResult:
    """A step whose slowest 2% took ``p99`` ms and the rest half of it."""
    slow = max(1, requests // 50)
    return StepResult(rate_rps=rate, requests=requests, errors=errors, achieved_rps=rate if achieved is None else achieved,
                      latencies_ms=(p99 / 2,) * (requests - slow) + (p99,) * slow)


TAIL1 = {"min_tail_samples": 1}
"""A p99 from 100 requests: for the gate arithmetic below, not what a certification should do."""


def baseline(p99: float = 20.0, **quality: float) -> CertifiedBaseline:
    return check_certification({"latency_p50_ms": 5, "latency_p95_ms": 10, "latency_p99_ms": p99, "throughput_rps": 50,
                                "error_rate": 0.0, "quality": quality})


# ---------------------------------------------------------------- policy and inputs


def test_policy_defaults_and_a_yaml_file(tmp_path: Path) -> None:
    assert load_certification_policy(None) == CertificationPolicy()
    path = tmp_path / "policy.yaml"
    path.write_text("rates_rps: [5, 10]\nstep_s: 0.5\nmax_p99_ms: 80\ntask: regression\n")
    policy = load_certification_policy(path)
    assert (policy.rates_rps, policy.step_s, policy.max_p99_ms, policy.task) == ([5, 10], 0.5, 80, "regression")


@pytest.mark.parametrize(("text", "named"), [
    ("rates_rps: [50, 10]\n", "rates_rps"),
    ("max_error_rate: 2\n", "max_error_rate"),
    ("max_p99: 100\n", "max_p99"),  # a typo is an unknown field, not a silently ignored one
    ("task: ranking\n", "task"),
])
def test_an_invalid_policy_names_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(CertificationInputError, match=rf"policy .* is invalid: {named}"):
        load_certification_policy(path)


def test_a_missing_policy_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CertificationInputError, match="certification policy .* not found"):
        load_certification_policy(tmp_path / "absent.yaml")


def test_samples_get_ids_and_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"request_id": "a", "features": [1]}\n\n{"features": [2], "label": 1}\n')
    assert load_samples(path) == [Sample("a", [1]), Sample("line-3", [2], 1)]
    with pytest.raises(CertificationInputError, match=r"requests.jsonl:1: a holdout line needs a \"label\""):
        load_samples(path, labelled=True)
    path.write_text('{"features": [1]}\nnot json\n')
    with pytest.raises(CertificationInputError, match=r"requests.jsonl:2: not JSON"):
        load_samples(path)
    path.write_text('{"inputs": [1]}\n')
    with pytest.raises(CertificationInputError, match=r":1: give an object with \"features\""):
        load_samples(path)
    path.write_text("\n")
    with pytest.raises(CertificationInputError, match="holds no requests"):
        load_samples(path)


# ---------------------------------------------------------------- gates


def test_saturation_is_the_highest_rate_meeting_latency_and_errors_as_actually_sent() -> None:
    policy = CertificationPolicy(max_p99_ms=100, max_error_rate=0.01)
    m = Measurement(steps=(step(10, 20), step(25, 100), step(50, 101)), quality={}, holdout_size=0, holdout_errors=0)
    assert m.saturation_rps(policy) == 25  # 100 ms meets "<= 100"; 101 does not
    m = Measurement(steps=(step(10, 20), step(25, 30, errors=2)), quality={}, holdout_size=0, holdout_errors=0)
    assert m.saturation_rps(policy) == 10  # 2% errors at 25 req/s
    m = Measurement(steps=(step(10, 20, achieved=8.5),), quality={}, holdout_size=0, holdout_errors=0)
    assert m.saturation_rps(policy) == 8.5  # the client could not send 10 req/s: claim what was sent
    m = Measurement(steps=(step(10, 300),), quality={}, holdout_size=0, holdout_errors=0)
    assert m.saturation_rps(policy) == 0.0


def test_absolute_gates_pool_the_loaded_steps_and_count_all_requests_errors() -> None:
    policy = CertificationPolicy(max_p99_ms=50, max_error_rate=0.01, min_throughput_rps=25, **TAIL1)
    m = Measurement(steps=(step(10, 40, errors=1), step(25, 60, errors=2)), quality={}, holdout_size=0, holdout_errors=0)
    gates = {g.name: g for g in absolute_gates(m, policy)}
    assert (gates["p99_latency_ms"].observed, gates["p99_latency_ms"].passed) == (40, True)
    assert gates["p99_latency_ms"].note == "100 requests at 10 req/s"  # 25 req/s missed 50 ms: not a loaded step
    assert (gates["error_rate"].observed, gates["error_rate"].passed) == (0.015, False)
    assert (gates["throughput_rps"].observed, gates["throughput_rps"].passed) == (10, False)  # 25 req/s missed 50 ms
    assert gates["error_rate"].describe() == "error_rate: FAILED, observed 0.015, must be <= 0.01"

    loaded = Measurement(steps=(step(10, 40), step(25, 30, requests=900)), quality={}, holdout_size=0, holdout_errors=0)
    head = loaded.headline(policy.model_copy(update={"min_tail_samples": 10}))
    assert (head.requests, head.p99_ms) == (1000, 30), "both steps pooled: the loaded p99, not the unloaded one"


def test_a_p99_from_too_few_requests_is_insufficient_and_fails_its_gate() -> None:
    policy = CertificationPolicy(max_p99_ms=50)  # min_tail_samples 10: a p99 needs 1,000 requests
    m = Measurement(steps=(step(10, 40, requests=300),), quality={}, holdout_size=0, holdout_errors=0)
    gate = {g.name: g for g in absolute_gates(m, policy)}["p99_latency_ms"]
    assert (gate.observed, gate.passed) == (None, False)
    assert gate.describe() == ("p99_latency_ms: FAILED, observed -, must be <= 50 (insufficient: 300 requests at 10 "
                               "req/s, a p99 needs 1000; raise step_s or the rates)")
    report = build_report("fraud", "v1.0.0", "http://x", policy, m, [gate], None, NOW)
    assert (report["latency_p95_ms"], report["latency_p99_ms"], report["passed"]) == (20.0, None, False)
    assert check_certification(report).latency_p99_ms is None  # a failed report may say "insufficient"
    with pytest.raises(RegistryValidationError):
        check_certification({**report, "passed": True})  # a baseline never may


def test_a_first_version_is_judged_on_absolute_quality_floors() -> None:
    m = Measurement(steps=(step(10, 40),), quality={"accuracy": 0.0}, holdout_size=200, holdout_errors=0)
    nothing = CertificationPolicy(min_throughput_rps=10, **TAIL1)
    refused = [g for g in absolute_gates(m, nothing) + relative_gates(m, nothing, None, None) if g.passed is False]
    assert [g.name for g in refused] == ["quality"]
    assert refused[0].note.startswith("no stable version yet and no absolute floor: set min_quality / max_quality")
    floors = nothing.with_model_gates({"min_quality": {"accuracy": 0.9}, "max_quality": {"mae": 1.0}})
    gates = {g.name: g for g in absolute_gates(m, floors) + relative_gates(m, floors, None, None)}
    assert gates["quality_floor.accuracy"].describe() == (
        "quality_floor.accuracy: FAILED, observed 0, must be >= 0.9 (min_quality in the policy or model.yaml)")
    assert gates["quality_ceiling.mae"].passed is False and "mae was not measured" in gates["quality_ceiling.mae"].note
    assert "quality" not in gates, "a floor judges the first version"


def test_model_gates_override_the_policy_metric_by_metric() -> None:
    policy = CertificationPolicy(max_p99_ms=250, min_quality={"accuracy": 0.8, "recall": 0.5})
    merged = policy.with_model_gates({"max_p99_ms": 100, "min_quality": {"accuracy": 0.95}, "require_live_test": True})
    assert (merged.max_p99_ms, merged.min_quality) == (100, {"accuracy": 0.95, "recall": 0.5})


def test_relative_gates_compare_quality_both_ways_and_latency_as_a_ratio() -> None:
    policy = CertificationPolicy(max_quality_regression=0.1, max_latency_ratio=2.0, **TAIL1)
    m = Measurement(steps=(step(10, 40),), quality={"accuracy": 0.81, "mae": 1.2}, holdout_size=10, holdout_errors=0)
    gates = {g.name: g for g in relative_gates(m, policy, baseline(p99=20, accuracy=0.9, mae=1.0), "v1.0.0")}
    assert (gates["quality.accuracy"].threshold, gates["quality.accuracy"].passed) == (0.81, True)  # 0.9 x (1 - 0.1)
    assert (gates["quality.mae"].threshold, gates["quality.mae"].passed) == (1.1, False)  # lower is better: 1.0 x 1.1
    assert (gates["p99_latency_ratio"].observed, gates["p99_latency_ratio"].passed) == (2.0, True)
    assert "vs stable v1.0.0" in gates["p99_latency_ratio"].note


def test_relative_gates_are_not_evaluated_without_something_to_compare() -> None:
    policy = CertificationPolicy(min_quality={"accuracy": 0.5}, **TAIL1)
    m = Measurement(steps=(step(10, 40),), quality={"accuracy": 0.9}, holdout_size=10, holdout_errors=0)
    [gate] = relative_gates(m, policy, None, None)
    assert gate.passed is None and gate.describe() == "relative_to_stable: not evaluated (no stable version yet)"
    [gate] = relative_gates(m, policy, None, "v1.0.0")
    assert gate.note == "stable v1.0.0 has no certification report"
    gates = {g.name: g for g in relative_gates(m, policy, baseline(rmse=1.0), "v1.0.0")}
    assert gates["quality.accuracy"].passed is None and gates["quality.accuracy"].note == "stable v1.0.0 has no accuracy"
    assert gates["quality.rmse"].passed is None and gates["quality.rmse"].note == "the candidate has no rmse"


def test_a_report_is_a_registry_baseline_and_renders_every_gate_and_step() -> None:
    policy = CertificationPolicy(max_p99_ms=50, min_throughput_rps=10, **TAIL1)
    m = Measurement(steps=(step(10, 40), step(25, 70)), quality={"accuracy": 0.5}, holdout_size=4, holdout_errors=1)
    gates = absolute_gates(m, policy) + relative_gates(m, policy, baseline(accuracy=0.9), "v1.0.0")
    report = build_report("fraud", "v2.0.0", "http://x", policy, m, gates, "v1.0.0", NOW)
    assert check_certification(report).latency_p99_ms == 40
    assert (report["throughput_rps"], report["passed"], report["certified_at"]) == (10, False, "2026-11-25T12:00:00+00:00")
    markdown = render_markdown(report)
    assert markdown.startswith("# Certification of fraud v2.0.0: FAILED: not certified")
    assert "| quality.accuracy | **FAIL** | 0.5 | >= 0.882 | stable v1.0.0: 0.9 |" in markdown
    assert "| p99_latency_ms | pass | 40 | <= 50 | 100 requests at 10 req/s |" in markdown
    assert "| 25 | 25 | 100 | 0 | 35 | 35 | 70 | 70 |" in markdown
    assert "p99 40 ms over 100 requests at 10 req/s (after 50 warm-up requests)" in markdown
    assert "holdout 4, 1 unanswered" in markdown


def ladder_report(passed_through: int = 25) -> dict:
    """A report whose ladder meets the 50 ms objective up to ``passed_through`` req/s, then misses it."""
    policy = CertificationPolicy(max_p99_ms=50, **TAIL1)
    steps = tuple(step(rate, 20 if rate <= passed_through else 90, errors=0 if rate <= passed_through else 3)
                  for rate in (10, 25, 50))
    m = Measurement(steps=steps, quality={}, holdout_size=0, holdout_errors=0)
    return build_report("fraud", "v2.0.0", "http://x", policy, m, absolute_gates(m, policy), None, NOW)


def test_the_chart_has_axes_with_units_a_legend_a_title_and_the_saturation_point() -> None:
    report = ladder_report()
    fig = plot_ladder(report)
    latency, errors = fig.axes
    assert latency.get_ylabel() == "latency (ms)"
    assert errors.get_xlabel() == "offered rate (requests/s)" and errors.get_ylabel() == "errors (%)"
    labels = [t.get_text() for t in latency.get_legend().get_texts()]
    assert labels == ["p50", "p95", "p99", "p99 objective 50 ms", "saturation 25 req/s"]
    assert [t.get_text() for t in errors.get_legend().get_texts()] == ["error rate", "error budget 1%"]
    assert fig.get_suptitle() == "fraud v2.0.0: latency and errors per offered rate (certified)"
    p99 = next(line for line in latency.get_lines() if line.get_label() == "p99")
    assert list(p99.get_xdata()) == [10, 25, 50] and list(p99.get_ydata()) == [20, 20, 90]
    saturation = next(line for line in latency.get_lines() if line.get_label().startswith("saturation"))
    assert list(saturation.get_xdata()) == [25, 25], "a vertical line at the saturation throughput"


def test_a_ladder_that_never_met_the_objective_says_so_in_the_legend() -> None:
    labels = [t.get_text() for t in plot_ladder(ladder_report(passed_through=0)).axes[0].get_legend().get_texts()]
    assert "saturation: no rate met the objective" in labels


def test_the_png_is_a_readable_800_by_600_picture() -> None:
    data = render_png(ladder_report())
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (600, 800)
    assert pixels[..., :3].std() > 0.05, "something is drawn on the white canvas"
    assert matplotlib.image.imread(io.BytesIO(render_png(ladder_report(), dpi=50)), format="png").shape[:2] == (300, 400)


# ---------------------------------------------------------------- measuring over MockTransport


def classifier(fail_ids: frozenset[str] = frozenset(), delay_s: float = 0.0, wrong: bool = False,
               version: str = "v1.0.0") -> httpx.MockTransport:
    """A fake model server of ``version``: label = sum(features) > 0, answered after ``delay_s``; 500 for ``fail_ids``."""

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        await asyncio.sleep(delay_s)
        if body["request_id"] in fail_ids:
            return httpx.Response(500, json={"error": "boom"})
        label = int(sum(body["features"]) > 0)
        return httpx.Response(200, json={"prediction": 1 - label if wrong else label, "version": version})

    return httpx.MockTransport(handle)


SAMPLES = [Sample(f"r{i}", [i - 5]) for i in range(10)]
HOLDOUT = [Sample(f"h{i}", [i - 5], int(i - 5 > 0)) for i in range(10)]
FAST = CertificationPolicy(rates_rps=[500, 1000], step_s=0.1, max_p99_ms=1000, min_throughput_rps=50, warmup_requests=0,
                           min_quality={"accuracy": 0.9}, **TAIL1)


async def test_measure_runs_the_ladder_counts_errors_and_scores_the_holdout() -> None:
    policy = FAST.model_copy(update={"max_error_rate": 0.2})  # 10% errors must not stop the ladder here
    m = await measure("http://model", SAMPLES, HOLDOUT, policy, transport=classifier(frozenset({"r3", "h1"})))
    assert [(s.rate_rps, s.requests) for s in m.steps] == [(500, 50), (1000, 100)]
    assert [s.errors for s in m.steps] == [5, 10]  # r3 once per pass over the 10 samples
    assert (m.quality, m.holdout_errors) == ({"accuracy": 1.0}, 1)


async def test_the_ladder_stops_at_the_first_rate_missing_the_objective() -> None:
    policy = FAST.model_copy(update={"max_p99_ms": 20})
    lines: list[str] = []
    m = await measure("http://model", SAMPLES, None, policy, transport=classifier(delay_s=0.05), progress=lines.append)
    assert len(m.steps) == 1 and m.steps[0].tail_ms >= 50
    assert lines[-1].startswith("stopping the ladder: 500 req/s misses p99 <= 20 ms")
    assert m.quality == {} and m.holdout_size == 0


async def test_regression_labels_are_scored_with_mae_and_rmse() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"prediction": json.loads(request.content)["features"][0] * 2.0})

    holdout = [Sample("a", [1.0], 2.5), Sample("b", [2.0], 3.0)]
    m = await measure("http://model", holdout, holdout, FAST, transport=httpx.MockTransport(handle))
    assert m.quality == {"mae": 0.75, "rmse": 0.790569}


async def test_an_unreachable_endpoint_is_one_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EndpointError, match="cannot reach the candidate at http://model"):
        await measure("http://model", SAMPLES, None, FAST, transport=httpx.MockTransport(refuse))


# ---------------------------------------------------------------- a whole certification with a real git registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud", owners=["risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "integer"}})
    for n in (1, 2):
        reg.add_version("fraud", f"{n}.0.0", f"release {n}", f"s3://m/fraud/{n}", "sha256:" + str(n) * 64)
    return reg


async def test_a_passing_version_is_certified_with_its_report_beside_it(registry: Registry) -> None:
    result = await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, FAST,
                           transport=classifier(), now=lambda: NOW)
    assert result.passed and result.promoted
    assert registry.stage("fraud", "v1.0.0") == "certified"
    assert registry.certified_baseline("fraud", "v1.0.0").quality == {"accuracy": 1.0}
    markdown = registry.path / "models" / "fraud" / "versions" / "v1.0.0.cert.md"
    assert markdown.read_text() == result.markdown


async def test_a_failing_version_is_reported_and_cannot_be_certified_by_hand(registry: Registry) -> None:
    await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, FAST, transport=classifier())
    registry.promote("fraud", "v1.0.0", "stable")
    quality_only = FAST.model_copy(update={"max_latency_ratio": 1e9})  # sub-millisecond latencies: ratios are noise
    result = await certify(registry, "fraud", "2.0.0", "http://model", SAMPLES, HOLDOUT, quality_only,
                           transport=classifier(wrong=True, version="v2.0.0"))
    assert not result.passed and not result.promoted
    assert [g.name for g in result.failures] == ["quality_floor.accuracy", "quality.accuracy"]
    assert result.report["compared_with"] == "v1.0.0" and result.report["passed"] is False
    assert registry.stage("fraud", "v2.0.0") is None
    with pytest.raises(PromotionError, match="its certification report failed its gates"):
        registry.promote("fraud", "v2.0.0", "certified")


async def test_recertifying_the_stable_version_keeps_its_stage(registry: Registry) -> None:
    await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, FAST, transport=classifier())
    registry.promote("fraud", "v1.0.0", "stable")
    result = await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, FAST, transport=classifier())
    assert result.passed and not result.promoted
    assert result.report["compared_with"] is None  # never against itself
    assert registry.stage("fraud", "v1.0.0") == "stable"


async def test_an_endpoint_serving_another_version_is_refused_before_any_load(registry: Registry) -> None:
    with pytest.raises(EndpointError, match="http://model serves v1.0.0, not v2.0.0: point --endpoint at the candidate"):
        await certify(registry, "fraud", "2.0.0", "http://model", SAMPLES, HOLDOUT, FAST, transport=classifier())
    assert not (registry.path / "models" / "fraud" / "versions" / "v2.0.0.cert.json").exists()


async def test_a_first_version_with_accuracy_0_is_refused_with_the_gate_named(registry: Registry) -> None:
    """Issue 16: 'holdout: {accuracy: 0.0} ... PASSED: certified', because quality gates were only relative."""
    no_floor = FAST.model_copy(update={"min_quality": {}})
    result = await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, no_floor,
                           transport=classifier(wrong=True))
    assert result.report["quality"] == {"accuracy": 0.0}
    assert [g.name for g in result.failures] == ["quality"] and registry.stage("fraud", "v1.0.0") is None

    spec = registry.spec("fraud")
    registry.register_model("fraud", description=spec.description, owners=spec.owners, interface=spec.interface,
                            gates={"min_quality": {"accuracy": 0.95}}, update=True)
    result = await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, no_floor,
                           transport=classifier(wrong=True))
    assert [g.describe() for g in result.failures] == [
        "quality_floor.accuracy: FAILED, observed 0, must be >= 0.95 (min_quality in the policy or model.yaml)"]


def test_warm_up_requests_are_sent_first_and_left_out_of_every_figure() -> None:
    """On a virtual clock (tests/unit/virtual_time.py): the fake server's 300 ms are exact and a starved test
    process adds no latency, so the steps' figures are the server's answers, 0 ms, whatever the machine's load."""
    seen: list[str] = []

    async def cold_start(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["request_id"])
        await asyncio.sleep(0.3 if len(seen) <= 6 else 0.0)  # the preflight and the first 5 requests are slow
        return httpx.Response(200, json={"prediction": 1})

    policy = FAST.model_copy(update={"warmup_requests": 5, "max_p99_ms": 200})
    m = run_in_virtual_time(measure("http://model", SAMPLES, None, policy, transport=httpx.MockTransport(cold_start)))
    assert len(seen) == 1 + 5 + 50 + 100  # preflight, warm-up, the two steps
    assert [s.requests for s in m.steps] == [50, 100] and all(s.meets(policy) for s in m.steps)
    assert {x for s in m.steps for x in s.latencies_ms} == {0.0} and m.headline(policy).p99_ms == 0.0
    assert m.headline(policy).p99_ms < 200


async def test_the_versions_interface_is_enforced_on_its_certification_traffic(registry: Registry) -> None:
    """Issue 16 item 7: requests sent must match the version's input schema, predictions its output schema."""
    result = await certify(registry, "fraud", "1.0.0", "http://model", SAMPLES, HOLDOUT, FAST, transport=classifier())
    gates = {g.name: g for g in map(lambda d: Gate(**d), result.report["gates"])}
    assert gates["interface.input"].describe() == "interface.input: passed, observed 0, must be <= 0 (20 requests checked)"
    assert gates["interface.output"].passed and result.passed

    # v3.0.0 declares its own interface (a break, so a new major): one required non-negative feature, named
    # (the request's first feature is its first property, as the live input monitor sees it), string answers
    strict = {"input": {"type": "object", "required": ["amount"],
                        "properties": {"amount": {"type": "number", "minimum": 0}}},
              "output": {"type": "string"}}
    registry.add_version("fraud", "3.0.0", "strict contract", "s3://m/fraud/3", "sha256:" + "3" * 64, interface=strict)
    result = await certify(registry, "fraud", "3.0.0", "http://model", SAMPLES, HOLDOUT, FAST,
                           transport=classifier(version="v3.0.0"))
    failed = {g.name: g.describe() for g in result.failures}
    assert failed["interface.input"] == ("interface.input: FAILED, observed 10, must be <= 0 (10 of 20 requests; "
                                         "first: #0 at amount: -5 is less than the minimum of 0)")
    assert failed["interface.output"] == ("interface.output: FAILED, observed 10, must be <= 0 (10 of 10 holdout "
                                          "predictions; first: #0 at <root>: 0 is not of type 'string')")
    assert registry.stage("fraud", "v3.0.0") is None

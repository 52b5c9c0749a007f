"""The model registry against real git repositories in temporary directories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelmedic.errors import (
    CertificationMissingError,
    InvalidVersionError,
    ModelExistsError,
    NotARegistryError,
    PromotionError,
    RegistryValidationError,
    SchemaError,
    UnknownModelError,
    UnknownVersionError,
    VersionExistsError,
)
from modelmedic.registry import ModelSummary, Registry, StableVersions, StatsBuffer, UsageStats

DIGEST = "sha256:" + "0" * 64
INTERFACE = {
    "input": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]},
    "output": {"type": "number"},
}
REPORT = {"latency_p50_ms": 10, "latency_p95_ms": 25, "latency_p99_ms": 40, "throughput_rps": 250,
          "error_rate": 0.002, "quality": {"auc": 0.91}, "reference": {"mean_prediction": 0.1}}


class FakeClock:
    """Wall clock under the test's control, for the stats flush interval."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Card fraud score", owners=["risk-team"], interface=INTERFACE,
                            languages=["python"], runtime="onnxruntime 1.17")
    return registry


def add(reg: Registry, version: str, model: str = "fraud") -> str:
    return reg.add_version(model, version, f"notes for {version}", f"s3://models/{model}/{version}", DIGEST).version


def certify(reg: Registry, version: str, model: str = "fraud") -> None:
    reg.attach_certification(model, version, REPORT)
    reg.promote(model, version, "certified")


# --------------------------------------------------------------------------- models


def test_register_model_commits_model_yaml_and_show_reads_it_back(reg: Registry) -> None:
    spec = reg.show("fraud").spec
    assert (spec.description, spec.owners, spec.interface) == ("Card fraud score", ("risk-team",), INTERFACE)
    assert (spec.languages, spec.runtime) == (("python",), "onnxruntime 1.17")
    assert git(reg.path, "log", "-1", "--format=%s") == "Register model fraud"
    assert git(reg.path, "status", "--porcelain") == ""


@pytest.mark.parametrize("interface, where", [
    ({"input": {"type": "vector"}, "output": {}}, "interface.input/type"),
    ({"input": {"properties": []}, "output": {}}, "interface.input/properties"),
    ({"input": {"properties": {"x": 3}}, "output": {}}, "interface.input/properties/x"),
    ({"input": {}, "output": {"items": {"required": "x"}}}, "interface.output/items/required"),
    ({"input": {}, "output": {"anyOf": [{"type": "number"}, "string"]}}, "interface.output/anyOf/1"),
    ({"input": "{}", "output": {}}, "interface.input"),
    ({"input": {}}, "interface must be"),
])
def test_register_rejects_interfaces_that_are_not_json_schema(reg: Registry, interface: dict, where: str) -> None:
    with pytest.raises(SchemaError, match=where.replace(".", r"\.")):
        reg.register_model("other", description="d", owners=["o"], interface=interface)
    assert not (reg.path / "models" / "other").exists()


def test_register_twice_needs_update_and_update_needs_a_model(reg: Registry) -> None:
    with pytest.raises(ModelExistsError, match="update"):
        reg.register_model("fraud", description="again", owners=["x"], interface=INTERFACE)
    reg.register_model("fraud", description="Card fraud score v2", owners=["x"], interface=INTERFACE, update=True)
    assert reg.show("fraud").spec.description == "Card fraud score v2"
    with pytest.raises(UnknownModelError):
        reg.register_model("nope", description="d", owners=["o"], interface=INTERFACE, update=True)


@pytest.mark.parametrize("name", ["Fraud", "fraud_v2", "-fraud", "fraud-", "a/b", ""])
def test_register_rejects_names_gto_cannot_tag(reg: Registry, name: str) -> None:
    with pytest.raises(RegistryValidationError, match="model name"):
        reg.register_model(name, description="d", owners=["o"], interface=INTERFACE)


def test_register_requires_description_and_owners(reg: Registry) -> None:
    with pytest.raises(RegistryValidationError, match="description"):
        reg.register_model("other", description=" ", owners=["o"], interface=INTERFACE)
    with pytest.raises(RegistryValidationError, match="owner"):
        reg.register_model("other", description="d", owners=[], interface=INTERFACE)


def test_unknown_model_is_reported_with_the_fix(reg: Registry) -> None:
    for call in (lambda: reg.show("ghost"), lambda: reg.stable_version("ghost"), lambda: add(reg, "1.0.0", "ghost"),
                 lambda: reg.promote("ghost", "1.0.0", "candidate"), lambda: reg.history("ghost")):
        with pytest.raises(UnknownModelError, match="registry list"):
            call()


def test_a_directory_that_is_not_a_registry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotARegistryError, match="registry init"):
        Registry(tmp_path)
    git(tmp_path, "init", "-q")
    with pytest.raises(NotARegistryError, match="registry.yaml"):
        Registry(tmp_path)


def test_init_is_idempotent(reg: Registry) -> None:
    head = git(reg.path, "rev-parse", "HEAD")
    Registry.init(reg.path)
    assert git(reg.path, "rev-parse", "HEAD") == head


# --------------------------------------------------------------------------- versions


def test_add_version_tags_an_annotated_gto_tag_with_the_notes_on_its_own_commit(reg: Registry) -> None:
    info = reg.add_version("fraud", "1.0.0", "First release\n\nTrained on 2026-Q3.", "s3://m/fraud/1", DIGEST)
    add(reg, "1.1.0")
    assert (info.version, info.stage, info.notes) == ("v1.0.0", None, "First release\n\nTrained on 2026-Q3.")
    assert git(reg.path, "cat-file", "-t", "fraud@v1.0.0") == "tag"
    assert git(reg.path, "tag", "-l", "--format=%(contents)", "fraud@v1.0.0") == "First release\n\nTrained on 2026-Q3."
    assert git(reg.path, "rev-parse", "fraud@v1.0.0^{commit}") == info.commit != git(reg.path, "rev-parse",
                                                                                       "fraud@v1.1.0^{commit}")
    assert git(reg.path, "show", f"{info.commit}:models/fraud/versions/v1.0.0.yaml").splitlines() == [
        "model: fraud", "version: v1.0.0", "artifact_uri: s3://m/fraud/1", f"digest: {DIGEST}"]


@pytest.mark.parametrize("version", ["1.0", "v1", "01.0.0", "1.0.0-", "latest", "1.0.0.0", "V1.0.0"])
def test_add_version_rejects_versions_that_are_not_semver(reg: Registry, version: str) -> None:
    with pytest.raises(InvalidVersionError, match="semantic version"):
        add(reg, version)


def test_add_version_refuses_an_existing_version_tag(reg: Registry) -> None:
    add(reg, "v1.0.0")
    with pytest.raises(VersionExistsError, match="immutable"):
        add(reg, "1.0.0")


@pytest.mark.parametrize("uri, digest, match", [
    ("models/fraud.onnx", DIGEST, "scheme"),
    ("s3://m/x", "sha256:abc", "digest"),
    ("s3://m/x", "md5:" + "0" * 32, "digest"),
])
def test_add_version_validates_artifact_and_digest(reg: Registry, uri: str, digest: str, match: str) -> None:
    with pytest.raises(RegistryValidationError, match=match):
        reg.add_version("fraud", "1.0.0", "notes", uri, digest)


def test_add_version_requires_release_notes(reg: Registry) -> None:
    with pytest.raises(RegistryValidationError, match="release notes"):
        reg.add_version("fraud", "1.0.0", "  ", "s3://m/x", DIGEST)


def test_show_lists_versions_in_semver_order(reg: Registry) -> None:
    for version in ["1.10.0", "1.2.0", "1.2.0-rc.1"]:
        add(reg, version)
    assert [v.version for v in reg.show("fraud").versions] == ["v1.2.0-rc.1", "v1.2.0", "v1.10.0"]


# --------------------------------------------------------------------------- stages


def test_promotion_to_stable_or_canary_must_not_skip_certification(reg: Registry) -> None:
    add(reg, "1.0.0")
    reg.promote("fraud", "1.0.0", "candidate")
    for stage in ("stable", "canary"):
        with pytest.raises(PromotionError, match="never certified"):
            reg.promote("fraud", "1.0.0", stage)
    assert reg.stable_version("fraud") is None


def test_certified_needs_a_certification_report(reg: Registry) -> None:
    add(reg, "1.0.0")
    with pytest.raises(PromotionError, match="attach-certification"):
        reg.promote("fraud", "1.0.0", "certified")
    reg.attach_certification("fraud", "1.0.0", REPORT)
    assert reg.promote("fraud", "1.0.0", "certified").stage == "certified"


def test_force_overrides_the_guards_and_says_so_in_the_tag(reg: Registry) -> None:
    add(reg, "1.0.0")
    assignment = reg.promote("fraud", "1.0.0", "stable", force=True, reason="hotfix approved by on-call")
    assert reg.stable_version("fraud") == "v1.0.0"
    assert "hotfix approved by on-call" in assignment.message and "forced" in assignment.message


def test_promote_unknown_version_or_stage(reg: Registry) -> None:
    add(reg, "1.0.0")
    with pytest.raises(UnknownVersionError, match=r"registered: v1\.0\.0"):
        reg.promote("fraud", "2.0.0", "candidate")
    with pytest.raises(PromotionError, match="unknown stage"):
        reg.promote("fraud", "1.0.0", "production")


def test_lifecycle_with_gto_tags_stable_previous_and_rollback(reg: Registry) -> None:
    for version in ("1.0.0", "1.1.0"):
        add(reg, version)
        certify(reg, version)
    reg.promote("fraud", "1.0.0", "stable")
    reg.promote("fraud", "1.1.0", "canary")
    assert reg.stable_versions("fraud") == StableVersions("fraud", "v1.0.0", None, "v1.1.0")
    reg.promote("fraud", "1.1.0", "stable")
    assert reg.stable_versions("fraud") == StableVersions("fraud", "v1.1.0", "v1.0.0", None)
    assert (reg.stage("fraud", "1.0.0"), reg.stage("fraud", "1.1.0")) == ("certified", "stable")
    assert sorted(git(reg.path, "tag", "-l", "fraud#*").split(), key=lambda t: int(t.rsplit("#")[-1])) == [
        "fraud#certified#1", "fraud#certified#2", "fraud#stable#3", "fraud#canary#4", "fraud#stable#5"]
    # GTO resolves a stage tag to the version tag on the same commit.
    assert git(reg.path, "rev-parse", "fraud#stable#5^{commit}") == git(reg.path, "rev-parse", "fraud@v1.1.0^{commit}")

    reg.promote("fraud", "1.0.0", "stable", reason="rollback: p99 regression")  # roll back: allowed, was certified
    assert (reg.stable_version("fraud"), reg.previous_stable_version("fraud")) == ("v1.0.0", "v1.1.0")
    reg.promote("fraud", "1.1.0", "retired")
    assert (reg.stable_version("fraud"), reg.previous_stable_version("fraud")) == ("v1.0.0", None)
    view = reg.show("fraud")
    assert (view.stable, view.previous_stable, view.canary) == ("v1.0.0", None, None)
    assert [v.stage for v in view.versions] == ["stable", "retired"]


def test_retired_stays_retired_and_same_stage_is_refused(reg: Registry) -> None:
    add(reg, "1.0.0")
    certify(reg, "1.0.0")
    with pytest.raises(PromotionError, match="already certified"):
        reg.promote("fraud", "1.0.0", "certified")
    reg.promote("fraud", "1.0.0", "retired")
    with pytest.raises(PromotionError, match="retired"):
        reg.promote("fraud", "1.0.0", "stable")


def test_assignment_times_strictly_increase_so_gto_orders_them_like_we_do(reg: Registry) -> None:
    add(reg, "1.0.0")
    for stage in ("candidate", "retired"):
        reg.promote("fraud", "1.0.0", stage, force=True)
    add(reg, "1.1.0")
    certify(reg, "1.1.0")
    times = [e.created_at for e in reg.history("fraud") if e.action == "assign"]
    assert len(times) == 3 and times[0] < times[1] < times[2]


def test_stage_tags_written_by_other_gto_tools_are_read(reg: Registry) -> None:
    add(reg, "1.0.0")
    commit = git(reg.path, "rev-parse", "fraud@v1.0.0^{commit}")
    git(reg.path, "tag", "-a", "fraud#stable#7", "-m", "gto assign", commit)
    assert reg.stable_version("fraud") == "v1.0.0"
    add(reg, "1.1.0")
    assert reg.promote("fraud", "1.1.0", "candidate").tag == "fraud#candidate#8"


def test_the_stable_version_is_not_retired_before_another_takes_over(reg: Registry) -> None:
    for version in ("1.0.0", "1.1.0"):
        add(reg, version)
        certify(reg, version)
        reg.promote("fraud", version, "stable")
    with pytest.raises(PromotionError, match=r"previous stable is v1\.0\.0"):
        reg.promote("fraud", "1.1.0", "retired")
    reg.promote("fraud", "1.1.0", "retired", force=True, reason="data leak, pulled at once")
    assert reg.stable_versions("fraud") == StableVersions("fraud", None, "v1.0.0", None)


def test_history_lists_registrations_then_assignments(reg: Registry) -> None:
    add(reg, "1.0.0")
    certify(reg, "1.0.0")
    events = reg.history("fraud")
    assert [(e.action, e.version, e.stage, e.tag) for e in events] == [
        ("register", "v1.0.0", None, "fraud@v1.0.0"), ("assign", "v1.0.0", "certified", "fraud#certified#1")]
    assert events[0].message == "notes for 1.0.0"


# --------------------------------------------------------------------------- certification


def test_certified_baseline_round_trip_keeps_the_whole_report(reg: Registry) -> None:
    add(reg, "1.0.0")
    with pytest.raises(CertificationMissingError, match="attach-certification"):
        reg.certified_baseline("fraud", "1.0.0")
    reg.attach_certification("fraud", "v1.0.0", REPORT)
    baseline = reg.certified_baseline("fraud", "1.0.0")
    assert (baseline.latency_p99_ms, baseline.throughput_rps, baseline.error_rate) == (40.0, 250.0, 0.002)
    assert baseline.quality == {"auc": 0.91} and baseline.report["reference"] == {"mean_prediction": 0.1}
    assert json.loads(git(reg.path, "show", "HEAD:models/fraud/versions/v1.0.0.cert.json")) == REPORT


@pytest.mark.parametrize("report, match", [
    ({k: v for k, v in REPORT.items() if k != "latency_p99_ms"}, "latency_p99_ms"),
    ({**REPORT, "error_rate": 3}, "error_rate"),
    ({**REPORT, "quality": 0.9}, "quality must map"),
    ({**REPORT, "throughput_rps": "fast"}, "numbers"),
])
def test_attach_certification_validates_the_report(reg: Registry, report: dict, match: str) -> None:
    add(reg, "1.0.0")
    with pytest.raises(RegistryValidationError, match=match):
        reg.attach_certification("fraud", "1.0.0", report)


def test_attach_certification_to_unknown_version(reg: Registry) -> None:
    with pytest.raises(UnknownVersionError):
        reg.attach_certification("fraud", "9.9.9", REPORT)


# --------------------------------------------------------------------------- stats


def stats(requests: int, p50: float, auc: float = 0.9) -> UsageStats:
    return UsageStats.from_quantiles(requests, errors=requests // 100, latency_p50_ms=p50, latency_p95_ms=2 * p50,
                                     latency_p99_ms=3 * p50, quality={"auc": auc})


def commits(reg: Registry) -> int:
    return int(git(reg.path, "rev-list", "--count", "HEAD"))


@pytest.fixture
def buffer(reg: Registry, clock: FakeClock) -> StatsBuffer:
    return StatsBuffer(reg, interval_s=60.0, clock=clock)


def test_stats_are_buffered_and_committed_at_most_once_per_interval(reg: Registry, buffer: StatsBuffer,
                                                                    clock: FakeClock) -> None:
    add(reg, "1.0.0")
    add(reg, "1.1.0")
    before = commits(reg)
    for _ in range(50):
        buffer.record("fraud", "1.0.0", stats(100, 10.0))
    buffer.record("fraud", "1.1.0", {"requests": 10, "errors": 0, "latency_p50_ms": 5,
                                     "latency_p95_ms": 9, "latency_p99_ms": 12})
    assert commits(reg) == before
    assert not buffer.due(), "the first commit comes one interval after start"
    assert buffer.flush() is True
    assert commits(reg) == before + 1
    assert reg.stats("fraud", "1.0.0").requests == 5000

    clock.now += 59
    buffer.record("fraud", "1.0.0", stats(5000, 20.0, auc=0.8))
    assert not buffer.due()
    assert buffer.flush() is False and commits(reg) == before + 1  # inside the interval: kept in the buffer
    clock.now += 1
    assert buffer.due()
    assert buffer.flush() is True and commits(reg) == before + 2
    rolled = reg.stats("fraud", "1.0.0")
    assert (rolled.requests, rolled.errors, rolled.quality) == (10000, 100, {"auc": 0.85})
    # 10 ms, 20 ms and 30 ms requests (p50, p95, p99 of the first period), then twice that: the median
    # request of both is a 20 ms one (the old merge averaged the two p50s to 15 ms, no request's latency).
    assert rolled.latency_p50_ms == pytest.approx(20.0, rel=0.01)
    assert rolled.latency_p99_ms == pytest.approx(60.0, rel=0.01)
    assert buffer.flush() is False and not buffer.due()  # nothing buffered


def test_flush_interval_is_shared_by_every_writer_of_the_repository(reg: Registry, buffer: StatsBuffer,
                                                                    clock: FakeClock) -> None:
    add(reg, "1.0.0")
    other = StatsBuffer(Registry(reg.path), interval_s=60.0, clock=clock)
    buffer.record("fraud", "1.0.0", stats(100, 10.0))
    other.record("fraud", "1.0.0", stats(100, 10.0))
    clock.now += 60
    assert buffer.due() and other.due()
    assert buffer.flush() is True
    assert other.flush() is False
    assert not other.due(), "a refused flush learns when the other writer committed"
    clock.now += 60
    assert other.due()
    assert other.flush() is True
    assert reg.stats("fraud", "1.0.0").requests == 200


def test_force_commits_inside_the_interval(reg: Registry, buffer: StatsBuffer) -> None:
    add(reg, "1.0.0")
    buffer.record("fraud", "1.0.0", stats(100, 10.0))
    assert buffer.flush() is True
    buffer.record("fraud", "1.0.0", stats(100, 10.0))
    assert buffer.flush() is False
    assert buffer.flush(force=True) is True
    assert reg.stats("fraud", "1.0.0").requests == 200


def test_force_commits_even_behind_another_writers_clock(reg: Registry, buffer: StatsBuffer,
                                                        clock: FakeClock) -> None:
    """A replica whose clock is behind the one that stamped the last commit still flushes at
    shutdown (the stamp is never moved backwards); before, ``now - last`` < 0 refused it."""
    add(reg, "1.0.0")
    ahead = FakeClock()
    ahead.now = clock.now + 5
    other = StatsBuffer(Registry(reg.path), interval_s=60.0, clock=ahead)
    other.record("fraud", "1.0.0", stats(100, 10.0))
    assert other.flush(force=True) is True
    buffer.record("fraud", "1.0.0", stats(100, 10.0))
    assert buffer.flush(force=True) is True
    assert reg.stats("fraud", "1.0.0").requests == 200
    assert float((reg.path / ".git" / "modelmedic-stats-flushed-at").read_text()) == ahead.now


def test_record_validates_before_buffering(reg: Registry, buffer: StatsBuffer) -> None:
    add(reg, "1.0.0")
    with pytest.raises(UnknownVersionError, match="not registered"):
        buffer.record("fraud", "2.0.0", stats(1, 1.0))
    with pytest.raises(UnknownModelError):
        buffer.record("ghost", "1.0.0", stats(1, 1.0))
    with pytest.raises(RegistryValidationError, match="errors <= requests"):
        buffer.record("fraud", "1.0.0", {"requests": 1, "errors": 2, "latency_p50_ms": 1,
                                         "latency_p95_ms": 1, "latency_p99_ms": 1})
    with pytest.raises(RegistryValidationError, match="lacks 'latency_p99_ms'"):
        buffer.record("fraud", "1.0.0", {"requests": 1, "errors": 0, "latency_p50_ms": 1, "latency_p95_ms": 1})
    assert buffer.flush(force=True) is False, "nothing invalid was buffered"


def test_a_version_spelled_either_way_is_one_version(reg: Registry, buffer: StatsBuffer) -> None:
    add(reg, "1.0.0")
    buffer.record("fraud", "1.0.0", stats(100, 10.0))
    buffer.record("fraud", "v1.0.0", stats(100, 10.0))
    assert buffer.flush(force=True) is True
    assert reg.stats("fraud", "1.0.0").requests == 200


def test_a_stats_file_without_a_histogram_stands_for_its_quantiles(reg: Registry, buffer: StatsBuffer) -> None:
    """Files written before histograms still read, and merge as their quantiles."""
    add(reg, "1.0.0")
    path = reg.path / "models" / "fraud" / "versions" / "v1.0.0.stats.json"
    path.write_text(json.dumps({"requests": 1000, "errors": 10, "latency_p50_ms": 10.0, "latency_p95_ms": 20.0,
                                "latency_p99_ms": 50.0, "quality": {}}))
    old = reg.stats("fraud", "1.0.0")
    assert (old.requests, old.errors) == (1000, 10)
    assert [old.latency_p50_ms, old.latency_p95_ms, old.latency_p99_ms] == pytest.approx([10, 20, 50], rel=0.01)
    buffer.record("fraud", "1.0.0", stats(1000, 10.0))
    assert buffer.flush(force=True) is True
    rolled = reg.stats("fraud", "1.0.0")
    # 1000 at 10 ms, 900 at 20, 50 at 30 (the new period's p99) and 50 at 50 (the old one's): p95 20, p99 50.
    assert rolled.requests == 2000
    assert [rolled.latency_p95_ms, rolled.latency_p99_ms] == pytest.approx([20.0, 50.0], rel=0.01)
    assert "latency_histogram" in json.loads(path.read_text()), "rewritten with the histogram"


def test_stats_records_are_validated(reg: Registry, buffer: StatsBuffer) -> None:
    add(reg, "1.0.0")
    good = stats(10, 5.0).to_dict()
    with pytest.raises(RegistryValidationError, match="10 requests but 9 latencies"):
        buffer.record("fraud", "1.0.0", {**good, "latency_histogram": {**good["latency_histogram"],
                                                                       "buckets": {"82": 9}}})
    with pytest.raises(RegistryValidationError, match="growth"):
        buffer.record("fraud", "1.0.0", {**good, "latency_histogram": {**good["latency_histogram"], "growth": 1.1}})
    with pytest.raises(RegistryValidationError, match="map bucket numbers to counts"):
        buffer.record("fraud", "1.0.0", {**good, "latency_histogram": {**good["latency_histogram"], "buckets": [1]}})
    assert UsageStats.from_dict(good) == stats(10, 5.0), "to_dict and from_dict round-trip"


def test_latencies_are_folded_into_one_histogram(reg: Registry, buffer: StatsBuffer) -> None:
    """The service's path: raw latencies per window, folded every few thousand requests."""
    import numpy as np

    add(reg, "1.0.0")
    rng = np.random.default_rng(3)
    windows = [rng.lognormal(3.0, 1.0, size=int(n)) for n in rng.integers(1, 900, size=40)]
    for window in windows:
        buffer.record_latencies("fraud", "1.0.0", 1, window)
    with pytest.raises(RegistryValidationError, match="need 0 <= errors <= requests"):
        buffer.record_latencies("fraud", "1.0.0", 3, np.array([1.0, 2.0]))
    assert buffer.flush(force=True) is True
    every = np.sort(np.concatenate(windows))
    rolled = reg.stats("fraud", "1.0.0")
    assert (rolled.requests, rolled.errors) == (every.size, len(windows))
    for q in (0.5, 0.95, 0.99):
        exact = every[int(np.ceil(q * every.size)) - 1]
        assert rolled.latency.quantile(q) == pytest.approx(exact, rel=0.01)


def test_diff_stats_compares_two_versions(reg: Registry, buffer: StatsBuffer) -> None:
    add(reg, "1.0.0")
    add(reg, "1.1.0")
    buffer.record("fraud", "1.0.0", stats(1000, 10.0, auc=0.80))
    buffer.record("fraud", "1.1.0", stats(2000, 15.0, auc=0.88))
    buffer.flush()
    deltas = {d.metric: d for d in reg.diff_stats("fraud", "1.0.0", "1.1.0")}
    assert (deltas["requests"].a, deltas["requests"].b, deltas["requests"].change) == (1000, 2000, 1000)
    assert deltas["latency_p50_ms"].relative == pytest.approx(0.5, abs=0.02)
    assert deltas["quality.auc"].change == pytest.approx(0.08)
    assert deltas["error_rate"].relative == pytest.approx(0.0)


# --------------------------------------------------------------------------- list


def test_list_models_follows_writes_and_tags_from_other_tools(reg: Registry) -> None:
    assert reg.list_models() == [ModelSummary("fraud", 0, None, None)]
    add(reg, "1.0.0")
    certify(reg, "1.0.0")
    reg.promote("fraud", "1.0.0", "stable")
    reg.register_model("churn", description="Churn risk", owners=["crm"], interface=INTERFACE)
    assert reg.list_models() == [ModelSummary("churn", 0, None, None), ModelSummary("fraud", 1, "v1.0.0", "v1.0.0")]

    add(reg, "1.1.0")  # written through the API: the cached row is patched in place
    assert reg.list_models()[1] == ModelSummary("fraud", 2, "v1.1.0", "v1.0.0")
    commit = git(reg.path, "rev-parse", "fraud@v1.1.0^{commit}")
    git(reg.path, "tag", "-a", "fraud#stable#9", "-m", "gto assign", commit)  # written behind the API's back
    assert reg.list_models()[1] == ModelSummary("fraud", 2, "v1.1.0", "v1.1.0")
    git(reg.path, "pack-refs", "--all")
    assert reg.list_models() == reg.list_models(refresh=True)


def test_list_models_of_an_empty_registry(tmp_path: Path) -> None:
    assert Registry.init(tmp_path / "empty").list_models() == []


# ---------------------------------------------------------------- what a version runs, and its marks

IMAGE = "registry.local/models/fraud@sha256:" + "a" * 64


def test_a_version_names_its_image_by_digest_and_its_artifact(reg: Registry) -> None:
    info = reg.add_version("fraud", "1.0.0", "notes", "s3://m/1", DIGEST, image=IMAGE)
    assert (info.image, info.irreversible) == (IMAGE, None)
    assert reg.version_info("fraud", "v1.0.0") == info
    assert info.pod_env() == {"MODEL_ARTIFACT": "s3://m/1", "MODEL_DIGEST": DIGEST}
    with pytest.raises(RegistryValidationError, match="image 'registry.local/models/fraud:v2' is not pinned by digest"):
        reg.add_version("fraud", "2.0.0", "notes", "s3://m/2", DIGEST, image="registry.local/models/fraud:v2")
    with pytest.raises(UnknownVersionError, match="fraud@v2.0.0 is not registered"):
        reg.version_info("fraud", "2.0.0")


def test_a_version_marked_irreversible_keeps_what_it_runs_and_says_why(reg: Registry) -> None:
    reg.add_version("fraud", "1.0.0", "notes", "s3://m/1", DIGEST, image=IMAGE)
    marked = reg.mark_irreversible("fraud", "1.0.0", "migrates the feature schema to v5")
    assert (marked.irreversible, marked.image, marked.artifact_uri) == ("migrates the feature schema to v5", IMAGE, "s3://m/1")
    assert reg.show("fraud").versions[0].irreversible == "migrates the feature schema to v5"
    born = reg.add_version("fraud", "2.0.0", "notes", "s3://m/2", DIGEST, irreversible="drops table t")
    assert born.irreversible == "drops table t"
    with pytest.raises(RegistryValidationError, match="say why"):
        reg.mark_irreversible("fraud", "1.0.0", " ")


def test_model_gates_are_checked_by_name_and_kept_in_model_yaml(reg: Registry) -> None:
    gates = {"min_quality": {"accuracy": 0.9}, "max_p99_ms": 120, "require_live_test": True}
    spec = reg.register_model("fraud", description="Card fraud score", owners=["risk-team"], interface=INTERFACE,
                              gates=gates, update=True)
    assert reg.spec("fraud").gates == spec.gates == {"min_quality": {"accuracy": 0.9}, "max_p99_ms": 120.0,
                                                     "require_live_test": True}
    with pytest.raises(RegistryValidationError, match=r"unknown gate\(s\) \['min_acuracy'\]"):
        reg.register_model("fraud", description="d", owners=["o"], interface=INTERFACE, gates={"min_acuracy": 1},
                           update=True)

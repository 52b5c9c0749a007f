"""``modelmedic registry ...`` end to end through the real CLI entry point and a real git repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmedic.cli import main

DIGEST = "sha256:" + "f" * 64
REPORT = {"latency_p50_ms": 8, "latency_p95_ms": 20, "latency_p99_ms": 35, "throughput_rps": 500,
          "error_rate": 0.001, "quality": {"auc": 0.93}}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialized registry named by $MODELMEDIC_REGISTRY, with one model registered from schema files."""
    path = tmp_path / "registry"
    monkeypatch.setenv("MODELMEDIC_REGISTRY", str(path))
    (tmp_path / "input.yaml").write_text("type: object\nproperties:\n  amount: {type: number}\n")
    assert main(["registry", "init"]) == 0
    assert main(["registry", "register", "fraud", "--description", "Card fraud score", "--owner", "risk",
                 "--input-schema", str(tmp_path / "input.yaml"), "--output-schema", '{"type": "number"}',
                 "--language", "python", "--runtime", "onnxruntime"]) == 0
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["registry", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_register_version_certify_promote_and_show(registry: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.md").write_text("Retrained on October data.\n")
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    steps = [
        ("add-version", "fraud", "1.0.0", "--artifact", "s3://m/fraud/1.0.0", "--digest", DIGEST,
         "--notes-file", str(tmp_path / "notes.md")),
        ("attach-certification", "fraud", "1.0.0", str(tmp_path / "report.json")),
        ("promote", "fraud", "1.0.0", "certified"),
        ("promote", "fraud", "v1.0.0", "stable", "--reason", "first release"),
    ]
    for step in steps:
        assert run(capsys, *step)[0] == 0

    code, out, _ = run(capsys, "show", "fraud")
    assert code == 0
    assert "stable:    v1.0.0" in out and "Retrained on October data." in out
    code, out, _ = run(capsys, "show", "fraud", "--json")
    view = json.loads(out)
    assert view["spec"]["interface"]["input"]["properties"] == {"amount": {"type": "number"}}
    assert [(v["version"], v["stage"]) for v in view["versions"]] == [("v1.0.0", "stable")]
    assert json.loads(run(capsys, "stable", "fraud", "--json")[1]) == {
        "model": "fraud", "stable": "v1.0.0", "previous_stable": None, "canary": None}
    out = run(capsys, "list")[1]
    assert out.splitlines()[1].split() == ["fraud", "1", "v1.0.0", "v1.0.0"]
    out = run(capsys, "history", "fraud")[1]
    assert [line.split()[2] for line in out.splitlines()[1:]] == [
        "fraud@v1.0.0", "fraud#certified#1", "fraud#stable#2"]


def test_refusals_exit_3_with_what_to_do(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "add-version", "fraud", "1.0.0", "--artifact", "s3://m/x", "--digest", DIGEST,
               "--notes", "first")[0] == 0
    code, _, err = run(capsys, "promote", "fraud", "1.0.0", "stable")
    assert code == 3 and "never certified" in err and "--force" in err
    code, _, err = run(capsys, "add-version", "fraud", "1.0", "--artifact", "s3://m/x", "--digest", DIGEST,
                       "--notes", "x")
    assert code == 3 and "not a semantic version" in err
    code, _, err = run(capsys, "add-version", "fraud", "1.1.0", "--artifact", "s3://m/x", "--digest", DIGEST,
                       "--notes-file", "/nonexistent/CHANGES.md")
    assert code == 3 and "cannot read /nonexistent/CHANGES.md" in err
    code, _, err = run(capsys, "show", "ghost")
    assert code == 3 and "not registered" in err
    code, _, err = run(capsys, "register", "bad", "--description", "d", "--owner", "o",
                       "--input-schema", '{"type": "tensor"}', "--output-schema", "{}")
    assert code == 3 and "interface.input/type" in err


def test_registry_path_is_required(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MODELMEDIC_REGISTRY", raising=False)
    code, _, err = run(capsys, "list")
    assert code == 3 and "--registry PATH" in err


def test_diff_stats_prints_a_table(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelmedic.registry import Registry, StatsBuffer, UsageStats

    reg = Registry(registry)
    stats = StatsBuffer(reg)
    for version, p50 in (("1.0.0", 10.0), ("1.1.0", 12.0)):
        reg.add_version("fraud", version, "notes", f"s3://m/{version}", DIGEST)
        stats.record("fraud", version, UsageStats.from_quantiles(100, errors=1, latency_p50_ms=p50,
                                                                 latency_p95_ms=2 * p50, latency_p99_ms=3 * p50))
    stats.flush()
    code, out, _ = run(capsys, "diff-stats", "fraud", "1.0.0", "1.1.0")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    a, b, change, relative = rows["latency_p50_ms"]
    assert code == 0 and [float(a), float(b), float(change)] == pytest.approx([10, 12, 2], abs=0.25)
    assert relative.startswith("+") and float(relative.rstrip("%")) == pytest.approx(20, abs=1)

"""GTO itself reads the registry as we do, and we read what ``gto assign`` writes (issue 16 item 9).

The real ``gto`` CLI from PyPI, pinned, installed once into its own virtual environment under
``~/.cache/modelmedic/gto`` (it is a tool people run on the registry, not a dependency of
modelmedic: its pins would constrain ours). A lifecycle with a rollback, a canary and a
retirement is written through modelmedic's API; ``gto show`` and ``gto history`` must name the same
versions, notes, commits, stable and canary versions.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

from modelmedic.registry import Registry

pytestmark = pytest.mark.integration

GTO_VERSION = "1.10.1"
GTO_HOME = Path.home() / ".cache" / "modelmedic" / "gto"
REPORT = {"latency_p50_ms": 1, "latency_p95_ms": 2, "latency_p99_ms": 3, "throughput_rps": 10, "error_rate": 0.0,
          "quality": {}}


@pytest.fixture(scope="session")
def gto() -> Path:
    """The ``gto`` executable, GTO_VERSION, from PyPI with pip; cached (about 20 s cold, instant after)."""
    env = GTO_HOME / f"venv-{GTO_VERSION}"
    exe = env / "bin" / "gto"
    if not exe.is_file():
        venv.create(env, with_pip=True, clear=True)
        subprocess.run([env / "bin" / "pip", "install", "--quiet", f"gto=={GTO_VERSION}"], check=True, timeout=600)
    assert GTO_VERSION in subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return exe


def run_gto(gto: Path, repo: Path, *args: str) -> str:
    proc = subprocess.run([gto, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """fraud: v1.0.0, v1.1.0, v2.0.0 certified; v1.1.0 stable, rolled back to v1.0.0 and forward again;
    v2.0.0 canary; v1.2.0 registered only; a retired v0.9.0."""
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud score", owners=["risk-team"],
                       interface={"input": {"type": "object"}, "output": {"type": "number"}})
    for version in ("0.9.0", "1.0.0", "1.1.0", "2.0.0"):
        reg.add_version("fraud", version, f"Release notes of {version}\nsecond line", f"s3://m/fraud/{version}",
                        "sha256:" + "0" * 64)
        reg.attach_certification("fraud", version, REPORT)
        reg.promote("fraud", version, "certified")
    reg.add_version("fraud", "1.2.0", "not yet certified", "s3://m/fraud/1.2.0", "sha256:" + "0" * 64)
    reg.promote("fraud", "1.0.0", "stable")
    reg.promote("fraud", "1.1.0", "stable")
    reg.promote("fraud", "1.0.0", "stable", reason="rollback")
    reg.promote("fraud", "1.1.0", "stable", reason="fixed forward")
    reg.promote("fraud", "2.0.0", "canary")
    reg.promote("fraud", "0.9.0", "retired", reason="superseded")
    return reg


def test_gto_shows_the_same_versions_notes_commits_and_stages(gto: Path, reg: Registry) -> None:
    ours = reg.show("fraud")
    assert (ours.stable, ours.canary) == ("v1.1.0", "v2.0.0")

    overview = json.loads(run_gto(gto, reg.path, "show", "--json"))["fraud"]
    assert overview["version"] == ours.versions[-1].version == "v2.0.0"
    assert overview["stage"]["stable"] == ours.stable and overview["stage"]["canary"] == ours.canary
    assert overview["stage"]["retired"] == "v0.9.0"

    # every assignment of every version (GTO's default shows only the newest version per stage)
    everything = run_gto(gto, reg.path, "show", "fraud", "--json", "--av", "-1", "--vs", "-1")
    theirs = {v["version"]: v for v in json.loads(everything)}
    assert set(theirs) == {v.version for v in ours.versions}
    for v in ours.versions:
        [registration] = theirs[v.version]["registrations"]
        assert (registration["tag"], registration["commit_hexsha"]) == (f"fraud@{v.version}", v.commit)
        assert registration["message"].strip() == v.notes
        gto_stages = {s["stage"] for s in theirs[v.version]["stages"]}
        assert (v.stage is None) == (not gto_stages), v.version
        assert v.stage is None or v.stage in gto_stages, (v.version, v.stage, gto_stages)  # GTO lists every stage ever held

    for stage, holder in (("stable", ours.stable), ("canary", ours.canary)):
        assert f"fraud@{holder}" in run_gto(gto, reg.path, "show", f"fraud#{stage}")


def test_gto_history_is_our_history(gto: Path, reg: Registry) -> None:
    events = json.loads(run_gto(gto, reg.path, "history", "fraud", "--json"))
    theirs = sorted((e["ref"], e["version"], e.get("stage")) for e in events if e["event"] in ("registration", "assignment"))
    ours = sorted((e.tag, e.version, e.stage) for e in reg.history("fraud"))
    assert theirs == ours
    assignments = [e["ref"] for e in sorted(events, key=lambda e: e["timestamp"]) if e["event"] == "assignment"]
    assert assignments == [a.tag for a in reg.history("fraud") if a.action == "assign"], "GTO orders them as we do"


def test_a_stage_assigned_with_gto_assign_is_read_by_modelmedic(gto: Path, reg: Registry) -> None:
    run_gto(gto, reg.path, "assign", "fraud", "--version", "v2.0.0", "--stage", "stable")
    assert reg.stable_versions("fraud").stable == "v2.0.0"
    assert reg.previous_stable_version("fraud") == "v1.1.0"
    assert reg.stage("fraud", "v2.0.0") == "stable"
    [latest] = [e for e in reg.history("fraud") if e.stage == "stable" and e.version == "v2.0.0"]
    assert latest.tag.startswith("fraud#stable#")

"""Two processes writing one registry at once: every entry lands, nothing is corrupted."""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

from modelmedic.registry import Registry, StatsBuffer, UsageStats

DIGEST = "sha256:" + "1" * 64
PER_WRITER = 6


def writer(path: str, major: int, start: multiprocessing.synchronize.Barrier) -> None:
    """Add, promote and report stats for PER_WRITER versions, as a CLI plus the stats roll-up would."""
    reg = Registry(path)
    stats = StatsBuffer(reg, interval_s=0.0)
    start.wait(timeout=30)
    for patch in range(PER_WRITER):
        version = f"{major}.0.{patch}"
        reg.add_version("fraud", version, f"writer {major}", f"s3://m/fraud/{version}", DIGEST)
        reg.promote("fraud", version, "candidate")
        stats.record("fraud", "0.1.0", UsageStats.from_quantiles(10, errors=1, latency_p50_ms=5, latency_p95_ms=9,
                                                                 latency_p99_ms=12))
        stats.flush(force=True)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud score", owners=["risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "number"}})
    reg.add_version("fraud", "0.1.0", "shared", "s3://m/fraud/0.1.0", DIGEST)
    reg.list_models()  # a current cache, so the writers patch it concurrently too

    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=writer, args=(str(reg.path), major, start)) for major in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]

    expected = {f"v{major}.0.{patch}" for major in (1, 2) for patch in range(PER_WRITER)}
    view = reg.show("fraud")
    assert {v.version for v in view.versions} == expected | {"v0.1.0"}
    assert all(v.stage == "candidate" for v in view.versions if v.version != "v0.1.0")
    counters = sorted(int(e.tag.rsplit("#", 1)[1]) for e in reg.history("fraud") if e.action == "assign")
    assert counters == list(range(1, 2 * PER_WRITER + 1))  # unique and gap-free: no assignment lost
    rolled = reg.stats("fraud", "0.1.0")
    assert (rolled.requests, rolled.errors) == (2 * PER_WRITER * 10, 2 * PER_WRITER)
    assert reg.list_models()[0].versions == 2 * PER_WRITER + 1
    assert git(reg.path, "status", "--porcelain") == ""
    git(reg.path, "fsck", "--strict")

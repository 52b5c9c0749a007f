"""The registry read from a git remote: credentials, refresh, atomic swaps, settings (real git, ``file://``)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from modelmedic.config import Settings
from modelmedic.errors import RemoteRegistryError
from modelmedic.registry import LatencyHistogram, Registry, RegistryMirror, StatsBuffer, UsageStats, keep_fresh
from modelmedic.registry.remote import RemoteStats, credential_args

DIGEST = "sha256:" + "0" * 64
INTERFACE = {"input": {"type": "object"}, "output": {"type": "number"}}


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, input=stdin).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Registry, Path]:
    """A registry written by people (the work tree) and the bare remote it is pushed to."""
    reg = Registry.init(tmp_path / "work")
    reg.register_model("fraud", description="Card fraud score", owners=["risk-team"], interface=INTERFACE)
    reg.add_version("fraud", "1.0.0", "first", "s3://m/fraud/1", DIGEST)
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(bare))
    push(reg, bare)
    return reg, bare


def push(reg: Registry, bare: Path) -> None:
    git(reg.path, "push", "--quiet", "--force", str(bare), "HEAD:refs/heads/main", "--tags")


def test_a_mirror_reads_the_remote_and_follows_new_versions_and_stages(upstream, tmp_path):
    reg, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache")
    assert mirror.snapshot is None
    assert mirror.refresh() is True
    copy = Registry(mirror.path)
    assert sorted(v.version for v in copy.show("fraud").versions) == ["v1.0.0"]
    first = mirror.snapshot
    old_tree = mirror.path.resolve()

    assert mirror.refresh() is False, "nothing moved upstream: no new checkout"
    reg.add_version("fraud", "1.1.0", "second", "s3://m/fraud/2", DIGEST)
    reg.attach_certification("fraud", "1.1.0", {"latency_p50_ms": 1, "latency_p95_ms": 2, "latency_p99_ms": 3,
                                                "throughput_rps": 100, "error_rate": 0.0, "quality": {}})
    reg.promote("fraud", "1.1.0", "certified")
    push(reg, bare)
    assert mirror.refresh() is True and mirror.snapshot != first
    assert copy.stage("fraud", "v1.1.0") == "certified", "the same Registry object reads the new snapshot"
    assert old_tree.is_dir() and (old_tree / "registry.yaml").is_file(), "the previous checkout stays for its readers"


def test_only_the_current_and_previous_checkouts_are_kept(upstream, tmp_path):
    reg, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache")
    mirror.refresh()
    for patch in range(1, 4):
        reg.add_version("fraud", f"1.0.{patch}", "fix", f"s3://m/fraud/1.{patch}", DIGEST)
        push(reg, bare)
        mirror.refresh()
    kept = sorted(p.name for p in (tmp_path / "cache" / "checkouts").iterdir())
    assert len(kept) == 2 and mirror.snapshot in kept


def test_a_ref_other_than_main_and_a_tag_moved_by_gto_are_followed(upstream, tmp_path):
    reg, bare = upstream
    git(reg.path, "push", "--quiet", str(bare), "HEAD:refs/heads/release")
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache", ref="release")
    mirror.refresh()
    before = mirror.snapshot
    # a stage tag written by another tool (e.g. `gto assign`) and pushed alone moves the snapshot too
    commit = git(reg.path, "rev-list", "-n1", "fraud@v1.0.0").strip()
    git(reg.path, "tag", "-a", "fraud#certified#1", commit, "-m", "by hand")
    git(reg.path, "push", "--quiet", str(bare), "refs/tags/fraud#certified#1")
    assert mirror.refresh() is True and mirror.snapshot != before
    assert Registry(mirror.path).stage("fraud", "v1.0.0") == "certified"


def test_an_unreachable_remote_keeps_the_copy_in_use_and_says_what_to_check(upstream, tmp_path):
    _, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache")
    mirror.refresh()
    before = mirror.snapshot
    bare.rename(tmp_path / "gone.git")
    with pytest.raises(RemoteRegistryError, match="check registry_git.url, ref and the credentials Secret"):
        mirror.refresh()
    assert mirror.snapshot == before and Registry(mirror.path).show("fraud").spec.owners == ("risk-team",)


def test_a_remote_that_is_not_a_registry_is_refused(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "--quiet", "-b", "main")
    (plain / "README").write_text("hi")
    git(plain, "add", "README")
    git(plain, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x")
    mirror = RegistryMirror(f"file://{plain}", tmp_path / "cache")
    with pytest.raises(RemoteRegistryError, match="is not a modelmedic registry"):
        mirror.refresh()
    assert mirror.snapshot is None


def test_basic_auth_comes_from_the_secret_files_through_a_credential_helper(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "username").write_text("reader")
    (secret / "password").write_text("s3cr3t 'quoted'")
    options, env = credential_args(secret, tmp_path)
    assert env == {"GIT_TERMINAL_PROMPT": "0"} and not any("s3cr3t" in o for o in options)
    out = subprocess.run(["git", *options, "credential", "fill"], input="protocol=https\nhost=git.example\n\n",
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin", **env}).stdout
    assert "username=reader\n" in out and "password=s3cr3t 'quoted'\n" in out
    (secret / "password").write_text("rotated")
    out = subprocess.run(["git", *options, "credential", "fill"], input="protocol=https\nhost=git.example\n\n",
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin", **env}).stdout
    assert "password=rotated\n" in out, "a rotated Secret is read on the next fetch"


def test_ssh_credentials_need_a_known_hosts_file(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "ssh-privatekey").write_text("KEY")
    (secret / "ssh-privatekey").chmod(0o440)  # as a Secret mounted for the pod's fsGroup
    with pytest.raises(RemoteRegistryError, match="known_hosts"):
        credential_args(secret, tmp_path / "cache")
    (secret / "known_hosts").write_text("host ssh-ed25519 AAAA")
    options, env = credential_args(secret, tmp_path / "cache")
    assert options == [] and "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]
    private = tmp_path / "cache" / ".ssh-privatekey"
    assert str(private) in env["GIT_SSH_COMMAND"] and str(secret / "known_hosts") in env["GIT_SSH_COMMAND"]
    assert private.read_text() == "KEY" and private.stat().st_mode & 0o077 == 0, "ssh refuses a group-readable key"


def test_a_secret_without_a_known_pair_or_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(RemoteRegistryError, match="does not exist"):
        credential_args(tmp_path / "nowhere", tmp_path)
    (tmp_path / "username").write_text("only")
    with pytest.raises(RemoteRegistryError, match="neither username\\+password nor ssh-privatekey"):
        credential_args(tmp_path, tmp_path)


def test_settings_take_a_remote_or_a_checkout_not_both(tmp_path):
    settings = Settings(registry_git={"url": "https://git.example/ml/registry.git", "refresh_s": 30})
    assert (settings.registry_git.ref, settings.registry_git.refresh_s) == ("main", 30)
    with pytest.raises(ValueError, match="registry and registry_git are both set"):
        Settings(registry=tmp_path, registry_git={"url": "file:///r.git"})
    with pytest.raises(ValueError, match="refresh_s"):
        Settings(registry_git={"url": "file:///r.git", "refresh_s": 0})


class CountingMirror:
    """A mirror whose refreshes fail, then succeed; the test stops the loop after ``calls`` refreshes."""

    url, ref, snapshot = "file:///r.git", "main", "abc"

    def __init__(self, stop: asyncio.Event, calls: int) -> None:
        self.stop, self.calls, self.count = stop, calls, 0

    def refresh(self) -> bool:
        self.count += 1
        if self.count >= self.calls:
            self.stop.set()
        if self.count == 1:
            raise RemoteRegistryError("git server down")
        return True


async def test_refreshes_go_on_after_a_failed_fetch_and_stop_with_the_service(caplog):
    stop = asyncio.Event()
    mirror = CountingMirror(stop, calls=3)
    await asyncio.wait_for(keep_fresh(mirror, 0.001, stop), timeout=10)  # type: ignore[arg-type]
    assert mirror.count == 3
    assert "registry refresh failed, still reading snapshot abc: git server down" in caplog.text


def test_a_ref_the_remote_does_not_have_is_named(upstream, tmp_path):
    _, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache", ref="production")
    with pytest.raises(RemoteRegistryError, match="has no branch or tag 'production': set registry_git.ref"):
        mirror.refresh()


def usage(requests: int, errors: int) -> UsageStats:
    return UsageStats(requests=requests, errors=errors, latency=LatencyHistogram.of([10.0] * requests))


def stats_of(reg_path: Path, version: str = "v1.0.0") -> dict:
    import json

    return json.loads((reg_path / "models" / "fraud" / "versions" / f"{version}.stats.json").read_text())


def remote_tree(bare: Path, tmp_path: Path, name: str) -> Path:
    """A fresh clone of the remote's main: what anyone reading the registry after the pushes sees."""
    clone = tmp_path / name
    git(tmp_path, "clone", "--quiet", "--branch", "main", str(bare), str(clone))
    return clone


def test_stats_pushed_by_two_replicas_that_race_all_land_on_the_remote(upstream, tmp_path):
    _, bare = upstream
    a = RemoteStats(RegistryMirror(f"file://{bare}", tmp_path / "a"), backoff_s=0)
    b = RemoteStats(RegistryMirror(f"file://{bare}", tmp_path / "b"), backoff_s=0)
    a.mirror.refresh(), b.mirror.refresh()
    sync = a._sync

    def b_pushes_first() -> str:
        """Replica a reads the tip, then replica b pushes before a does: a's push must be refused and redone."""
        tip = sync()
        if a.retries == 0:
            assert b.commit_stats({("fraud", "v1.0.0"): usage(7, 1)}, now=2_000.0,
                                  min_interval_s=0).committed
        return tip

    a._sync = b_pushes_first  # type: ignore[method-assign]
    assert a.commit_stats({("fraud", "v1.0.0"): usage(5, 0)}, now=2_001.0,
                          min_interval_s=0).committed
    assert a.retries == 1
    pushed = stats_of(remote_tree(bare, tmp_path, "after"))
    assert (pushed["requests"], pushed["errors"]) == (12, 1), "neither replica's counts were lost"


def test_the_stats_interval_is_shared_by_every_replica_through_the_remote(upstream, tmp_path):
    _, bare = upstream
    a = RemoteStats(RegistryMirror(f"file://{bare}", tmp_path / "a"))
    b = RemoteStats(RegistryMirror(f"file://{bare}", tmp_path / "b"))
    a.mirror.refresh(), b.mirror.refresh()
    first = a.commit_stats({("fraud", "v1.0.0"): usage(5, 0)}, now=time.time(), min_interval_s=60)
    assert first.committed
    refused = b.commit_stats({("fraud", "v1.0.0"): usage(3, 0)}, now=time.time(), min_interval_s=60)
    assert not refused.committed and refused.last_commit_at <= time.time()
    assert b.check_registered("fraud", "1.0.0") == "v1.0.0"


def test_a_stats_buffer_on_a_remote_keeps_its_batch_when_the_push_is_refused(upstream, tmp_path):
    _, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "a")
    mirror.refresh()
    buffer = StatsBuffer(RemoteStats(mirror), interval_s=60)
    buffer.record("fraud", "1.0.0", usage(4, 0))
    (bare / "hooks" / "pre-receive").write_text("#!/bin/sh\necho 'branch protected' >&2\nexit 1\n")
    (bare / "hooks" / "pre-receive").chmod(0o755)
    with pytest.raises(RemoteRegistryError, match="branch protected"):
        buffer.flush(force=True)
    (bare / "hooks" / "pre-receive").unlink()
    assert buffer.flush(force=True), "the refused batch was kept and goes with the next flush"
    assert stats_of(remote_tree(bare, tmp_path, "after"))["requests"] == 4


def test_refreshes_and_stats_pushes_of_one_mirror_in_two_threads_never_collide(upstream, tmp_path):
    """The service refreshes in one worker thread and pushes stats in another, on the same mirror."""
    import concurrent.futures

    _, bare = upstream
    mirror = RegistryMirror(f"file://{bare}", tmp_path / "cache")
    mirror.refresh()
    stats = RemoteStats(mirror, backoff_s=0)

    def refreshes() -> int:
        return sum(mirror.refresh() for _ in range(6))

    def pushes() -> int:
        return sum(stats.commit_stats({("fraud", "v1.0.0"): usage(2, 0)}, now=3_000.0 + i, min_interval_s=0).committed
                   for i in range(6))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        refreshed, pushed = pool.submit(refreshes), pool.submit(pushes)
        assert pushed.result(timeout=120) == 6 and refreshed.result(timeout=120) >= 0
    mirror.refresh()
    assert Registry(mirror.path).stats("fraud", "v1.0.0").requests == 12

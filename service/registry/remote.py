"""A read-only copy of a registry that lives on a git remote: what the service reads in a cluster.

In a pod there is no checkout of the registry to point ``registry`` at, so the service keeps its
own: a bare mirror of the remote's branches and tags (``<root>/mirror.git``), fetched on an
interval, and one complete checkout per state of the remote (``<root>/checkouts/<id>``), made
from the mirror with ``git clone --shared`` (no object is copied). ``<root>/current`` is a symlink
to the newest checkout, swapped with one ``rename``, so a :class:`~modelmedic.registry.Registry`
opened on it never sees a half-updated tree: files of one checkout are never rewritten, a refresh
makes a new one. The previous checkout is kept for readers still inside it; older ones are removed.

Nothing is pushed but usage statistics, and those only with :class:`RemoteStats` (``push_stats``): each
roll-up is committed on the remote's newest tip and pushed; a push that loses a race with another replica
is redone on the new tip, so no replica's counts are lost. Credentials
come from a directory (a mounted Kubernetes Secret) and are read on every fetch, so a rotated Secret
needs no restart:

- ``username`` and ``password``: HTTP(S) basic auth, handed to git by an inline credential helper
  (never in the URL, the process list or the logs);
- ``ssh-privatekey`` and ``known_hosts``: SSH, with strict host-key checking.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from modelmedic.errors import RegistryError, RegistryGitError, RemoteRegistryError
from modelmedic.logs import redact_url
from modelmedic.registry.records import StatsCommit
from modelmedic.registry.stats import UsageStats
from modelmedic.registry.store import Registry

log = logging.getLogger("modelmedic.registry")

def credential_args(credentials_dir: Path | None, private_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The ``git -c`` options and environment that authenticate with the Secret in ``credentials_dir``.

    Git is never allowed to prompt (``GIT_TERMINAL_PROMPT=0``): a pod has nobody to answer, and a
    hung fetch would stop every refresh. An SSH key is copied into ``private_dir`` with mode 0600:
    ssh refuses a group-readable key, which is what a Secret mounted for a non-root ``fsGroup`` is.
    """
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if credentials_dir is None:
        return [], env
    if not credentials_dir.is_dir():
        raise RemoteRegistryError(f"registry credentials directory {credentials_dir} does not exist: mount the "
                                  f"Secret there (Helm: registry.git.existingSecret) or unset credentials_dir")
    key, known_hosts = credentials_dir / "ssh-privatekey", credentials_dir / "known_hosts"
    if key.is_file():
        if not known_hosts.is_file():
            raise RemoteRegistryError(f"{key} is set but {known_hosts} is missing: add the git server's host key "
                                      f"(`ssh-keyscan HOST`) to the Secret as known_hosts")
        private = private_dir / ".ssh-privatekey"
        private_dir.mkdir(parents=True, exist_ok=True)
        private.touch(mode=0o600)
        private.chmod(0o600)
        private.write_bytes(key.read_bytes())
        env["GIT_SSH_COMMAND"] = (f"ssh -i {shlex.quote(str(private))} -o IdentitiesOnly=yes -o BatchMode=yes "
                                  f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={shlex.quote(str(known_hosts))}")
        return [], env
    user, password = credentials_dir / "username", credentials_dir / "password"
    if user.is_file() and password.is_file():
        helper = ("!f() { test \"$1\" = get || exit 0; "
                  f"printf 'username=%s\\npassword=%s\\n' \"$(cat {shlex.quote(str(user))})\" "
                  f"\"$(cat {shlex.quote(str(password))})\"; }}; f")
        # the empty helper first drops any helper from the system or user config
        return ["-c", "credential.helper=", "-c", f"credential.helper={helper}"], env
    raise RemoteRegistryError(f"{credentials_dir} holds neither username+password nor ssh-privatekey+known_hosts: "
                              f"put one pair in the registry's Secret")


class RegistryMirror:
    """The remote registry at ``url`` (branch or ref ``ref``), kept as checkouts under ``root``.

    :meth:`refresh` is blocking (git subprocesses): the service runs it in a worker thread.
    """

    def __init__(self, url: str, root: str | os.PathLike[str], *, ref: str = "main",
                 credentials_dir: str | os.PathLike[str] | None = None) -> None:
        if not url:
            raise RemoteRegistryError("registry_git.url is empty: set it to the registry's clone URL")
        self.url, self.ref = url, ref
        self.root = Path(root).absolute()
        self.credentials_dir = Path(credentials_dir) if credentials_dir is not None else None
        self._mirror = self.root / "mirror.git"
        self._checkouts = self.root / "checkouts"
        self._lock = threading.RLock()
        """One git writer of the mirror at a time: the refresh loop and the stats pushes run in threads."""

    @property
    def path(self) -> Path:
        """The current checkout: open a :class:`~modelmedic.registry.Registry` here (a symlink, swapped atomically)."""
        return self.root / "current"

    @property
    def snapshot(self) -> str | None:
        """The id of the remote state :attr:`path` shows (None before the first :meth:`refresh`)."""
        try:
            return os.readlink(self.path).rsplit("/", 1)[-1]
        except FileNotFoundError:
            return None

    def refresh(self) -> bool:
        """Fetch the remote; when its ref or any tag moved, check the new state out and make it current.

        Returns whether :attr:`path` now shows a new state. A failed fetch raises
        :class:`RemoteRegistryError` and leaves the current checkout as it was (stale, not broken).
        """
        with self._lock:
            commit = self.fetch()
            snapshot = self._snapshot_id(commit)
            if snapshot == self.snapshot:
                return False
            target = self._checkouts / snapshot
            if not target.is_dir():
                self._check_out(target, commit)
            link = self.root / f".current.{os.getpid()}"
            link.unlink(missing_ok=True)
            link.symlink_to(Path("checkouts") / snapshot)
            os.replace(link, self.path)
            self._remove_old(keep={snapshot})
            return True

    def fetch(self) -> str:
        """Mirror every branch and tag (``--prune`` drops what the remote dropped); the commit ``ref`` names now."""
        with self._lock:
            if not (self._mirror / "HEAD").is_file():
                self._mirror.mkdir(parents=True, exist_ok=True)
                self.git(self._mirror, "init", "--quiet", "--bare")
            self.git(self._mirror, "fetch", "--quiet", "--prune", "--force", "--no-write-fetch-head", self.url,
                     "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", remote=True)
            return self._commit()

    def clone(self, target: Path) -> None:
        """A clone of the mirror at ``target`` sharing its objects (nothing is copied), without a checkout."""
        self.git(self.root, "clone", "--quiet", "--shared", "--no-checkout", str(self._mirror), str(target))

    def _commit(self) -> str:
        """The commit ``ref`` names in the mirror (a branch, a tag or a full ref name)."""
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}"], cwd=self._mirror,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RemoteRegistryError(f"{redact_url(self.url)} has no branch or tag {self.ref!r}: "
                                      f"set registry_git.ref to the branch the registry is committed to")
        return proc.stdout.strip()

    def _snapshot_id(self, commit: str) -> str:
        """A digest of the ref's commit and every tag: equal ids, equal registries (other branches do not count)."""
        tags = self.git(self._mirror, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags")
        return hashlib.sha256(f"{commit}\n{tags}".encode()).hexdigest()[:16]

    def _check_out(self, target: Path, commit: str) -> None:
        """A complete checkout in a temporary directory, renamed into place only when whole."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self._checkouts.mkdir(parents=True, exist_ok=True)
        self.clone(tmp)
        self.git(tmp, "checkout", "--quiet", "--detach", commit)
        if not (tmp / "registry.yaml").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            raise RemoteRegistryError(f"{redact_url(self.url)} ({self.ref}) is not a modelmedic registry (no registry.yaml "
                                      f"at its root): point registry_git.url/ref at one made by `modelmedic registry init`")
        os.replace(tmp, target)

    def _remove_old(self, keep: set[str]) -> None:
        """Keep the new checkout and the one before it (readers may still be in it); remove the rest."""
        checkouts = sorted((p for p in self._checkouts.iterdir() if not p.name.startswith(".")),
                           key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in [p for p in checkouts if p.name not in keep][1:]:
            shutil.rmtree(old, ignore_errors=True)

    def git(self, cwd: Path, *args: str, remote: bool = False) -> str:
        """Run git in ``cwd``; a ``remote`` call carries the credentials. Failures name the URL without its secrets."""
        options, env = credential_args(self.credentials_dir, self.root) if remote else ([], {"GIT_TERMINAL_PROMPT": "0"})
        proc = subprocess.run(["git", *options, *args], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, **env})
        if proc.returncode == 0:
            return proc.stdout
        said = "; ".join(part for part in (proc.stderr.strip(), proc.stdout.strip()) if part)  # push says why on stdout
        message = said.replace(self.url, redact_url(self.url))
        error = RemoteRegistryError if remote else RegistryGitError
        raise error(f"`git {args[0]}` of the registry {redact_url(self.url)} ({self.ref}) failed: {message}"
                    + (" (check registry_git.url, ref and the credentials Secret)" if remote else ""))


_STATS_SUBJECT = "Roll up usage stats"
"""The subject :meth:`Registry.commit_stats` gives its commits: how the last one is found on the remote."""
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "cannot lock ref", "failed to update ref")


class RemoteStats:
    """Usage statistics committed to the remote registry's ``ref`` (a :class:`~modelmedic.registry.stats.StatsStore`).

    Every commit is made on the newest tip of the remote, in a working clone of the mirror kept
    for this (``<root>/stats``), and pushed. When another replica pushed first (the push is rejected
    as not a fast-forward), the clone is reset to the new tip and the same batch is merged and
    committed again: the stats files add the counts up, so both replicas' requests land. The
    interval between commits is shared by every replica through the remote itself: the committer
    time of the newest stats commit on the tip.
    """

    def __init__(self, mirror: RegistryMirror, *, attempts: int = 5, backoff_s: float = 0.2) -> None:
        self.mirror, self.attempts, self.backoff_s = mirror, attempts, backoff_s
        self._work = mirror.root / "stats"
        self.retries = 0
        """Pushes redone because another writer pushed first (for tests and logs)."""

    def check_registered(self, model: str, version: str) -> str:
        """Whether the version is registered in the snapshot the service reads."""
        return Registry(self.mirror.path).check_registered(model, version)

    def commit_stats(self, batch: Mapping[tuple[str, str], UsageStats], *, now: float,
                     min_interval_s: float) -> StatsCommit:
        """Merge ``batch`` into the remote's stats files in one pushed commit, unless any replica pushed
        stats less than ``min_interval_s`` before ``now``; raise :class:`RemoteRegistryError` (the
        caller keeps the batch) when every attempt lost the race or the push was refused."""
        for attempt in range(self.attempts):
            tip = self._sync()
            last = self._last_stats_commit(tip)
            if min_interval_s > 0 and last is not None and now - last < min_interval_s:
                return StatsCommit(False, last)
            Registry(self._work).commit_stats(batch, now=now, min_interval_s=0.0)
            if self._push():
                return StatsCommit(True, now)
            self.retries += 1
            log.info("stats push lost a race (attempt %d of %d): redoing it on the new tip", attempt + 1, self.attempts)
            time.sleep(self.backoff_s * (attempt + 1))
        raise RemoteRegistryError(f"usage stats not pushed to {redact_url(self.mirror.url)} ({self.mirror.ref}): "
                                  f"another writer pushed first {self.attempts} times; they stay buffered for "
                                  "the next interval")

    def _sync(self) -> str:
        """Fetch the remote into the mirror and reset the stats clone to the ref's newest commit."""
        tip = self.mirror.fetch()
        if not (self._work / ".git").is_dir():
            self.mirror.clone(self._work)
            # a pod has no git identity of its own: the stats commits are signed as the service
            self.mirror.git(self._work, "config", "user.name", "modelmedic")
            self.mirror.git(self._work, "config", "user.email", "modelmedic@localhost")
        self.mirror.git(self._work, "fetch", "--quiet", "origin")
        self.mirror.git(self._work, "reset", "--quiet", "--hard", tip)
        return tip

    def _last_stats_commit(self, tip: str) -> float | None:
        out = self.mirror.git(self._work, "log", "-1", "--format=%ct", f"--grep=^{_STATS_SUBJECT}", tip).strip()
        return float(out) if out else None

    def _push(self) -> bool:
        """Push the stats commit; False when another writer moved the ref first (redo on its tip)."""
        try:
            self.mirror.git(self._work, "push", "--quiet", "--porcelain", self.mirror.url,
                             f"HEAD:refs/heads/{self.mirror.ref.removeprefix('refs/heads/')}", remote=True)
        except RemoteRegistryError as exc:
            if any(marker in str(exc) for marker in _REJECTED):
                return False
            raise
        return True


async def keep_fresh(mirror: RegistryMirror, interval_s: float, stop: asyncio.Event) -> None:
    """Refresh ``mirror`` every ``interval_s`` until ``stop``; a failed fetch is logged and retried next time.

    Never raises for the remote's sake: an unreachable git server leaves the service on its last
    copy of the registry (logged as stale) instead of stopping detection and paging.
    """
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        try:
            if await asyncio.to_thread(mirror.refresh):
                log.info("registry %s (%s): now at snapshot %s", redact_url(mirror.url), mirror.ref, mirror.snapshot)
        except RegistryError as exc:
            log.warning("registry refresh failed, still reading snapshot %s: %s", mirror.snapshot, exc)

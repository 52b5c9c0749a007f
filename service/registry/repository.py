"""The registry's git repository: its file layout, its one write lock, commits and scoped tag reads.

:class:`~modelmedic.registry.store.Registry` is built on :class:`GitRepository`; this module is
what the registry stores through, not what it means.

Git is the only storage and the only dependency: every write is one transaction (commit, then tags)
under an ``flock`` on a file inside ``.git``, so concurrent CLIs and the stats roll-up never interleave.
Reads never scan the whole repository per model: ``git for-each-ref refs/tags/<model>@*`` is scoped.
The summary list of every model is cached in ``.git`` and kept current by the writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelmedic.errors import NotARegistryError, RegistryGitError, UnknownModelError, UnknownVersionError
from modelmedic.registry.records import ModelSummary
from modelmedic.registry.schema import check_model_name, semver_key
from modelmedic.registry.tags import NO_TAGS, REF_FORMAT, REF_FORMAT_WITH_MESSAGE, ModelTags, group_tags, summary

_LOCK_FILE = "modelmedic-registry.lock"
_LIST_CACHE_FILE = "modelmedic-list-cache.json"


class GitRepository:
    """A registry's git repository at ``path``: where each file lives, how writes commit, how tags are read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._git_dir = self.path / ".git"
        if not self._git_dir.is_dir():
            raise NotARegistryError(f"{self.path} is not a git repository: create a registry with "
                                    f"`modelmedic registry init {self.path}`")
        if not (self.path / "registry.yaml").is_file():
            raise NotARegistryError(f"{self.path} is a git repository but not a modelmedic registry (no registry.yaml): "
                                    f"run `modelmedic registry init {self.path}` to make it one")

    def _model_file(self, model: str) -> Path:
        return self.path / "models" / check_model_name(model) / "model.yaml"

    def _version_file(self, model: str, version: str, suffix: str = ".yaml") -> Path:
        return self.path / "models" / check_model_name(model) / "versions" / f"{version}{suffix}"

    def _require_model(self, model: str) -> None:
        if not self._model_file(model).is_file():
            raise UnknownModelError(f"model {model} is not registered: see `modelmedic registry list`, "
                                    f"or register it with `modelmedic registry register {model} ...`")

    def _require_version(self, model: str, version: str) -> None:
        self._require_model(model)
        tags = self._read_tags(model)
        if version not in tags.versions:
            raise UnknownVersionError(self._unknown_version_message(model, version, tags))

    @staticmethod
    def _unknown_version_message(model: str, version: str, tags: ModelTags) -> str:
        known = ", ".join(sorted(tags.versions, key=semver_key)) or "none yet"
        return (f"{model}@{version} is not registered (registered: {known}): "
                f"add it with `modelmedic registry add-version {model} {version} ...`")

    def _cached_summaries(self, stamp: list[list[int] | None]) -> list[ModelSummary] | None:
        """The cached list of every model, if it was written when the refs were at ``stamp``."""
        cached = read_json(self._git_dir / _LIST_CACHE_FILE)
        if cached is None or cached.get("stamp") != stamp:
            return None
        return [ModelSummary(**row) for row in cached["models"]]

    def _read_tags(self, model: str, *, with_messages: bool = False) -> ModelTags:
        """One scoped ``for-each-ref``: cost grows with this model's tags, not the registry's."""
        refs = self._for_each_ref([f"refs/tags/{model}@*", f"refs/tags/{model}#*"], with_messages=with_messages)
        return group_tags(refs).get(model, NO_TAGS)

    def _for_each_ref(self, patterns: list[str], *, with_messages: bool) -> list[list[str]]:
        fmt = REF_FORMAT_WITH_MESSAGE if with_messages else REF_FORMAT
        out = self._git("for-each-ref", f"--format={fmt}", *patterns)
        return [record.lstrip("\n").split("\x1f") for record in out.split("\x1e") if record.strip()]

    def _write_list_cache(self, stamp: list[list[int] | None], summaries: list[ModelSummary]) -> None:
        write_atomic(self._git_dir / _LIST_CACHE_FILE,
                      json.dumps({"stamp": stamp, "models": [asdict(s) for s in summaries]}))

    def _update_list_cache(self, model: str, stamp_before: list[list[int] | None]) -> None:
        """After a write, patch the model's cached row, if the cache was current before the write."""
        cached = self._cached_summaries(stamp_before)
        if cached is None:
            return
        rows = {s.name: s for s in cached}
        rows[model] = summary(model, self._read_tags(model))
        self._write_list_cache(self._refs_stamp(), [rows[name] for name in sorted(rows)])

    def _refs_stamp(self) -> list[list[int] | None]:
        """What changes whenever a tag or a model directory is added, moved or removed (or refs are packed).

        Git writes a ref by renaming a lock file over it, so the directory's nanosecond mtime (or
        packed-refs' inode) moves on every change, by any tool, GTO included.
        """
        stamp: list[list[int] | None] = []
        for path in (self._git_dir / "packed-refs", self._git_dir / "refs" / "tags", self.path / "models"):
            try:
                st = path.stat()
            except FileNotFoundError:
                stamp.append(None)
            else:
                stamp.append([st.st_mtime_ns, st.st_ino, st.st_size])
        return stamp

    def _commit(self, paths: list[Path], message: str, *, allow_empty: bool = False) -> None:
        rel = [str(p.relative_to(self.path)) for p in paths]
        self._git("add", "--", *rel)
        self._git("commit", "-q", "--allow-empty" if allow_empty else "--no-allow-empty", "-m", message, "--", *rel)

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        out = run_git(self.path, *args, env=env)
        assert out is not None  # check=True raises instead
        return out

    @contextlib.contextmanager
    def _model_transaction(self, model: str) -> Iterator[None]:
        """A write transaction that changes ``model``'s tags or directory: keeps the list cache current."""
        with self._transaction():
            stamp_before = self._refs_stamp()
            yield
            self._update_list_cache(model, stamp_before)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Serialize writers on an flock in ``.git``; the kernel drops it if a writer dies, so no stale lock."""
        with open(self._git_dir / _LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def run_git(cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str | None:
    """Run git in ``cwd``; on failure raise with git's message (or return ``None`` if not ``check``)."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env} if env else None)
    if proc.returncode == 0:
        return proc.stdout
    if not check:
        return None
    raise RegistryGitError(f"`git {' '.join(args[:2])}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}"
                           " (check the repository state with `git status`)")



def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_atomic(path: Path, text: str) -> None:
    """Readers never see half a file: write beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    tmp.write_text(text)
    os.replace(tmp, path)


def dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - safe loader

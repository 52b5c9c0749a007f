"""The source-controlled model registry: one git repository holds every model, version, stage and stat.

Files (reviewed like code, one commit per change)::

    registry.yaml                            marker written by ``init`` (format version)
    models/<model>/model.yaml                description, owners, interface (JSON Schemas), languages, runtime, gates
    models/<model>/versions/<v>.yaml         what one version runs: artifact URI and digest, image by digest
    models/<model>/versions/<v>.cert.json    certification report: the baseline the monitor compares against
    models/<model>/versions/<v>.stats.json   usage/performance stats rolled up from production

Tags follow GTO's conventions (iterative/gto) so ``gto show`` and CI actions read the same registry:

    <model>@v<semver>       annotated, on the commit that added the version file; message = release notes
    <model>#<stage>#<n>     annotated, on that same commit; n counts every assignment of the model

The repository underneath (file layout, the write lock, commits, scoped tag reads, the list
cache) is :class:`~modelmedic.registry.repository.GitRepository`'s; this module is what the
registry means: what each write checks and records, and what the reads return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelmedic.errors import (
    CertificationMissingError,
    InterfaceBreakError,
    ModelExistsError,
    PromotionError,
    RegistryValidationError,
    UnknownModelError,
    UnknownVersionError,
    VersionExistsError,
)
from modelmedic.registry.compatibility import breaking_allowed, interface_breaks, previous_version
from modelmedic.registry.records import (
    NEEDS_CERTIFICATION,
    STAGES,
    Assignment,
    CertifiedBaseline,
    HistoryEvent,
    ModelSpec,
    ModelSummary,
    ModelView,
    StableVersions,
    StatDelta,
    StatsCommit,
    VersionInfo,
    VersionView,
)
from modelmedic.registry.repository import GitRepository, dump_yaml, load_yaml, read_json, run_git, write_atomic
from modelmedic.registry.schema import (
    check_artifact,
    check_gates,
    check_image,
    check_certification,
    check_interface,
    check_model_name,
    normalize_version,
    semver_key,
)
from modelmedic.registry.stats import UsageStats
from modelmedic.registry.tags import NO_TAGS, ModelTags, VersionTag, group_tags, parse_show_ref, summary

FORMAT_VERSION = 1
_STATS_STAMP_FILE = "modelmedic-stats-flushed-at"


class Registry(GitRepository):
    """A model registry in the git repository at ``path``.

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> reg = Registry.init(tmp.name)
    >>> _ = reg.register_model("demo", description="Scores demos", owners=["ds-team"],
    ...     interface={"input": {"type": "object"}, "output": {"type": "number"}})
    >>> reg.add_version("demo", "1.0.0", "First release", "s3://m/demo/1.0.0", "sha256:" + "0" * 64).version
    'v1.0.0'
    >>> reg.stable_version("demo") is None
    True
    >>> tmp.cleanup()
    """

    # ----------------------------------------------------------------- setup

    @classmethod
    def init(cls, path: str | os.PathLike[str], **kwargs: Any) -> Registry:
        """Create (or adopt) a git repository as a registry; idempotent."""
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        if not (root / ".git").is_dir():
            run_git(root, "init", "-q", "-b", "main")
        if run_git(root, "var", "GIT_COMMITTER_IDENT", check=False) is None:
            # No identity anywhere: commits and tags would fail. Name the registry tool, locally only.
            run_git(root, "config", "user.name", "modelmedic registry")
            run_git(root, "config", "user.email", "modelmedic@localhost")
        marker = root / "registry.yaml"
        if not marker.is_file():
            write_atomic(marker, f"# modelmedic model registry; layout: docs/registry.md\nformat: {FORMAT_VERSION}\n")
            run_git(root, "add", "--", "registry.yaml")
            run_git(root, "commit", "-q", "-m", "Initialize modelmedic model registry", "--", "registry.yaml")
        return cls(root, **kwargs)

    # ----------------------------------------------------------------- writes

    def register_model(self, name: str, *, description: str, owners: Iterable[str], interface: dict[str, Any],
                       languages: Iterable[str] = (), runtime: str = "", update: bool = False,
                       gates: Mapping[str, Any] | None = None) -> ModelSpec:
        """Register a model (or, with ``update``, change its metadata) in one commit."""
        check_model_name(name)
        owners = tuple(owners)
        if not isinstance(description, str) or not description.strip():
            raise RegistryValidationError(f"model {name}: give a description (what it predicts, for whom)")
        if not owners or not all(isinstance(o, str) and o.strip() for o in owners):
            raise RegistryValidationError(f"model {name}: give at least one owner (team or person to page)")
        spec = ModelSpec(name=name, description=description, owners=owners, interface=check_interface(interface),
                         languages=tuple(languages), runtime=runtime, gates=check_gates(gates or {}))
        with self._model_transaction(name):
            exists = self._model_file(name).is_file()
            if exists and not update:
                raise ModelExistsError(f"model {name} is already registered: pass update=True "
                                       "(CLI: --update) to change its metadata")
            if update and not exists:
                raise UnknownModelError(f"model {name} is not registered: register it without --update first")
            payload = asdict(spec)
            payload.update(owners=list(spec.owners), languages=list(spec.languages))
            if not spec.gates:
                del payload["gates"]
            path = self._model_file(name)
            write_atomic(path, dump_yaml(payload))
            self._commit([path], f"{'Update' if exists else 'Register'} model {name}")
        return spec

    def add_version(self, model: str, version: str, notes: str, artifact_uri: str, digest: str, *,
                    image: str | None = None, irreversible: str | None = None, description: str | None = None,
                    interface: dict[str, Any] | None = None) -> VersionInfo:
        """Record what a version runs (artifact and digest, image by digest) in the tree, and tag it
        ``<model>@v<semver>`` with the release notes.

        ``description`` and ``interface`` override the model's for this version. An interface that
        breaks the previous version's (:mod:`~modelmedic.registry.compatibility`) is refused unless
        the version is a new major one: callers of the old version would fail against it.

        The commit is always new (``--allow-empty``) so every version tag points at its own commit:
        GTO resolves a stage tag to the version whose tag shares its commit.
        """
        version = normalize_version(version)
        check_artifact(artifact_uri, digest)
        check_image(image)
        if interface is not None:
            check_interface(interface)
        if not isinstance(notes, str) or not notes.strip():
            raise RegistryValidationError(f"{model}@{version}: give release notes (what changed and why)")
        record = {"model": model, "version": version, "artifact_uri": artifact_uri, "digest": digest,
                  **({"image": image} if image else {}), **({"irreversible": irreversible} if irreversible else {}),
                  **({"description": description} if description else {}),
                  **({"interface": interface} if interface is not None else {})}
        with self._model_transaction(model):
            self._require_model(model)
            known = list(self._read_tags(model).versions)
            if version in known:
                raise VersionExistsError(f"{model}@{version} already exists and versions are immutable: "
                                         "register the change as a new version (e.g. bump the patch number)")
            self._check_compatible(model, version, interface, known)
            path = self._version_file(model, version)
            write_atomic(path, dump_yaml(record))
            self._commit([path], f"Register {model} {version}", allow_empty=True)
            self._git("tag", "-a", f"{model}@{version}", "-m", notes, "HEAD")
            tags = self._read_tags(model, with_messages=True)
        return self._version_info(model, tags, tags.versions[version])

    def mark_irreversible(self, model: str, version: str, reason: str) -> VersionInfo:
        """Mark a version as never to be rolled back automatically (e.g. it migrated a schema), with why.

        What the version runs stays immutable; this adds the mark to its record in one commit.
        Automatic rollbacks then page a person with ``reason`` instead of acting.
        """
        version = normalize_version(version)
        if not isinstance(reason, str) or not reason.strip():
            raise RegistryValidationError(f"{model}@{version}: say why it cannot be rolled back (--reason)")
        with self._transaction():
            self._require_version(model, version)
            path = self._version_file(model, version)
            write_atomic(path, dump_yaml({**load_yaml(path), "irreversible": reason}))
            self._commit([path], f"Mark {model} {version} irreversible: {reason}")
        return self.version_info(model, version)
    def promote(self, model: str, version: str, stage: str, *, force: bool = False, reason: str = "") -> Assignment:
        """Assign ``stage`` to a version with a GTO tag ``<model>#<stage>#<n>``.

        Guards (``force`` overrides them and the tag message records it): canary and stable need a
        version that was certified; certified needs a certification report; retired versions stay
        retired; a version already in the stage is not assigned again.
        """
        version = normalize_version(version)
        if stage not in STAGES:
            raise PromotionError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
        with self._model_transaction(model):
            self._require_model(model)
            tags = self._read_tags(model)
            if version not in tags.versions:
                raise UnknownVersionError(self._unknown_version_message(model, version, tags))
            current = tags.stage_of(version)
            if current == stage:
                raise PromotionError(f"{model}@{version} is already {stage}: nothing to do")
            if not force:
                self._check_promotion(model, version, stage, current, tags)
            n = tags.next_n()
            tag = f"{model}#{stage}#{n}"
            # GTO's own first line, then why (and that the guards were overridden, if they were).
            paragraphs = [f"Assigning stage {stage} to artifact {model} version {version}", reason,
                          "forced: lifecycle guards overridden" if force else ""]
            message = "\n\n".join(p for p in paragraphs if p)
            self._git("tag", "-a", tag, "-m", message, tags.versions[version].commit,
                      env={"GIT_COMMITTER_DATE": f"{tags.next_assignment_time()} +0000"})
            assignment = next(a for a in self._read_tags(model, with_messages=True).assignments if a.tag == tag)
        return assignment

    def attach_certification(self, model: str, version: str, report: dict[str, Any],
                             markdown: str | None = None) -> CertifiedBaseline:
        """Store a certification report next to the version; ``certified`` requires one that did not fail.

        ``markdown``, the report as people read it, goes beside it as ``<v>.cert.md`` in the same commit.
        """
        version = normalize_version(version)
        baseline = check_certification(report)
        with self._transaction():
            self._require_version(model, version)
            path = self._version_file(model, version, ".cert.json")
            write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
            paths = [path]
            if markdown is not None:
                paths.append(self._version_file(model, version, ".cert.md"))
                write_atomic(paths[-1], markdown)
            self._commit(paths, f"Certification report for {model} {version}")
        return baseline

    def attach_live_test(self, model: str, version: str, report: dict[str, Any], markdown: str) -> None:
        """Record a live (shadow) test's verdict next to the version: ``<v>.livetest.json`` and ``.md``."""
        version = normalize_version(version)
        with self._transaction():
            self._require_version(model, version)
            paths = [self._version_file(model, version, ".livetest.json"), self._version_file(model, version, ".livetest.md")]
            write_atomic(paths[0], json.dumps(report, indent=2, sort_keys=True) + "\n")
            write_atomic(paths[1], markdown)
            verdict = "passed" if report.get("passed") else "failed"
            self._commit(paths, f"Live test of {model} {version} in shadow: {verdict}")

    def live_test(self, model: str, version: str) -> dict[str, Any] | None:
        """The version's recorded live-test verdict (``<v>.livetest.json``), or None when it has none."""
        version = normalize_version(version)
        self._require_version(model, version)
        return read_json(self._version_file(model, version, ".livetest.json"))

    def check_registered(self, model: str, version: str) -> str:
        """The version's GTO spelling if it is registered; else raise saying so.

        One file check, no git call: :class:`~modelmedic.registry.stats.StatsBuffer` asks this
        for every version it is handed stats of.
        """
        version = normalize_version(version)
        if not self._version_file(model, version).is_file():
            self._require_model(model)
            raise UnknownVersionError(f"{model}@{version} is not registered: stats are kept only for "
                                      f"registered versions (see `modelmedic registry show {model}`)")
        return version

    def commit_stats(self, batch: Mapping[tuple[str, str], UsageStats], *, now: float, min_interval_s: float) -> StatsCommit:
        """Merge ``batch`` into the versions' stats files in one commit, unless stats were committed
        less than ``min_interval_s`` before ``now`` by any writer of the repository.

        The last commit time lives in ``.git`` and is read under the lock, so N replicas together
        still commit at most once per interval. ``min_interval_s=0`` (a forced flush at shutdown)
        always commits, even when another writer's clock stamped a later time than ``now``.
        """
        with self._transaction():
            stamp = self._git_dir / _STATS_STAMP_FILE
            last = float(stamp.read_text()) if stamp.is_file() else None
            if min_interval_s > 0 and last is not None and now - last < min_interval_s:
                return StatsCommit(False, last)
            paths = []
            for (model, version), stats in sorted(batch.items()):
                path = self._version_file(model, version, ".stats.json")
                previous = self._read_stats_file(path)
                merged = previous.merged(stats) if previous else stats
                write_atomic(path, json.dumps({**merged.to_dict(), "updated_at": int(now)}, indent=2,
                                               sort_keys=True) + "\n")
                paths.append(path)
            self._commit(paths, f"Roll up usage stats for {len(paths)} version(s)")
            stamped = max(now, last or now)  # never move the shared stamp backwards
            write_atomic(stamp, repr(stamped))
        return StatsCommit(True, stamped)

    # ----------------------------------------------------------------- reads

    def list_models(self, *, refresh: bool = False) -> list[ModelSummary]:
        """Every model with its version count, latest and stable version.

        Served from a summary cache in ``.git`` while the tags and the models directory are
        unchanged (three ``stat`` calls); registry writes update their model's row in place.
        Otherwise it is rebuilt with one ``git show-ref -d``, which takes peeled tags from
        ``packed-refs`` instead of opening every tag object (measured in docs/registry.md).
        ``refresh`` forces the rebuild.
        """
        stamp = self._refs_stamp()
        cached = None if refresh else self._cached_summaries(stamp)
        if cached is not None:
            return cached
        root = self.path / "models"
        names = sorted(e.name for e in os.scandir(root) if (Path(e.path) / "model.yaml").is_file()) \
            if root.is_dir() else []
        # show-ref exits 1 when there is no tag at all: that is an empty registry, not an error.
        by_model = group_tags(parse_show_ref(run_git(self.path, "show-ref", "--tags", "-d", check=False) or ""))
        summaries = [summary(name, by_model.get(name, NO_TAGS)) for name in names]
        self._write_list_cache(stamp, summaries)
        return summaries

    def show(self, model: str) -> ModelView:
        """A model's metadata, versions (with stage, artifact, notes) and its stable/canary versions."""
        spec = self.spec(model)
        tags = self._read_tags(model, with_messages=True)
        versions = tuple(self._version_info(model, tags, vt)
                         for vt in sorted(tags.versions.values(), key=lambda vt: semver_key(vt.version)))
        return ModelView(spec=spec, versions=versions, stable=tags.holder("stable"),
                         previous_stable=tags.previous_stable(), canary=tags.holder("canary"))

    def show_version(self, model: str, version: str) -> VersionView:
        """One version with its notes, and the description and interface it has (its own or the model's)."""
        info = self.version_info(model, version)
        spec = self.spec(model)
        return VersionView(info=info, description=info.description or spec.description,
                           interface=info.interface or spec.interface, inherited=info.interface is None)

    def spec(self, model: str) -> ModelSpec:
        """The model's ``model.yaml``, typed."""
        self._require_model(model)
        data = load_yaml(self._model_file(model))
        return ModelSpec(name=model, description=data["description"], owners=tuple(data["owners"]),
                         interface=data["interface"], languages=tuple(data.get("languages", ())),
                         runtime=data.get("runtime", ""), gates=data.get("gates") or {})

    def version_info(self, model: str, version: str) -> VersionInfo:
        """One version's record: what it runs (artifact, digest, image), its notes, stage and marks."""
        version = normalize_version(version)
        self._require_model(model)
        tags = self._read_tags(model, with_messages=True)
        if version not in tags.versions:
            raise UnknownVersionError(self._unknown_version_message(model, version, tags))
        return self._version_info(model, tags, tags.versions[version])

    def history(self, model: str) -> list[HistoryEvent]:
        """Registrations and stage assignments, oldest first (assignments in GTO counter order)."""
        self._require_model(model)
        tags = self._read_tags(model, with_messages=True)
        registered = sorted(tags.versions.values(), key=lambda vt: (vt.created_at, semver_key(vt.version)))
        events = [HistoryEvent("register", model, vt.version, None, vt.created_at, vt.author, vt.notes,
                               f"{model}@{vt.version}") for vt in registered]
        assigns = [HistoryEvent("assign", model, a.version, a.stage, a.created_at, a.author, a.message, a.tag)
                   for a in tags.assignments]
        return _merge_by_time(events, assigns)

    def stage(self, model: str, version: str) -> str | None:
        """The version's current stage, or ``None`` if it was never promoted.

        A version leaves canary or stable when another version takes that stage; it then shows
        the last stage it still holds (usually ``certified``: a valid rollback target).
        """
        version = normalize_version(version)
        self._require_model(model)
        tags = self._read_tags(model)
        if version not in tags.versions:
            raise UnknownVersionError(self._unknown_version_message(model, version, tags))
        return tags.stage_of(version)

    def stable_version(self, model: str) -> str | None:
        """The version serving production: the latest ``stable`` assignment (as ``gto show model#stable``)."""
        self._require_model(model)
        return self._read_tags(model).holder("stable")

    def previous_stable_version(self, model: str) -> str | None:
        """The version stable before the current one, skipping retired ones: rollback target and canary."""
        self._require_model(model)
        return self._read_tags(model).previous_stable()

    def stable_versions(self, model: str) -> StableVersions:
        """Stable, previous stable and canary versions from one scoped tag read."""
        self._require_model(model)
        tags = self._read_tags(model)
        return StableVersions(model, tags.holder("stable"), tags.previous_stable(), tags.holder("canary"))

    def certified_baseline(self, model: str, version: str) -> CertifiedBaseline:
        """The numbers a version was certified with (``versions/<v>.cert.json``): the monitor's baseline.

        A report that failed its gates is no baseline: :class:`CertificationMissingError` says so.
        """
        report = self.certification_report(model, version)
        if report is None:
            raise CertificationMissingError(
                f"{model}@{version} has no certification report: certify it and attach the report with "
                f"`modelmedic registry attach-certification {model} {version} report.json`"
            )
        if report.get("passed") is False:
            raise CertificationMissingError(f"{model}@{version}'s latest certification failed its gates, so it has "
                                            "no certified baseline: fix the version and certify it again")
        return check_certification(report)

    def certification_report(self, model: str, version: str) -> dict[str, Any] | None:
        """The version's latest certification report as attached, passed or not; None when it has none."""
        version = normalize_version(version)
        path = self._version_file(model, version, ".cert.json")
        if not path.is_file():
            self._require_version(model, version)
            return None
        return json.loads(path.read_text())

    def stats(self, model: str, version: str) -> UsageStats | None:
        """The committed roll-up of a version's usage stats, or ``None`` before the first flush."""
        version = normalize_version(version)
        self._require_version(model, version)
        return self._read_stats_file(self._version_file(model, version, ".stats.json"))

    def diff_stats(self, model: str, version_a: str, version_b: str) -> list[StatDelta]:
        """Compare two versions' committed stats metric by metric (b relative to a)."""
        a, b = self.stats(model, version_a), self.stats(model, version_b)
        flat_a, flat_b = _flatten_stats(a), _flatten_stats(b)
        deltas = []
        for metric in [*flat_a, *(k for k in flat_b if k not in flat_a)]:
            va, vb = flat_a.get(metric), flat_b.get(metric)
            change = vb - va if va is not None and vb is not None else None
            relative = change / va if change is not None and va else None
            deltas.append(StatDelta(metric, va, vb, change, relative))
        return deltas

    # ----------------------------------------------------------------- internals

    def _check_promotion(self, model: str, version: str, stage: str, current: str | None, tags: ModelTags) -> None:
        if current == "stable" and stage != "stable":
            previous = tags.previous_stable()
            raise PromotionError(
                f"{model}@{version} is the stable version: make another version stable first"
                + (f" (the previous stable is {previous}: `modelmedic registry promote {model} {previous} stable`)"
                   if previous else "") + ", or pass --force with a --reason to leave the model without one"
            )
        if current == "retired":
            raise PromotionError(f"{model}@{version} is retired: register a new version, or pass --force "
                                 "with a --reason if you really mean to bring it back")
        if stage in NEEDS_CERTIFICATION and not tags.ever_assigned(version, "certified"):
            raise PromotionError(
                f"{model}@{version} cannot become {stage}: it was never certified, and canary/stable "
                "versions must be. Attach a certification report and promote it to certified first "
                f"(`modelmedic registry promote {model} {version} certified`), or pass --force with a --reason"
            )
        if stage == "certified" and not self._version_file(model, version, ".cert.json").is_file():
            raise PromotionError(
                f"{model}@{version} cannot become certified without a certification report: attach one with "
                f"`modelmedic registry attach-certification {model} {version} report.json` first"
            )
        if stage == "certified" and (read_json(self._version_file(model, version, ".cert.json")) or {}).get("passed") is False:
            raise PromotionError(
                f"{model}@{version} cannot become certified: its certification report failed its gates "
                f"(see versions/{version}.cert.md); fix the version and run `modelmedic certify` again, "
                "or pass --force with a --reason"
            )

    def _version_info(self, model: str, tags: ModelTags, vt: VersionTag) -> VersionInfo:
        record = load_yaml(self._version_file(model, vt.version))
        return VersionInfo(model=model, version=vt.version, artifact_uri=record["artifact_uri"],
                           digest=record["digest"], notes=vt.notes, created_at=vt.created_at,
                           stage=tags.stage_of(vt.version), commit=vt.commit, image=record.get("image"),
                           irreversible=record.get("irreversible"), description=record.get("description"),
                           interface=record.get("interface"))

    def _own_interface(self, model: str, version: str) -> dict[str, Any] | None:
        return load_yaml(self._version_file(model, version)).get("interface")

    def _check_compatible(self, model: str, version: str, interface: dict[str, Any] | None, known: list[str]) -> None:
        """Refuse ``version`` if its interface breaks the previous version's without a major bump."""
        previous = previous_version(known, version)
        if previous is None or breaking_allowed(previous, version):
            return
        default = self.spec(model).interface
        breaks = interface_breaks(self._own_interface(model, previous) or default, interface or default)
        if breaks:
            raise InterfaceBreakError(
                f"{model}@{version} breaks the interface of {previous}: {'; '.join(breaks)}. Callers of {previous} "
                f"would fail: keep the interface compatible, or register it as a new major version "
                f"(semver: {_next_major(previous)})")

    def interface(self, model: str, version: str) -> dict[str, Any]:
        """The interface ``version`` is called with: its own, else the model's."""
        version = self.check_registered(model, version)
        return self._own_interface(model, version) or self.spec(model).interface

    @staticmethod
    def _read_stats_file(path: Path) -> UsageStats | None:
        return UsageStats.from_dict(json.loads(path.read_text())) if path.is_file() else None


def _next_major(version: str) -> str:
    major, minor, *_ = semver_key(version)
    return f"v0.{minor + 1}.0" if major == 0 else f"v{major + 1}.0.0"


def _merge_by_time(first: list[HistoryEvent], second: list[HistoryEvent]) -> list[HistoryEvent]:
    """Merge two time-ordered lists, keeping each list's own order; ties go to ``first``."""
    merged, i, j = [], 0, 0
    while i < len(first) or j < len(second):
        if j == len(second) or (i < len(first) and first[i].created_at <= second[j].created_at):
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


def _flatten_stats(stats: UsageStats | None) -> dict[str, float]:
    if stats is None:
        return {}
    flat = {k: float(v) for k, v in stats.to_dict().items() if k not in ("quality", "latency_histogram")}
    flat.update({f"quality.{k}": v for k, v in stats.quality.items()})
    return flat

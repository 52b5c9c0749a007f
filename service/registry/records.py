"""The registry's record types: what its reads return and its writes take (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

STAGES = ("candidate", "certified", "canary", "stable", "retired")
"""The lifecycle, in order. A version may be assigned any stage; the guards are in :meth:`Registry.promote`."""

EXCLUSIVE_STAGES = frozenset({"canary", "stable"})
"""Stages one version holds at a time: assigning one to a version takes it from the previous holder."""

NEEDS_CERTIFICATION = frozenset({"canary", "stable"})
"""Stages only a version that was once certified may be promoted to."""

ARTIFACT_ENV = "MODEL_ARTIFACT"
"""The environment variable a model container reads its artifact URI from."""
DIGEST_ENV = "MODEL_DIGEST"
"""The environment variable holding the artifact's ``sha256:<hex>``, which the container verifies before serving."""
ARTIFACT_ANNOTATION = "modelmedic.io/artifact"
"""Pod-template annotation with the artifact URI: an init container reads it through the downward API."""
DIGEST_ANNOTATION = "modelmedic.io/digest"
"""Pod-template annotation with the artifact digest (same reason)."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how to call it: ``models/<model>/model.yaml``."""

    name: str
    description: str
    owners: tuple[str, ...]
    interface: dict[str, Any]
    """``{"input": <JSON Schema>, "output": <JSON Schema>}``."""
    languages: tuple[str, ...] = ()
    runtime: str = ""
    gates: dict[str, Any] = field(default_factory=dict)
    """The model's own release gates (see :data:`~modelmedic.registry.schema.GATE_FIELDS`): absolute
    certification floors over the policy's, and whether a deploy needs a passing live test."""


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: its tag, its artifact and where it stands in the lifecycle."""

    model: str
    version: str
    artifact_uri: str
    digest: str
    notes: str
    created_at: int
    """Unix time of the registration tag."""
    stage: str | None
    """Current stage (see :meth:`Registry.stage`); ``None`` until the first promotion."""
    commit: str
    image: str | None = None
    """The container image pinned by digest (``repo@sha256:<hex>``), or None: the Deployment's image is kept."""
    irreversible: str | None = None
    """Why this version must never be rolled back automatically (e.g. a schema migration); None when it may be."""
    description: str | None = None
    """What this version is, when it says more than the model's description; None: the model's."""
    interface: dict[str, Any] | None = None
    """This version's own ``{"input", "output"}`` JSON Schemas; None: it has the model's (``ModelSpec.interface``)."""

    def pod_env(self) -> dict[str, str]:
        """What a release puts in the model container's environment so it fetches and checks this artifact."""
        return {ARTIFACT_ENV: self.artifact_uri, DIGEST_ENV: self.digest}

    def pod_annotations(self) -> dict[str, str]:
        """What a release puts on the pod template: the same facts for any container (downward API)."""
        return {ARTIFACT_ANNOTATION: self.artifact_uri, DIGEST_ANNOTATION: self.digest}


@dataclass(frozen=True)
class Assignment:
    """One stage assignment tag ``<model>#<stage>#<n>``."""

    model: str
    version: str | None
    """``None`` when the tag points at a commit no version tag of the model points at."""
    stage: str
    n: int
    created_at: int
    author: str
    message: str
    tag: str


@dataclass(frozen=True)
class HistoryEvent:
    """A registration or a stage assignment, as :meth:`Registry.history` lists them."""

    action: str
    """``register`` or ``assign``."""
    model: str
    version: str | None
    stage: str | None
    created_at: int
    author: str
    message: str
    tag: str


@dataclass(frozen=True)
class ModelView:
    """Everything :meth:`Registry.show` knows about one model."""

    spec: ModelSpec
    versions: tuple[VersionInfo, ...]
    """Ascending semantic-version order."""
    stable: str | None
    previous_stable: str | None
    canary: str | None


@dataclass(frozen=True)
class VersionView:
    """One version as ``registry show MODEL VERSION`` tells it: its record, notes, and what it is called with."""

    info: VersionInfo
    description: str
    """The version's own description, else the model's."""
    interface: dict[str, Any]
    """The version's own interface, else the model's."""
    inherited: bool
    """True when ``interface`` is the model's (the version declares none)."""


@dataclass(frozen=True)
class StableVersions:
    """What deployment and the monitor resolve for a model, in one read: see :meth:`Registry.stable_versions`."""

    model: str
    stable: str | None
    previous_stable: str | None
    """The rollback target, and the version run as canary against the stable one."""
    canary: str | None


@dataclass(frozen=True)
class ModelSummary:
    """One row of :meth:`Registry.list_models`."""

    name: str
    versions: int
    latest: str | None
    stable: str | None


@dataclass(frozen=True)
class CertifiedBaseline:
    """The numbers a version was certified with: what production is compared against.

    A latency is None only in a failed report (too few requests to report that percentile).
    """

    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    throughput_rps: float
    error_rate: float
    quality: dict[str, float]
    """Named quality metrics, e.g. ``{"auc": 0.91}``."""
    report: dict[str, Any]
    """The full report as attached (extra keys such as drift references are kept)."""


@dataclass(frozen=True)
class StatDelta:
    """One metric of :meth:`Registry.diff_stats`: ``change`` is b - a, ``relative`` is (b - a) / a."""

    metric: str
    a: float | None
    b: float | None
    change: float | None
    relative: float | None


class StatsCommit(NamedTuple):
    """What :meth:`Registry.commit_stats` did."""

    committed: bool
    last_commit_at: float
    """Wall-clock time of the registry's latest stats commit: this one, or the too-recent one that refused it."""

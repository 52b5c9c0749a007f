"""The source-controlled model registry: one git repository holds every model, version, stage and stat.

The package's public API is the names below (``from modelmedic.registry import Registry, ...``);
its modules, by job:

- :mod:`~modelmedic.registry.records`: the record types reads return (versions, assignments, baselines);
- :mod:`~modelmedic.registry.schema`: what the registry accepts (names, versions, interfaces, reports);
- :mod:`~modelmedic.registry.tags`: a model's lifecycle as GTO's git tags say it;
- :mod:`~modelmedic.registry.store`: :class:`Registry`, what each write checks and records and what reads return;
- :mod:`~modelmedic.registry.repository`: the git repository underneath: file layout, the one write lock,
  commits, scoped tag reads;
- :mod:`~modelmedic.registry.eligibility`: which versions a release or a rollback may put in production;
- :mod:`~modelmedic.registry.stats`: usage stats (with mergeable latency histograms) and the buffer
  that commits them in bulk.

Layout, tags and guards: docs/registry.md.
"""

from modelmedic.registry.eligibility import release_refusal, rollback_refusal
from modelmedic.registry.records import (
    ARTIFACT_ANNOTATION,
    ARTIFACT_ENV,
    DIGEST_ANNOTATION,
    DIGEST_ENV,
    STAGES,
    Assignment,
    CertifiedBaseline,
    HistoryEvent,
    ModelSpec,
    ModelSummary,
    ModelView,
    StableVersions,
    StatDelta,
    VersionInfo,
    VersionView,
)
from modelmedic.registry.compatibility import breaking_allowed, interface_breaks
from modelmedic.registry.schema import (
    check_certification,
    check_image,
    check_interface,
    check_json_schema,
    normalize_version,
)
from modelmedic.registry.remote import RegistryMirror, RemoteStats, keep_fresh
from modelmedic.registry.stats import LatencyHistogram, StatsBuffer, UsageStats
from modelmedic.registry.store import Registry

__all__ = [
    "RegistryMirror", "RemoteStats", "keep_fresh",
    "ARTIFACT_ANNOTATION", "ARTIFACT_ENV", "DIGEST_ANNOTATION", "DIGEST_ENV", "STAGES", "Assignment", "CertifiedBaseline", "HistoryEvent", "LatencyHistogram", "ModelSpec", "ModelSummary",
    "ModelView", "Registry", "StableVersions", "StatDelta", "StatsBuffer", "UsageStats", "VersionInfo",
    "VersionView", "breaking_allowed", "interface_breaks",
    "check_certification", "check_image", "check_interface", "check_json_schema", "normalize_version",
    "release_refusal", "rollback_refusal",
]

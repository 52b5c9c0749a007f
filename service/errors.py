"""modelmedic's exception tree. Every message says what to do next."""

from __future__ import annotations


class ModelmedicError(Exception):
    """Base of every error modelmedic raises on purpose.

    ``exit_code`` is what the ``modelmedic`` command exits with when this error ends it
    (table in :mod:`modelmedic.cli`): 1 other, 3 refused or not found, 4 unreachable.
    """

    exit_code = 1


class ConfigError(ModelmedicError):
    """The configuration is invalid; the message names the field and the fix."""

    exit_code = 3


class KafkaUnavailable(ModelmedicError):
    """Kafka could not be reached or a topic could not be created."""

    exit_code = 4


class TopicMisconfigured(ModelmedicError):
    """A topic modelmedic writes exists with settings that lose or refuse its records (too few
    replicas, not compacted where the data is keyed state...); the message names the topic, the
    setting and the command or setting that fixes it."""

    exit_code = 3


class SinkError(ModelmedicError):
    """An alert sink rejected or could not receive an alert after its retries."""


class StackError(ModelmedicError):
    """A component of the local stack failed to install or start."""


class RegistryError(ModelmedicError):
    """The model registry refused or failed an operation; the message says how to proceed."""

    exit_code = 3


class NotARegistryError(RegistryError):
    """The path is not a registry repository (run ``modelmedic registry init``)."""


class RegistryGitError(RegistryError):
    """A git command inside the registry repository failed; git's own message is included."""

    exit_code = 1


class RemoteRegistryError(RegistryError):
    """The registry's git remote could not be fetched (URL, ref, credentials or network); the copy in use stays."""

    exit_code = 4


class RegistryValidationError(RegistryError):
    """A name, version, URI, digest, report or stats record is malformed."""


class InterfaceBreakError(RegistryValidationError):
    """A version's interface breaks its predecessor's without the new major version semver asks for."""


class InvalidVersionError(RegistryValidationError):
    """A version is not a semantic version (MAJOR.MINOR.PATCH, optional v prefix)."""


class SchemaError(RegistryValidationError):
    """A model's input or output interface does not parse as a JSON Schema."""


class UnknownModelError(RegistryError):
    """The model is not registered (register it first)."""


class ModelExistsError(RegistryError):
    """The model is already registered (update it instead)."""


class UnknownVersionError(RegistryError):
    """The version is not registered for this model."""


class VersionExistsError(RegistryError):
    """The version tag already exists: versions are immutable, register a new one."""


class PromotionError(RegistryError):
    """A stage assignment breaks the lifecycle (e.g. it skips certification)."""


class CertificationMissingError(RegistryError):
    """No certification report is attached to the version."""


class KubeError(ModelmedicError):
    """A Kubernetes API call failed; the message names the call and what to check."""


class KubeForbidden(KubeError):
    """The API server denied a call (403): modelmedic's RBAC does not allow it (deploy/rbac/)."""

    exit_code = 3


class KubeNotFound(KubeError):
    """The object a call needs does not exist (404), e.g. a Deployment name or namespace is wrong."""

    exit_code = 3


class KubeUnavailable(KubeError):
    """The API server kept answering 409/429/5xx or timing out after every retry."""

    exit_code = 4


class KubeRolloutTimeout(KubeError):
    """A Deployment did not finish rolling out within the time given."""


class PlaybookError(ModelmedicError):
    """A playbook is declared, referenced or parametrised wrongly; the message names it and the fix."""

    exit_code = 3


class UnknownPlaybookError(PlaybookError):
    """No playbook of that name is registered; the message lists the known ones."""


class PolicyError(ConfigError):
    """The remediation policy file is invalid; the message names the field (and rule) to fix."""


class ReleaseError(ModelmedicError):
    """Certification, deployment or rollback refused or could not run; the message says what to do."""

    exit_code = 3


class CertificationInputError(ReleaseError):
    """A request set, holdout set or certification policy is unreadable or malformed."""


class EndpointError(ReleaseError):
    """The candidate's endpoint could not be reached or answered nothing usable."""

    exit_code = 4


class NotCertifiedError(ReleaseError):
    """A deploy or rollback was asked for a version that is not certified (or is retired) without --force.

    ``version`` names the version refused, so the refusal can be paged and audited under it.
    """

    def __init__(self, message: str, *, version: str = "") -> None:
        super().__init__(message)
        self.version = version


class NoRollbackTargetError(ReleaseError):
    """The registry names no version to roll back to; give one with --to."""


class NotOwnedError(ModelmedicError):
    """Another replica owns this incident (its model's partition); ask that one."""

    exit_code = 3


class SnapshotRejected(ModelmedicError):
    """A detection-state snapshot is not one this release wrote (or its MAC is wrong): the
    partition starts afresh from its committed offset and re-learns its baselines.

    ``kind`` is a short class for the metric: ``format``, ``version``, ``signature``, ``body``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

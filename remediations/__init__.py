"""Remediation playbooks: the plugin API (:mod:`modelmedic.remediations.api`) and the built-ins.

The built-ins (``scale-out``, ``rollback``, ``restart``) are registered through the
project's own ``modelmedic.playbooks`` entry points, exactly as a third-party plugin's
are, so :meth:`PlaybookRegistry.load_entry_points` is the one way playbooks arrive.

Imports go one way: this package uses modelmedic's errors, metrics, Kubernetes client,
registry and alerting, and nothing of the detection plane or the incident lifecycle
(which calls it); ``modelmedic.response.policy`` builds on it. pyproject.toml's import contracts
check the direction (``tests/unit/test_import_contracts.py``).
"""

from modelmedic.remediations.api import (
    ENTRY_POINT_GROUP,
    ContextLogger,
    Outcome,
    Playbook,
    PlaybookContext,
    PlaybookError,
    PlaybookRegistry,
    Target,
    UnknownPlaybookError,
    default_registry,
    idempotency_key,
    playbook,
    run_playbook,
)
from modelmedic.kube import LAST_ACTION_ANNOTATION

__all__ = [
    "ENTRY_POINT_GROUP",
    "LAST_ACTION_ANNOTATION",
    "ContextLogger",
    "Outcome",
    "Playbook",
    "PlaybookContext",
    "PlaybookError",
    "PlaybookRegistry",
    "Target",
    "UnknownPlaybookError",
    "default_registry",
    "idempotency_key",
    "playbook",
    "run_playbook",
]

"""Which versions the release tools may put in production: one rule for deploy, every rollback path and the playbook.

A version may run when it is registered, not retired, has a certification report that did not
fail, and was assigned ``certified`` once. The rule lives here, beside the records it reads, so
the release plane and the ``rollback`` playbook (which may not import each other) apply the same one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmedic.errors import UnknownVersionError

if TYPE_CHECKING:
    from modelmedic.registry.store import Registry


def release_refusal(registry: Registry, model: str, version: str) -> str | None:
    """Why ``version`` must not be put in production without a person forcing it, or None when it may be.

    Raises :class:`~modelmedic.errors.UnknownModelError` / ``UnknownVersionError`` for what is not registered.
    """
    stage = registry.stage(model, version)
    if stage == "retired":
        return f"{model}@{version} is retired"
    report = registry.certification_report(model, version)
    if report is None:
        return f"{model}@{version} was never certified (it has no certification report)"
    if report.get("passed") is False:
        return f"{model}@{version}'s latest certification failed its gates (see versions/{version}.cert.md)"
    if not any(e.action == "assign" and e.version == version and e.stage == "certified" for e in registry.history(model)):
        return f"{model}@{version} was never certified"
    return None


def rollback_refusal(registry: Registry, model: str, running: str | None, target: str) -> str | None:
    """Why an automatic rollback from ``running`` to ``target`` must not happen, or None when it may.

    ``running`` marked irreversible (e.g. it migrated a schema) is never left automatically; the
    target must be one a release may run (:func:`release_refusal`).
    """
    if running is not None:
        try:
            mark = registry.version_info(model, running).irreversible
        except UnknownVersionError:  # a hand-patched version the registry never saw carries no mark
            mark = None
        if mark:
            return f"{model}@{running} is marked irreversible ({mark}): it is never rolled back automatically"
    return release_refusal(registry, model, target)

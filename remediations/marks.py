"""The annotations built-in playbooks leave on a model's Deployment, and what they read back.

Kept on the Deployment itself, not in modelmedic's memory, so they survive a crash, a
restart and a rebalance to another replica:

- ``modelmedic.io/last-action``: the idempotency key of the last run that acted. A run
  replayed after a crash (same incident, playbook and attempt, so the same key) finds
  it and does nothing twice.
- ``modelmedic.io/last-scale-at``: when scale-out last scaled (its stabilization window).
- ``modelmedic.io/deployed-at``: when the current version was deployed, if the deploy tool
  says so; otherwise rollback reads the current ReplicaSet's creation time.

>>> from modelmedic.kube import LAST_SCALE_AT
>>> stamp = marks("mm-key", 1_700_000_000.0, LAST_SCALE_AT)
>>> stamp[LAST_ACTION_ANNOTATION], stamp[LAST_SCALE_AT]
('mm-key', '2023-11-14T22:13:20+00:00')
>>> seconds_since(stamp[LAST_SCALE_AT], 1_700_000_060.0), seconds_since("yesterday", 0.0)
(60.0, None)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from modelmedic.errors import KubeError
from modelmedic.kube import LAST_ACTION_ANNOTATION, DeploymentState
from modelmedic.remediations.api import Outcome, PlaybookContext


log = logging.getLogger("modelmedic.playbooks")


def marks(key: str, now: float, *stamped: str) -> dict[str, str]:
    """The annotations of an action: its idempotency key, and ``now`` under each name in ``stamped``."""
    at = datetime.fromtimestamp(now, UTC).isoformat()
    return {LAST_ACTION_ANNOTATION: key, **{name: at for name in stamped}}


def seconds_since(stamp: str | None, now: float) -> float | None:
    """Seconds from an ISO 8601 annotation to ``now``; None when absent or unreadable (as if never)."""
    if stamp is None:
        return None
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        log.warning("ignoring unreadable timestamp annotation %r", stamp)
        return None
    return now - (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def replay_of(state: DeploymentState, ctx: PlaybookContext) -> Outcome | None:
    """Outcome.skipped when this very run (same idempotency key) already acted on the Deployment."""
    if state.annotations.get(LAST_ACTION_ANNOTATION) == ctx.idempotency_key:
        return Outcome.skipped("already done (a replay of the same run)", idempotency_key=ctx.idempotency_key)
    return None


async def leave_event(ctx: PlaybookContext, reason: str, message: str) -> None:
    """Record what was done as an Event on the Deployment (kubectl describe shows it); best effort.

    The action already happened: a missing Event must not turn it into a failure.
    """
    try:
        await ctx.k8s.record_event(ctx.target.namespace, ctx.target.deployment, reason,
                                   f"{message} (incident {ctx.incident_id})")
    except KubeError as error:
        ctx.log.warning("could not record event %s on the deployment: %s", reason, error)

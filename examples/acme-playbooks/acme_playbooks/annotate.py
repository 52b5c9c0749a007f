"""``annotate-deployment``: leave the incident on the model's Deployment, where on-call looks first."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelmedic.remediations import Outcome, PlaybookContext, playbook


class AnnotateParams(BaseModel):
    """Which annotation carries the note."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    key: str = Field("acme.example/last-incident", pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]{1,63}$")
    """Annotation key, ``<dns prefix>/<name>``."""


@playbook(name="annotate-deployment", timeout_s=10)
async def annotate_deployment(ctx: PlaybookContext, params: AnnotateParams) -> Outcome:
    """Record the incident on the model's Deployment, so `kubectl describe` says someone is on it."""
    t = ctx.target
    note = f"{ctx.incident_id}: {ctx.anomaly_class}/{ctx.kind} on {t.model} {t.version}"
    if ctx.dry_run:
        return Outcome.dry_run(f"would annotate {t.namespace}/{t.deployment} with {params.key}={note!r}")
    await ctx.k8s.annotate(t.namespace, t.deployment, {params.key: note})
    ctx.log.info("annotated %s/%s", t.namespace, t.deployment)
    return Outcome.done(f"annotated {t.namespace}/{t.deployment}", annotation=params.key, note=note)

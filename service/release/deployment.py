"""Deployment: upgrade a model to a certified version, downgrade it, and undo a release that fails its checks.

``deploy`` is the release manager's upgrade, in the order that keeps production safe:

1. refuse a version that is not certified (or is retired, or whose latest certification failed)
   unless forced; a forced deploy is logged, and the registry tag records it;
2. patch the model's Deployment so its pods run exactly what the registry's version record names,
   in one patch (:meth:`KubeClient.set_version`): the image by digest (when the version names one),
   ``MODEL_ARTIFACT`` and ``MODEL_DIGEST`` (which the model container verifies before it serves),
   the same two as pod-template annotations (for an init container), the ``modelmedic.io/version``
   label and ``MODEL_VERSION``; the rolling update keeps every Ready pod until its replacement is
   Ready (maxUnavailable 0). The Deployment is stamped with the deploy time
   (``modelmedic.io/deployed-at``, which the ``rollback`` playbook reads to tell a fresh release from an old one);
3. wait for the rollout, printing progress; then check it: rollout complete, ready == desired
   replicas, pods on the new version, and (``health_url``) the server's ``/healthz`` answers 200 for
   that version;
4. on success, promote the version to ``stable`` in the registry and point the ``<model>-canary``
   Deployment (when there is one) at the previous stable version, promoted to ``canary``: the monitor
   compares production against it on the same traffic;
5. on failure, put the version that ran before back (marked ``modelmedic.io/rolled-back-to``, so the
   rollback playbook never toggles it), and retire the failed version in the registry with the reason:
   it is not deployed again without a new version or an explicit ``--force``. The automatic undo
   happens only to a certified version, and never from a version marked irreversible: then the
   failed release stays and a person decides (the result says why).

``rollback`` is the downgrade and the emergency path: to a given version, or the registry's stable
version when something else runs, else its previous stable.

``run_shadow`` / ``stop_shadow`` run a candidate as a second Deployment ``<model>-shadow`` (role
``shadow``) for live testing on mirrored traffic; creating and deleting Deployments needs more RBAC
than the remediator's role (docs/releases.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import httpx

from modelmedic.errors import (
    KubeError,
    KubeNotFound,
    KubeRolloutTimeout,
    NoRollbackTargetError,
    NotCertifiedError,
    UnknownVersionError,
)
from modelmedic.kube import DEPLOYED_AT, ROLLED_BACK_TO, VERSION_ENV, VERSION_LABEL, DeploymentState, KubeClient, call_with_retries
from modelmedic.registry import (
    ARTIFACT_ANNOTATION,
    DIGEST_ANNOTATION,
    normalize_version,
    release_refusal,
    rollback_refusal,
)

if TYPE_CHECKING:
    from modelmedic.registry import Registry, VersionInfo

log = logging.getLogger(__name__)

__all__ = ["ARTIFACT_ANNOTATION", "DIGEST_ANNOTATION", "ReleaseOptions", "ReleaseResult", "deploy", "rollback",
           "refusal", "rollback_target", "run_shadow", "stop_shadow"]

ROLE_LABEL = "modelmedic.io/role"
ROLE_ENV = "MODEL_ROLE"
CANARY_SUFFIX = "-canary"
SHADOW_SUFFIX = "-shadow"

Progress = Callable[[str], None]
"""Where progress lines go: the CLI prints them; library callers get them as INFO log records by default."""


@dataclass(frozen=True)
class ReleaseOptions:
    """Where a model runs and how long a release may take."""

    namespace: str = "models"
    deployment: str | None = None
    """The production Deployment's name; the model's name when None."""
    rollout_timeout_s: float = 300.0
    health_url: str | None = None
    """The model server's health endpoint (GET, e.g. http://fraud.models/healthz); not checked when None."""
    health_timeout_s: float = 30.0
    """How long the health endpoint may take to answer 200 for the new version."""
    poll_s: float = 1.0

    def name(self, model: str) -> str:
        return self.deployment or model


@dataclass(frozen=True)
class ReleaseResult:
    """What a deploy or rollback did."""

    model: str
    version: str
    """The version asked for."""
    previous: str | None
    """The version the Deployment ran before."""
    status: Literal["deployed", "rolled-back", "failed"]
    """``rolled-back``: the version failed its checks and ``previous`` runs again; ``failed``: a rollback's
    checks failed (nothing more is undone: a person decides)."""
    problems: tuple[str, ...] = ()
    canary: str | None = None
    """The version the canary Deployment was pointed at, if any."""
    forced: bool = False
    override: str = ""
    """What ``--force`` overrode (the refusal it went past); empty when nothing was."""

    @property
    def ok(self) -> bool:
        return self.status == "deployed"


# --------------------------------------------------------------------------- registry decisions


def refusal(registry: Registry, model: str, version: str) -> str | None:
    """Why ``version`` must not be deployed without --force, or None when it may be.

    The registry's rule (:func:`~modelmedic.registry.release_refusal`: registered, not retired,
    certified by a report that passed), plus the model's own: ``require_live_test`` in its gates
    wants a passing shadow verdict (``modelmedic live-test``) recorded for the version.
    """
    why = release_refusal(registry, model, version)
    if why is None and registry.spec(model).gates.get("require_live_test"):
        verdict = registry.live_test(model, version)
        if verdict is None:
            why = f"{model} requires a passing live test and {model}@{version} has none (run `modelmedic live-test`)"
        elif not verdict.get("passed"):
            why = f"{model}@{version}'s live test failed (see versions/{version}.livetest.md)"
    return why


def _version_info(registry: Registry, model: str, version: str | None) -> VersionInfo | None:
    """The registry's record of a version (what it runs), or None when the registry does not know it."""
    if version is None:
        return None
    try:
        return registry.version_info(model, version)
    except UnknownVersionError:
        return None


def _canary_version(registry: Registry, model: str, version: str) -> str | None:
    """The previous stable version once ``version`` is stable: today's stable, else the one before it."""
    versions = registry.stable_versions(model)
    return versions.stable if versions.stable not in (None, version) else versions.previous_stable


def _record(registry: Registry, model: str, version: str, stage: str, reason: str, *, force: bool = False) -> None:
    """Assign ``stage`` unless the version already holds it (a redeploy of the stable version)."""
    if registry.stage(model, version) != stage:
        registry.promote(model, version, stage, force=force, reason=reason)


def rollback_target(registry: Registry, model: str, running: str | None) -> str:
    """The stable version when something else runs, else the previous stable (the rollback playbook's rule)."""
    versions = registry.stable_versions(model)
    target = versions.stable if versions.stable not in (None, running) else versions.previous_stable
    if target is None:
        raise NoRollbackTargetError(
            f"the registry names no version of {model} to roll back to (stable {versions.stable or '-'}, previous "
            f"stable {versions.previous_stable or '-'}, running {running or '-'}): give one with --to VERSION"
        )
    return target


# --------------------------------------------------------------------------- Kubernetes steps


def _annotations(now: float, rolled_back_to: str | None) -> dict[str, str | None]:
    """What a release stamps on the Deployment: the deploy time, and the rollback mark (None removes a stale one)."""
    return {DEPLOYED_AT: datetime.fromtimestamp(now, UTC).isoformat(), ROLLED_BACK_TO: rolled_back_to}


async def _wait(kube: KubeClient, namespace: str, name: str, opts: ReleaseOptions, progress: Progress) -> DeploymentState:
    """Wait for the rollout, printing a line whenever the counts move."""
    waiting = asyncio.create_task(kube.wait_rollout(namespace, name, opts.rollout_timeout_s, opts.poll_s))
    last = ""
    try:
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=opts.poll_s)
            if waiting.done():
                break
            state = await kube.get_deployment(namespace, name)
            line = (f"{namespace}/{name}: {state.updated_replicas}/{state.replicas} updated, "
                    f"{state.ready_replicas} ready, version {state.version}")
            if line != last:
                progress(line)
                last = line
    finally:
        if not waiting.done():
            waiting.cancel()
    return waiting.result()


async def _roll_out(kube: KubeClient, namespace: str, name: str, info: VersionInfo, opts: ReleaseOptions,
                    progress: Progress, now: float, rolled_back_to: str | None = None) -> DeploymentState:
    """Make ``name`` run what ``info`` names (image, artifact, version) in one patch, stamp it, wait for the rollout."""
    await kube.set_version(namespace, name, info.version, image=info.image, env=info.pod_env(),
                           pod_annotations=info.pod_annotations())
    await kube.annotate(namespace, name, _annotations(now, rolled_back_to))
    return await _wait(kube, namespace, name, opts, progress)


async def probe_health(url: str, version: str, timeout_s: float, *, poll_s: float = 0.5,
                       transport: httpx.AsyncBaseTransport | None = None) -> str | None:
    """None once ``url`` answers 200 (for ``version``, when the body names one); else the last problem seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    problem = "no answer"
    async with httpx.AsyncClient(transport=transport, timeout=min(timeout_s, 5.0)) as client:
        while True:
            try:
                response = await client.get(url)
                served = response.json().get("version") if response.status_code == 200 else None
                if response.status_code != 200:
                    problem = f"{url} answered {response.status_code}"
                elif served not in (None, version):
                    problem = f"{url} serves {served}, not {version}"
                else:
                    return None
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                problem = f"{url} did not answer ({exc!r})"
            if loop.time() + poll_s > deadline:
                return f"health check failed after {timeout_s:g}s: {problem}"
            await asyncio.sleep(poll_s)


async def post_deploy_problems(kube: KubeClient, namespace: str, name: str, version: str, opts: ReleaseOptions, *,
                               transport: httpx.AsyncBaseTransport | None = None) -> list[str]:
    """Everything wrong after a rollout: replicas not ready, pods on another version, an unhealthy server."""
    state = await kube.get_deployment(namespace, name)
    problems = []
    if state.ready_replicas != state.replicas:
        problems.append(f"{state.ready_replicas}/{state.replicas} replicas ready")
    if state.version != version:
        problems.append(f"the pods run {state.version}, not {version}")
    if opts.health_url:
        unhealthy = await probe_health(opts.health_url, version, opts.health_timeout_s, transport=transport)
        problems += [unhealthy] if unhealthy else []
    return problems


async def _release(kube: KubeClient, namespace: str, name: str, info: VersionInfo, opts: ReleaseOptions,
                   progress: Progress, now: float, *, rolled_back_to: str | None = None,
                   transport: httpx.AsyncBaseTransport | None = None) -> list[str]:
    """Roll ``info``'s version out and check it; the problems found (a rollout timeout is one), empty when healthy."""
    try:
        await _roll_out(kube, namespace, name, info, opts, progress, now, rolled_back_to)
    except KubeRolloutTimeout as exc:
        return [str(exc)]
    return await post_deploy_problems(kube, namespace, name, info.version, opts, transport=transport)


# --------------------------------------------------------------------------- commands


async def deploy(kube: KubeClient, registry: Registry, model: str, version: str, opts: ReleaseOptions = ReleaseOptions(),
                 *, force: bool = False, progress: Progress = log.info, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> ReleaseResult:
    """Upgrade (or downgrade) ``model`` to a certified ``version``; undo it by itself if its checks fail."""
    version = normalize_version(version)
    namespace, name = opts.namespace, opts.name(model)
    refused = await asyncio.to_thread(refusal, registry, model, version)
    if refused and not force:
        raise NotCertifiedError(f"refusing to deploy: {refused}. Certify it first (`modelmedic certify {model} "
                                f"{version} ...`), or pass --force (logged and recorded in the registry)",
                                version=version)
    if refused:
        log.warning("forced deploy of %s@%s to %s/%s: %s", model, version, namespace, name, refused)
        progress(f"WARNING: forcing the deploy although {refused}")
    info = await asyncio.to_thread(registry.version_info, model, version)
    previous = (await kube.get_deployment(namespace, name)).version
    progress(f"deploying {model}@{version} to {namespace}/{name} (running {previous or 'an unnamed version'})")
    problems = await _release(kube, namespace, name, info, opts, progress, clock(), transport=transport)
    if problems:
        return await _undo(kube, registry, model, version, previous, opts, problems, override=refused or "",
                           progress=progress, now=clock())
    previous_stable = await asyncio.to_thread(_canary_version, registry, model, version)
    reason = f"modelmedic deploy to {namespace}/{name}" + (f" (forced: {refused})" if refused else "")
    await asyncio.to_thread(_record, registry, model, version, "stable", reason, force=bool(refused))
    progress(f"{model}@{version} is stable in {namespace}/{name}")
    canary = await _point_canary(kube, registry, model, previous_stable, opts, progress, clock())
    await _event(kube, namespace, name, "ModelmedicDeployed", f"deployed {model}@{version} (was {previous})")
    return ReleaseResult(model, version, previous, "deployed", canary=canary, forced=bool(refused),
                         override=refused or "")


async def _undo(kube: KubeClient, registry: Registry, model: str, version: str, previous: str | None,
                opts: ReleaseOptions, problems: list[str], *, override: str, progress: Progress,
                now: float) -> ReleaseResult:
    """Put ``previous`` back after ``version`` failed its checks, and retire ``version`` with the reason.

    Only to a certified version, and never away from one marked irreversible: otherwise the failed
    release stays where it is and the result (status ``failed``) says why a person must decide.
    """
    namespace, name = opts.namespace, opts.name(model)
    why = "; ".join(problems)
    info = await asyncio.to_thread(_version_info, registry, model, previous)
    held = (f"the version it replaced ({previous or 'unnamed'}) is not in the registry" if info is None
            else await asyncio.to_thread(rollback_refusal, registry, model, version, info.version))
    if held:
        progress(f"post-deploy checks failed ({why}); NOT rolling back automatically: {held}")
        log.error("%s@%s failed its checks (%s) and was not rolled back: %s", model, version, why, held)
        await _event(kube, namespace, name, "ModelmedicRollbackHeld", f"{model}@{version}: {why}; {held}", "Warning")
        return ReleaseResult(model, version, previous, "failed", problems=(*problems, f"not rolled back: {held}"),
                             forced=bool(override), override=override)
    progress(f"post-deploy checks failed ({why}): rolling back to {previous}")
    await _roll_out(kube, namespace, name, info, opts, progress, now, rolled_back_to=previous)
    reason = (f"automatic rollback of the deploy to {namespace}/{name} to {previous}: {why}"
              + (" (the deploy was forced past certification)" if override else ""))
    if await asyncio.to_thread(registry.stage, model, version) not in ("retired", "stable"):
        await asyncio.to_thread(registry.promote, model, version, "retired", reason=reason)
    log.error("%s@%s rolled back to %s: %s", model, version, previous, why)
    await _event(kube, namespace, name, "ModelmedicRolledBack", f"{model}@{version} rolled back to {previous}: {why}",
                 "Warning")
    return ReleaseResult(model, version, previous, "rolled-back", problems=tuple(problems), forced=bool(override),
                         override=override)


async def _point_canary(kube: KubeClient, registry: Registry, model: str, version: str | None,
                        opts: ReleaseOptions, progress: Progress, now: float) -> str | None:
    """Run the previous stable version on ``<deployment>-canary`` if that Deployment exists; record it as canary."""
    name = opts.name(model) + CANARY_SUFFIX
    if version is None:
        return None
    try:
        await kube.get_deployment(opts.namespace, name)
    except KubeNotFound:
        progress(f"no {opts.namespace}/{name} Deployment: the previous stable {version} runs as no canary")
        return None
    # Always applied: a canary labelled with the version may still run another image or artifact
    # (a pod template that already matches is left as it is by the Deployment controller).
    info = await asyncio.to_thread(registry.version_info, model, version)
    await _roll_out(kube, opts.namespace, name, info, opts, progress, now)
    await asyncio.to_thread(_record, registry, model, version, "canary",
                            f"previous stable, canary in {opts.namespace}/{name}")
    progress(f"{opts.namespace}/{name} runs the previous stable {version} as canary")
    return version


async def _event(kube: KubeClient, namespace: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
    """Leave an Event for `kubectl describe`; a refused Event must not undo a release that happened."""
    try:
        await kube.record_event(namespace, name, reason, message, type_)
    except KubeError as exc:
        log.warning("could not record event %s on %s/%s: %s", reason, namespace, name, exc)


async def rollback(kube: KubeClient, registry: Registry, model: str, opts: ReleaseOptions = ReleaseOptions(), *,
                   to: str | None = None, force: bool = False, progress: Progress = log.info,
                   clock: Callable[[], float] = time.time,
                   transport: httpx.AsyncBaseTransport | None = None) -> ReleaseResult:
    """Downgrade to ``to``, or to the registry's stable/previous stable version; the emergency path.

    Failed checks are reported, not undone: going back to the version being rolled back from is
    never the automatic answer.
    """
    namespace, name = opts.namespace, opts.name(model)
    running = (await kube.get_deployment(namespace, name)).version
    target = normalize_version(to) if to else await asyncio.to_thread(rollback_target, registry, model, running)
    refused = await asyncio.to_thread(rollback_refusal, registry, model, running, target)
    if refused and not force:
        raise NotCertifiedError(f"refusing to roll back to {target}: {refused}. Pick another with --to, or pass "
                                "--force (recorded in the registry)", version=target)
    if refused:
        log.warning("forced rollback of %s/%s to %s@%s: %s", namespace, name, model, target, refused)
        progress(f"WARNING: forcing the rollback although {refused}")
    info = await asyncio.to_thread(registry.version_info, model, target)
    progress(f"rolling {namespace}/{name} back from {running} to {model}@{target}")
    problems = await _release(kube, namespace, name, info, opts, progress, clock(), rolled_back_to=target,
                              transport=transport)
    if problems:
        progress(f"the rollback's checks failed: {'; '.join(problems)}; the registry is left unchanged")
        return ReleaseResult(model, target, running, "failed", problems=tuple(problems), forced=bool(refused),
                             override=refused or "")
    reason = f"modelmedic rollback of {namespace}/{name} from {running}" + (f" (forced: {refused})" if refused else "")
    await asyncio.to_thread(_record, registry, model, target, "stable", reason, force=bool(refused))
    await _event(kube, namespace, name, "ModelmedicRolledBack", f"rolled back from {running} to {model}@{target}")
    progress(f"{model}@{target} is stable again in {namespace}/{name}")
    return ReleaseResult(model, target, running, "deployed", forced=bool(refused), override=refused or "")


# --------------------------------------------------------------------------- shadow (live testing)


def shadow_manifest(production: dict, version: str) -> dict:
    """A ``<name>-shadow`` Deployment from the production one's manifest: same pods, another version, role shadow.

    Every selector label gets a ``-shadow`` value, so neither Deployment ever adopts the other's pods.

    >>> prod = {"metadata": {"name": "fraud"}, "spec": {"selector": {"matchLabels": {"app": "fraud"}},
    ...     "template": {"metadata": {"labels": {"app": "fraud"}}, "spec": {"containers": [{"name": "m"}]}}}}
    >>> shadow = shadow_manifest(prod, "v2.0.0")
    >>> shadow["metadata"]["name"], shadow["spec"]["selector"]
    ('fraud-shadow', {'matchLabels': {'app': 'fraud-shadow'}})
    >>> shadow["spec"]["template"]["spec"]["containers"][0]["env"]
    [{'name': 'MODEL_VERSION', 'value': 'v2.0.0'}, {'name': 'MODEL_ROLE', 'value': 'shadow'}]
    """
    name = production["metadata"]["name"] + SHADOW_SUFFIX
    selector = {k: f"{v}{SHADOW_SUFFIX}" for k, v in production["spec"]["selector"]["matchLabels"].items()}
    template = production["spec"]["template"]
    labels = {**template["metadata"].get("labels", {}), **selector, VERSION_LABEL: version, ROLE_LABEL: "shadow"}
    first, *rest = template["spec"]["containers"]
    env = [e for e in first.get("env", []) if e["name"] not in (VERSION_ENV, ROLE_ENV)]
    env += [{"name": VERSION_ENV, "value": version}, {"name": ROLE_ENV, "value": "shadow"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name,
                     "labels": {ROLE_LABEL: "shadow", "modelmedic.io/shadow-of": production["metadata"]["name"]}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {**template["metadata"], "labels": labels},
                         "spec": {**template["spec"], "containers": [{**first, "env": env}, *rest]}},
        },
    }


async def run_shadow(kube: KubeClient, namespace: str, deployment: str, version: str) -> str:
    """Create ``<deployment>-shadow`` running ``version`` (or move the existing one to it); return its name.

    Needs create on deployments, which the remediator's role does not grant (docs/releases.md).
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    version = normalize_version(version)
    apps = client.AppsV1Api(kube.api_client)

    def apply() -> str:
        production = kube.api_client.sanitize_for_serialization(apps.read_namespaced_deployment(deployment, namespace))
        manifest = shadow_manifest(production, version)
        name = manifest["metadata"]["name"]
        try:
            apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            apps.create_namespaced_deployment(namespace, manifest)
        else:
            apps.patch_namespaced_deployment(name, namespace, {"spec": {"template": manifest["spec"]["template"]}})
        return name

    return await call_with_retries(f"create or update the shadow of {namespace}/{deployment}", apply, kube.retry)


async def stop_shadow(kube: KubeClient, namespace: str, deployment: str) -> bool:
    """Delete ``<deployment>-shadow``; False when there was none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(kube.api_client)
    name = deployment + SHADOW_SUFFIX

    def delete() -> bool:
        try:
            apps.delete_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    return await call_with_retries(f"delete deployment {namespace}/{name}", delete, kube.retry)

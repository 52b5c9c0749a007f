"""``modelmedic certify | deploy | rollback``: a version's way from candidate to production and back.

Exit codes: 0 done (certified / deployed / rolled back), 1 the version was judged and failed
(a gate failed, or the deploy's checks failed and it was undone), 2 usage, 3 refused, 4 unreachable
(the message says why). Failures page the model's owners and, like ``--force``, are audited. Progress goes to stderr, so ``--json`` output on stdout stays parseable.
Heavy imports happen in the handlers, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modelmedic.cli.registry import ENV_REGISTRY

if TYPE_CHECKING:
    from modelmedic.alerting import Alert
    from modelmedic.config import Settings
    from modelmedic.release.deployment import ReleaseOptions, ReleaseResult
    from modelmedic.release.notify import Stage
    from modelmedic.kube import KubeClient
    from modelmedic.registry import Registry


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _registry(args: argparse.Namespace) -> Registry:
    from modelmedic.errors import NotARegistryError
    from modelmedic.registry import Registry

    path = args.registry or os.environ.get(ENV_REGISTRY)
    if not path:
        raise NotARegistryError(f"no registry given: pass --registry PATH or set {ENV_REGISTRY}")
    return Registry(path)


def _kube(args: argparse.Namespace) -> KubeClient:
    """The kubeconfig's identity when one is given (flag or $KUBECONFIG), else the pod's ServiceAccount."""
    from modelmedic.kube import KubeClient

    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    return KubeClient.from_kubeconfig(kubeconfig, args.context) if kubeconfig else KubeClient.in_cluster()


def _options(args: argparse.Namespace) -> ReleaseOptions:
    from modelmedic.release.deployment import ReleaseOptions

    return ReleaseOptions(namespace=args.namespace, deployment=args.deployment, rollout_timeout_s=args.rollout_timeout,
                          health_url=args.health_url, health_timeout_s=args.health_timeout)


def _settings(args: argparse.Namespace) -> Settings:
    """The loaded settings (--config, MODELMEDIC_* env), read before any work so a bad configuration is
    refused up front rather than found when a failure needs paging and auditing."""
    from modelmedic.config import load_settings

    return load_settings(args.config)


def _audits(args: argparse.Namespace) -> bool:
    """Whether this run names a Kafka to audit to: a --config file, or the broker in the environment.

    Without either, the default broker (127.0.0.1:9092) is a guess, and a release on a laptop would
    wait on it; such a run says it was not audited instead.
    """
    return bool(args.config or os.environ.get("MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS"))


def _audit(args: argparse.Namespace, settings: Settings, records: list[dict]) -> None:
    """Write ``records`` to the audit topic; a failure to is reported on stderr and changes no exit code."""
    from aiokafka.errors import KafkaError

    from modelmedic.errors import ModelmedicError
    from modelmedic.release.notify import publish_audit

    if not records:
        return
    if not _audits(args):
        _progress(f"not audited ({', '.join(r['action'] for r in records)}): pass --config with the service's "
                  "settings (or set MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS) to record it on the audit topic")
        return
    try:
        asyncio.run(publish_audit(settings.kafka, records))
    except (KafkaError, ModelmedicError, OSError, TimeoutError) as exc:
        _progress(f"could not write the audit record to {settings.kafka.topics.audit}: {exc!r}")
        return
    _progress(f"audited {', '.join(r['action'] for r in records)} on {settings.kafka.topics.audit}")


def _fail(args: argparse.Namespace, settings: Settings, model: str, version: str, stage: Stage, reason: str,
          forced: list[dict] | None = None) -> None:
    """A failed release step: page the model's owners through the sinks (none: no page), then audit it.

    The audit record names the page's incident when a sink took it, and follows any ``forced``
    record of the same run.
    """
    from modelmedic.errors import ModelmedicError
    from modelmedic.registry import normalize_version
    from modelmedic.release.notify import audit_record, failure_alert

    try:
        owners: tuple[str, ...] = _registry(args).spec(model).owners
    except ModelmedicError:
        owners = ()  # a page is never held back for a registry read
    try:
        version = normalize_version(version)  # `deploy fraud 2.0.0` pages and audits v2.0.0, as the registry says
    except ModelmedicError:
        pass  # not a version at all: page it as typed
    alert = failure_alert(model, version, stage, reason, owners)
    paged = _page(args, settings, alert)
    failure = audit_record(model, version, "release-failed", {"stage": stage, "reason": reason},
                           incident_id=alert.incident_id if paged else "")
    _audit(args, settings, [*(forced or []), failure])


def _page(args: argparse.Namespace, settings: Settings, alert: Alert) -> bool:
    """Send ``alert`` through the settings' sinks; whether any sink took it.

    A page that cannot be delivered is reported on stderr and nothing more: the command's exit code
    keeps saying what happened to the release, not to the page.
    """
    from modelmedic.errors import ModelmedicError
    from modelmedic.release.notify import notify_failure

    if not settings.sinks:
        return False
    try:
        results = asyncio.run(notify_failure(settings.sinks, alert))
    except ModelmedicError as exc:
        _progress(f"could not page about the failed {alert.kind}: {exc}")
        return False
    paged = [r.sink for r in results if r.ok]
    if paged:
        (_progress if args.json else print)(f"paged {', '.join(paged)}")
    for failed in (r for r in results if not r.ok):
        _progress(f"page to {failed.sink} not delivered ({failed.result}): {failed.error}")
    return bool(paged)


def _forced(args: argparse.Namespace, result: ReleaseResult) -> list[dict]:
    """The audit record of a ``--force`` that went past a refusal (none when nothing was overridden)."""
    from modelmedic.release.notify import audit_record

    if not result.override:
        return []
    return [audit_record(result.model, result.version, "release-forced",
                         {"command": args.command, "overridden": result.override, "namespace": args.namespace,
                          "deployment": args.deployment or result.model, "status": result.status})]


# ---------------------------------------------------------------- handlers


def _live_test(args: argparse.Namespace) -> int:
    """Watch the shadow for --duration seconds, judge it against production, record the verdict."""
    import yaml

    from modelmedic.release.livetest import LiveTestPolicy, judge, observe, render_markdown

    registry = _registry(args)
    policy = LiveTestPolicy(**(yaml.safe_load(open(args.policy)) or {})) if args.policy else LiveTestPolicy()
    settings = _settings(args)
    kafka = settings.kafka
    _progress(f"watching {args.model} {args.version} in shadow for {args.duration:g}s on {kafka.topics.inference}")
    stats = asyncio.run(observe(kafka, args.model, args.version, args.duration, policy, from_beginning=args.from_beginning))
    report = judge(stats, policy)
    registry.attach_live_test(args.model, args.version, report, render_markdown(report))
    print(json.dumps(report) if args.json else render_markdown(report))
    if not report["passed"]:
        _fail(args, settings, args.model, args.version, "live-test",
              "failed gates: " + "; ".join(f"{g['gate']} {g['observed']} (must be {g['op']} {g['threshold']})"
                                           for g in report["gates"] if not g["passed"]))
    return 0 if report["passed"] else 1


def _certify(args: argparse.Namespace) -> int:
    from modelmedic.release.certification import certify
    from modelmedic.release.inputs import load_certification_policy, load_samples
    from modelmedic.release.report import render_png, require_plotting

    if args.plot:
        require_plotting()
    registry = _registry(args)
    settings = _settings(args)
    samples = load_samples(args.requests)
    holdout = load_samples(args.holdout, labelled=True) if args.holdout else None
    result = asyncio.run(certify(registry, args.model, args.version, args.endpoint, samples, holdout,
                                 load_certification_policy(args.policy), progress=_progress))
    if args.plot:
        Path(args.plot).write_bytes(render_png(result.report))
        _progress(f"latency and error rate per offered rate plotted in {args.plot}")
    if args.json:
        print(json.dumps(result.report))
    else:
        print(result.markdown)
        version = result.report["version"]
        if result.passed:
            print(f"{args.model}@{version} " + ("is now certified" if result.promoted else "passed (stage unchanged)"))
        else:
            print(f"{args.model}@{version} is NOT certified; failed gates:")
            print("\n".join(f"  - {gate.describe()}" for gate in result.failures))
    if not result.passed:
        _fail(args, settings, args.model, result.report["version"], "certification",
              "failed gates: " + "; ".join(gate.describe() for gate in result.failures))
    return 0 if result.passed else 1


def _release(args: argparse.Namespace) -> int:
    from modelmedic.errors import NotCertifiedError
    from modelmedic.release import deployment

    settings = _settings(args)

    async def run() -> ReleaseResult:
        kube = _kube(args)
        try:
            if args.command == "deploy":
                return await deployment.deploy(kube, _registry(args), args.model, args.version, _options(args),
                                               force=args.force, progress=_progress)
            return await deployment.rollback(kube, _registry(args), args.model, _options(args), to=args.to,
                                             force=args.force, progress=_progress)
        finally:
            kube.close()

    try:
        result = asyncio.run(run())
    except NotCertifiedError as exc:
        # refused: the release or the emergency rollback someone counted on did not happen; page and audit it
        _fail(args, settings, args.model, exc.version, args.command, f"refused by a release gate: {exc}")
        raise
    if args.json:
        print(json.dumps(asdict(result)))
    elif result.ok:
        print(f"{result.model}@{result.version} runs in {args.namespace} (was {result.previous})"
              + (f"; canary runs {result.canary}" if result.canary else ""))
    else:
        print(f"{result.model}@{result.version}: {result.status}: {'; '.join(result.problems)}")
    if not result.ok:
        _fail(args, settings, result.model, result.version, *_failure(args.command, result), forced=_forced(args, result))
    else:
        _audit(args, settings, _forced(args, result))
    return 0 if result.ok else 1


def _failure(command: str, result: ReleaseResult) -> tuple[Stage, str]:
    """The stage and reason a failed deploy or rollback is paged with."""
    problems = "; ".join(result.problems) or "no detail"
    if result.status == "rolled-back":
        return "rollback", f"deploying it failed its checks ({problems}); modelmedic rolled back to {result.previous}"
    if command == "deploy":
        return "deploy", f"it failed its checks and was not rolled back ({problems})"
    return "rollback", f"rolling back to it failed its checks ({problems})"


# ---------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="PATH", help=f"registry git repository (default: ${ENV_REGISTRY})")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("--config", "-c", help="the service's YAML settings: its alert sinks page the model's "
                                              "owners when the step fails; failures and --force are written "
                                              "to its Kafka's audit topic (live-test reads inference there)")

    def add(name: str, parent: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int], help_: str,
            description: str, *, version: bool = True, command: str | None = None) -> argparse.ArgumentParser:
        """A command on a model (and a version, with ``version``), run by ``func``."""
        parser = subparsers.add_parser(name, parents=[parent], help=help_, description=description)
        parser.add_argument("model")
        if version:
            parser.add_argument("version")
        parser.set_defaults(func=func, **({"command": command} if command else {}))
        return parser

    certify = add(
        "certify", common, _certify, "load-test and score a version; certify it if every gate passes",
        "Replay recorded requests against the version's endpoint at a ladder of request rates, score "
        "a labelled holdout, compare with the stable version's certification, attach the report to the registry "
        "and promote the version to certified when every gate passes (docs/releases.md).",
    )
    certify.add_argument("--endpoint", required=True, help="the candidate's base URL (serves POST /predict)")
    certify.add_argument("--requests", required=True, metavar="FILE.jsonl",
                         help='recorded requests, one {"request_id", "features"} per line')
    certify.add_argument("--holdout", metavar="FILE.jsonl", help='labelled requests: {"features", "label"} per line')
    certify.add_argument("--policy", metavar="FILE", help="gates and load ladder (YAML); defaults otherwise")
    certify.add_argument("--plot", metavar="FILE.png",
                         help="also chart latency percentiles and error rate per offered rate (PNG)")

    live = add(
        "live-test", common, _live_test, "judge a candidate running in shadow against production; record it",
        "Read the inference topic for --duration seconds, pair the shadow's predictions (role shadow, "
        "mirrored requests) with production's, compare p99 latency, error rate and agreement against a policy, "
        "and record the verdict next to the version in the registry. Exit 0 passed, 1 failed.",
    )
    live.add_argument("--duration", type=float, default=600.0, metavar="S", help="seconds to watch (default: 600)")
    live.add_argument("--policy", metavar="FILE", help="gates (YAML: p99_ratio, error_rate_delta, max_disagreement, min_pairs)")
    live.add_argument("--from-beginning", action="store_true", help="judge what the topic holds instead of what comes")

    kube = argparse.ArgumentParser(add_help=False, parents=[common])
    kube.add_argument("--namespace", default="models", help="the model's namespace (default: models)")
    kube.add_argument("--deployment", help="the production Deployment (default: the model's name)")
    kube.add_argument("--kubeconfig", metavar="PATH", help="default: $KUBECONFIG, else the pod's ServiceAccount")
    kube.add_argument("--context", help="kubeconfig context (default: the current one)")
    kube.add_argument("--health-url", help="the model server's /healthz, checked after the rollout")
    kube.add_argument("--rollout-timeout", type=float, default=300.0, metavar="S", help="default: 300")
    kube.add_argument("--health-timeout", type=float, default=30.0, metavar="S", help="default: 30")
    kube.add_argument("--force", action="store_true",
                      help="deploy a version that is not certified (logged, recorded in the registry and audited)")

    add("deploy", kube, _release, "upgrade or downgrade a model to a certified version",
        "Point the model's Deployment at the version, wait for the rollout, check it, record it as "
        "stable and run the previous stable as canary; if the checks fail, roll back and retire the version.",
        command="deploy")

    rollback = add(
        "rollback", kube, _release, "emergency rollback to the previous stable version (or --to VERSION)",
        "Point the model's Deployment at --to VERSION, or the registry's stable version when another "
        "runs, else its previous stable; wait, check, and record it as stable.",
        version=False, command="rollback",
    )
    rollback.add_argument("--to", metavar="VERSION", help="the version to go back to")

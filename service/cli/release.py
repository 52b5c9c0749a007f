"""``modelmedic certify | deploy | rollback``: a version's way from candidate to production and back.

Exit codes: 0 done (certified / deployed / rolled back), 1 the version was judged and failed
(a gate failed, or the deploy's checks failed and it was undone), 2 refused or could not run
(the message says why). Progress goes to stderr, so ``--json`` output on stdout stays parseable.
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
    from modelmedic.config import SinkSettings
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


def _sinks(args: argparse.Namespace) -> list[SinkSettings]:
    """The alert sinks of the loaded settings (--config, MODELMEDIC_* env), read before any work so a
    bad configuration is refused up front rather than found when a failure needs paging."""
    from modelmedic.config import load_settings

    return load_settings(args.config).sinks


def _page(args: argparse.Namespace, sinks: list[SinkSettings], model: str, version: str, stage: Stage,
          reason: str) -> None:
    """Page the model's owners about a failed release step through ``sinks`` (none: nothing to do).

    A page that cannot be delivered is reported on stderr and nothing more: the command's exit code
    keeps saying what happened to the release, not to the page.
    """
    from modelmedic.errors import ModelmedicError
    from modelmedic.release.notify import notify_failure

    if not sinks:
        return
    try:
        owners: tuple[str, ...] = _registry(args).spec(model).owners
    except ModelmedicError:
        owners = ()  # a page is never held back for a registry read
    try:
        results = asyncio.run(notify_failure(sinks, model, version, stage, reason, owners))
    except ModelmedicError as exc:
        _progress(f"could not page about the failed {stage}: {exc}")
        return
    paged = [r.sink for r in results if r.ok]
    if paged:
        (_progress if args.json else print)(f"paged {', '.join(paged)}")
    for failed in (r for r in results if not r.ok):
        _progress(f"page to {failed.sink} not delivered ({failed.result}): {failed.error}")


# ---------------------------------------------------------------- handlers


def _live_test(args: argparse.Namespace) -> int:
    """Watch the shadow for --duration seconds, judge it against production, record the verdict."""
    import yaml

    from modelmedic.config import load_settings
    from modelmedic.release.livetest import LiveTestPolicy, judge, observe, render_markdown

    registry = _registry(args)
    policy = LiveTestPolicy(**(yaml.safe_load(open(args.policy)) or {})) if args.policy else LiveTestPolicy()
    settings = load_settings(args.config)
    kafka = settings.kafka
    _progress(f"watching {args.model} {args.version} in shadow for {args.duration:g}s on {kafka.topics.inference}")
    stats = asyncio.run(observe(kafka, args.model, args.version, args.duration, policy, from_beginning=args.from_beginning))
    report = judge(stats, policy)
    registry.attach_live_test(args.model, args.version, report, render_markdown(report))
    print(json.dumps(report) if args.json else render_markdown(report))
    if not report["passed"]:
        _page(args, settings.sinks, args.model, args.version, "live-test",
              "failed gates: " + "; ".join(f"{g['gate']} {g['observed']} (must be {g['op']} {g['threshold']})"
                                           for g in report["gates"] if not g["passed"]))
    return 0 if report["passed"] else 1


def _certify(args: argparse.Namespace) -> int:
    from modelmedic.release.certification import certify
    from modelmedic.release.inputs import load_certification_policy, load_samples
    from modelmedic.release.report import render_png

    registry = _registry(args)
    sinks = _sinks(args)
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
        _page(args, sinks, args.model, result.report["version"], "certification",
              "failed gates: " + "; ".join(gate.describe() for gate in result.failures))
    return 0 if result.passed else 1


def _release(args: argparse.Namespace) -> int:
    from modelmedic.errors import NotCertifiedError
    from modelmedic.release import deployment

    sinks = _sinks(args)

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
        if args.command == "deploy":
            _page(args, sinks, args.model, args.version, "deploy", f"refused by a release gate: {exc}")
        raise
    if args.json:
        print(json.dumps(asdict(result)))
    elif result.ok:
        print(f"{result.model}@{result.version} runs in {args.namespace} (was {result.previous})"
              + (f"; canary runs {result.canary}" if result.canary else ""))
    else:
        print(f"{result.model}@{result.version}: {result.status}: {'; '.join(result.problems)}")
    if not result.ok:
        _page(args, sinks, result.model, result.version, *_failure(args.command, result))
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
                                              "owners when the step fails (and Kafka, for live-test)")

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
                      help="deploy a version that is not certified (logged and recorded in the registry)")

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

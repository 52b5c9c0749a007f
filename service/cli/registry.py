"""``modelmedic registry ...``: the model registry from the command line.

Every sub-command takes ``--registry PATH`` (default: ``$MODELMEDIC_REGISTRY``) and ``--json``.
Handlers import :mod:`modelmedic.registry` lazily so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmedic.registry import (Assignment, CertifiedBaseline, ModelSpec, ModelView, Registry, StatDelta,
                                     VersionInfo, VersionView)

ENV_REGISTRY = "MODELMEDIC_REGISTRY"


def _open(args: argparse.Namespace) -> Registry:
    from modelmedic.errors import NotARegistryError
    from modelmedic.registry import Registry

    path = getattr(args, "path", None) or args.registry or os.environ.get(ENV_REGISTRY)
    if not path:
        raise NotARegistryError(f"no registry given: pass --registry PATH or set {ENV_REGISTRY}")
    return Registry.init(path) if args.command == "init" else Registry(path)


def _load_document(value: str) -> Any:
    """A schema or report given inline (JSON) or as a path to a JSON or YAML file."""
    from modelmedic.errors import RegistryValidationError

    text = value if value.lstrip().startswith(("{", "[")) else _read_file(value)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RegistryValidationError(f"{value}: not JSON or YAML ({exc})") from exc


def _read_file(path: str) -> str:
    from modelmedic.errors import RegistryValidationError

    try:
        return Path(path).read_text()
    except OSError as exc:
        raise RegistryValidationError(f"cannot read {path}: {exc.strerror}; give an existing file "
                                      "(or inline JSON for schemas and reports)") from exc


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _jsonable(result: Any) -> Any:
    """Dataclasses to plain data; shallower and much faster than ``dataclasses.asdict`` (no deep copies)."""
    from dataclasses import fields, is_dataclass

    if is_dataclass(result):
        return {f.name: _jsonable(getattr(result, f.name)) for f in fields(result)}
    if isinstance(result, (list, tuple)):
        return [_jsonable(r) for r in result]
    return result


# ---------------------------------------------------------------- handlers: (args, registry) -> result


def _init(args: argparse.Namespace, reg: Registry) -> str:
    return f"registry ready at {reg.path}"


def _register(args: argparse.Namespace, reg: Registry) -> ModelSpec:
    return reg.register_model(
        args.model, description=args.description, owners=args.owner, languages=args.language or (),
        runtime=args.runtime, update=args.update,
        interface={"input": _load_document(args.input_schema), "output": _load_document(args.output_schema)},
        gates=_load_document(args.gates) if args.gates else None,
    )


def _add_version(args: argparse.Namespace, reg: Registry) -> VersionInfo:
    from modelmedic.errors import RegistryValidationError

    notes = _read_file(args.notes_file) if args.notes_file else args.notes
    if (args.input_schema is None) != (args.output_schema is None):
        raise RegistryValidationError("give both --input-schema and --output-schema (a version's interface is the "
                                      "two), or neither to keep the model's")
    interface = ({"input": _load_document(args.input_schema), "output": _load_document(args.output_schema)}
                 if args.input_schema else None)
    return reg.add_version(args.model, args.version, notes, args.artifact, args.digest, image=args.image,
                           irreversible=args.irreversible, description=args.description, interface=interface)


def _show(args: argparse.Namespace, reg: Registry) -> ModelView | VersionView:
    return reg.show(args.model) if args.version is None else reg.show_version(args.model, args.version)


def _irreversible(args: argparse.Namespace, reg: Registry) -> VersionInfo:
    return reg.mark_irreversible(args.model, args.version, args.reason)


def _promote(args: argparse.Namespace, reg: Registry) -> Assignment:
    return reg.promote(args.model, args.version, args.stage, force=args.force, reason=args.reason)


def _attach(args: argparse.Namespace, reg: Registry) -> CertifiedBaseline:
    return reg.attach_certification(args.model, args.version, _load_document(args.report))


def _diff(args: argparse.Namespace, reg: Registry) -> list[StatDelta]:
    return reg.diff_stats(args.model, args.a, args.b)


# ---------------------------------------------------------------- human-readable output


def _text(result: Any) -> str:
    from modelmedic.registry import (
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

    if isinstance(result, str):
        return result
    if isinstance(result, ModelView):
        return _text_view(result)
    if isinstance(result, VersionView):
        return _text_version(result)
    if isinstance(result, ModelSpec):
        return f"model {result.name} registered (owners: {', '.join(result.owners)})"
    if isinstance(result, VersionInfo):
        return (f"{result.model}@{result.version}: {result.artifact_uri} ({result.digest})"
                + (f", image {result.image}" if result.image else "")
                + (f"; irreversible: {result.irreversible}" if result.irreversible else ""))
    if isinstance(result, Assignment):
        return f"{result.model}@{result.version} is now {result.stage} (tag {result.tag})"
    if isinstance(result, CertifiedBaseline):
        return (f"certification attached: p50 {result.latency_p50_ms} ms, p95 {result.latency_p95_ms} ms, "
                f"p99 {result.latency_p99_ms} ms, {result.throughput_rps} rps, error rate {result.error_rate}")
    if isinstance(result, StableVersions):
        return (f"{result.model}: stable {result.stable or '-'}, previous stable {result.previous_stable or '-'}, "
                f"canary {result.canary or '-'}")
    if not result:
        return "(none)"
    if isinstance(result[0], ModelSummary):
        rows = [(s.name, str(s.versions), s.latest or "-", s.stable or "-") for s in result]
        return _table(("MODEL", "VERSIONS", "LATEST", "STABLE"), rows)
    if isinstance(result[0], HistoryEvent):
        rows = [(_when(e.created_at), e.tag, e.version or "?", e.author, e.message.splitlines()[0] if e.message else "")
                for e in result]
        return _table(("WHEN (UTC)", "TAG", "VERSION", "BY", "MESSAGE"), rows)
    if isinstance(result[0], StatDelta):
        rows = [(d.metric, _num(d.a), _num(d.b), _num(d.change),
                 "-" if d.relative is None else f"{d.relative:+.1%}") for d in result]
        return _table(("METRIC", "A", "B", "B-A", "CHANGE"), rows)
    raise TypeError(f"no text form for {type(result[0]).__name__}")


def _text_view(view: ModelView) -> str:
    spec = view.spec
    lines = [
        f"{spec.name}: {spec.description}",
        f"owners:    {', '.join(spec.owners)}",
        f"languages: {', '.join(spec.languages) or '-'}    runtime: {spec.runtime or '-'}",
        f"stable:    {view.stable or '-'}    previous stable: {view.previous_stable or '-'}    "
        f"canary: {view.canary or '-'}",
        f"input:     {json.dumps(spec.interface['input'])}",
        f"output:    {json.dumps(spec.interface['output'])}",
        "",
    ]
    rows = [(v.version, (v.stage or "registered") + (" (irreversible)" if v.irreversible else ""), _when(v.created_at),
             v.digest[:19], v.artifact_uri, "own" if v.interface else "model's",
             v.notes.splitlines()[0] if v.notes else "") for v in view.versions]
    return ("\n".join(lines)
            + _table(("VERSION", "STAGE", "CREATED", "DIGEST", "ARTIFACT", "INTERFACE", "NOTES"), rows)
            + f"\n\nrelease notes and interface of one version: modelmedic registry show {spec.name} VERSION")


def _text_version(view: VersionView) -> str:
    v = view.info
    return "\n".join([
        f"{v.model}@{v.version}: {view.description}",
        f"stage:     {v.stage or 'registered'}" + (f"    irreversible: {v.irreversible}" if v.irreversible else ""),
        f"created:   {_when(v.created_at)} UTC    commit {v.commit[:12]}",
        f"artifact:  {v.artifact_uri} ({v.digest})",
        f"image:     {v.image or '- (the Deployment keeps its image)'}",
        "interface: " + ("the model's" if view.inherited else "its own"),
        f"  input:   {json.dumps(view.interface['input'])}",
        f"  output:  {json.dumps(view.interface['output'])}",
        "",
        "release notes:",
        *(f"  {line}" for line in v.notes.splitlines()),
    ])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def _handler(fn: Callable[[argparse.Namespace, Registry], Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        result = fn(args, _open(args))
        if args.json:
            # One compact line: json's C encoder only runs without indent, and scripts pipe it to jq anyway.
            print(json.dumps(_jsonable(result)))
        else:
            print(_text(result))
        return 0

    return run


# ---------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="PATH", help=f"registry git repository (default: ${ENV_REGISTRY})")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    registry = subparsers.add_parser(
        "registry", help="the source-controlled model registry: versions, stages, stats",
        description="Register models and versions, promote them through candidate -> certified -> canary -> "
        "stable -> retired, and read their history and stats. Stored in git with GTO-compatible tags.",
    )
    # An explicit prog spares argparse formatting a usage line on every start.
    sub = registry.add_subparsers(title="registry commands", metavar="COMMAND", required=True, dest="command",
                                  prog="modelmedic registry")

    def add(name: str, fn: Callable[[argparse.Namespace, Registry], Any], help_: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help_, description=help_)
        parser.set_defaults(func=_handler(fn))
        return parser

    def model_arg(parser: argparse.ArgumentParser, *, version: bool = False) -> None:
        parser.add_argument("model", help="model name (lowercase letters, digits, '-')")
        if version:
            parser.add_argument("version", help="semantic version, e.g. 1.4.0 or v1.4.0")

    init = add("init", _init, "create (or adopt) a git repository as a registry")
    init.add_argument("path", nargs="?", help="where (default: --registry or $MODELMEDIC_REGISTRY)")

    register = add("register", _register, "register a model: description, owners, interface, runtime")
    model_arg(register)
    register.add_argument("--description", required=True)
    register.add_argument("--owner", action="append", required=True, help="team or person (repeat)")
    register.add_argument("--input-schema", required=True, help="JSON Schema of the input: inline JSON or a file")
    register.add_argument("--output-schema", required=True, help="JSON Schema of the output: inline JSON or a file")
    register.add_argument("--language", action="append", help="client language, e.g. python (repeat)")
    register.add_argument("--runtime", default="", help="serving runtime, e.g. 'onnxruntime 1.17'")
    register.add_argument("--update", action="store_true", help="change an already registered model")
    register.add_argument("--gates", help="the model's release gates (inline JSON or a file): max_p99_ms, "
                          "max_error_rate, min_throughput_rps, min_quality, max_quality, require_live_test")

    add_version = add("add-version", _add_version, "register a version: artifact URI, digest, release notes")
    model_arg(add_version, version=True)
    add_version.add_argument("--artifact", required=True, help="artifact URI, e.g. s3://models/fraud/1.4.0/")
    add_version.add_argument("--digest", required=True, help="sha256:<64 hex> of the artifact")
    add_version.add_argument("--image", help="the container image by digest (repository@sha256:<64 hex>); "
                             "deploy and rollback set it with the artifact")
    add_version.add_argument("--irreversible", metavar="REASON",
                             help="never roll this version back automatically, and why (e.g. it migrates a schema)")
    add_version.add_argument("--description", help="what this version is, when it says more than the model's")
    add_version.add_argument("--input-schema", help="this version's input JSON Schema (inline JSON or a file), "
                             "with --output-schema; default: the model's. A break needs a new major version")
    add_version.add_argument("--output-schema", help="this version's output JSON Schema, with --input-schema")
    notes = add_version.add_mutually_exclusive_group(required=True)
    notes.add_argument("--notes", help="release notes")
    notes.add_argument("--notes-file", help="file holding the release notes")

    irreversible = add("irreversible", _irreversible,
                       "mark a version as never to be rolled back automatically (a person is paged instead)")
    model_arg(irreversible, version=True)
    irreversible.add_argument("--reason", required=True, help="why it cannot be rolled back, e.g. 'migrates schema v5'")

    promote = add("promote", _promote, "assign a stage (GTO tag <model>#<stage>#<n>)")
    model_arg(promote, version=True)
    promote.add_argument("stage", help="candidate, certified, canary, stable or retired")
    promote.add_argument("--force", action="store_true", help="override lifecycle guards (recorded in the tag)")
    promote.add_argument("--reason", default="", help="why; recorded in the tag message")

    attach = add("attach-certification", _attach, "store a version's certification report (JSON/YAML)")
    model_arg(attach, version=True)
    attach.add_argument("report", help="report file or inline JSON: latency_p50_ms, latency_p95_ms, "
                        "latency_p99_ms, throughput_rps, error_rate, quality")

    show = add("show", _show, "a model, its versions and stages; or one version: its release notes and interface")
    model_arg(show)
    show.add_argument("version", nargs="?", help="one version: its full release notes, description and interface")
    listing = add("list", lambda args, reg: reg.list_models(refresh=args.refresh),
                  "every model with its latest and stable version")
    listing.add_argument("--refresh", action="store_true", help="rebuild the summary cache from the tags")
    model_arg(add("history", lambda args, reg: reg.history(args.model), "registrations and stage changes"))
    model_arg(add("stable", lambda args, reg: reg.stable_versions(args.model),
                  "the stable version, the previous one (rollback target) and the canary"))

    diff = add("diff-stats", _diff, "compare the usage/performance stats of two versions")
    model_arg(diff)
    diff.add_argument("a", help="baseline version")
    diff.add_argument("b", help="compared version")

"""``modelmedic silence`` and ``modelmedic maintenance``: planned quiet, set up before the work.

``silence add`` holds back pages; ``maintenance add`` holds back pages and automatic
remediation (``--remediation-only``: pauses remediation, pages still go). Both match
incidents by ``--model`` (shell globs, repeatable), ``--version`` and ``--class``, from
``--start`` (default now) to ``--end`` or for ``--duration``. They are written straight to
Kafka (the settings of ``--config``: the service's own file), so every replica sees them,
before or after a restart, and each is audited under ``--operator``.

    modelmedic maintenance add --model 'payments-*' --start 2026-01-10T02:00Z --duration 2h \\
        --comment 'DB migration' -c config.yaml
    modelmedic silence list -c config.yaml
    modelmedic silence rm mw-3f2a1c9b -c config.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from modelmedic.errors import ModelmedicError

if TYPE_CHECKING:
    from modelmedic.config import Settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class NotFound(ModelmedicError):
    """What the command names does not exist."""

    exit_code = 3


def duration_s(text: str) -> float:
    """``90m``, ``2h``, ``1d``, ``45s`` -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write 45s, 90m, 2h or 1d")
    return float(match[1]) * _UNITS[match[2]]


def when_ms(text: str) -> int:
    """``now``, ``+30m`` (from now), or an ISO 8601 time (UTC unless it says otherwise) -> epoch ms."""
    text = text.strip()
    if text == "now":
        return int(time.time() * 1000)
    if text.startswith("+"):
        return int((time.time() + duration_s(text[1:])) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: write now, +30m or 2026-01-10T02:00Z") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def _utc(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch_ms / 1000))


def _settings(args: argparse.Namespace) -> Settings:
    from modelmedic.config import load_settings

    return load_settings(args.config)


def _add(kind: str):
    def run(args: argparse.Namespace) -> int:
        from modelmedic.response.silences import add, new_silence

        kind_now = "pause" if getattr(args, "remediation_only", False) else kind
        start = args.start
        end = args.end if args.end is not None else start + int(args.duration * 1000)
        silence = new_silence(kind_now, args.model, start, end, args.operator, versions=args.version,
                              classes=args.anomaly_class, comment=args.comment)
        asyncio.run(add(_settings(args).kafka, silence))
        if args.json:
            import msgspec

            print(json.dumps(msgspec.to_builtins(silence)))
        else:
            print(f"{silence.id}: {silence.describe()} from {_utc(start)} UTC")
        return 0
    return run


def _list(args: argparse.Namespace) -> int:
    import msgspec

    from modelmedic.response.silences import read_all

    book = asyncio.run(read_all(_settings(args).kafka))
    now = int(time.time() * 1000)
    shown = sorted(book.by_id.values(), key=lambda s: s.starts_ms) if args.all else book.current(now)
    if args.json:
        print(json.dumps([msgspec.to_builtins(s) for s in shown]))
        return 0
    if not shown:
        print("no silences, maintenance windows or pauses" + ("" if args.all else " active or scheduled"))
        return 0
    print(f"{'ID':<12} {'KIND':<11} {'STATE':<9} {'MODELS':<24} {'VERSION':<8} {'CLASS':<10} "
          f"{'FROM (UTC)':<16} {'TO (UTC)':<16} {'BY':<12} COMMENT")
    for s in shown:
        state = "over" if s.ends_ms <= now else "active" if s.starts_ms <= now else "scheduled"
        print(f"{s.id:<12} {s.kind:<11} {state:<9} {','.join(s.models):<24} {','.join(s.versions or ['*']):<8} "
              f"{','.join(s.classes or ['*']):<10} {_utc(s.starts_ms):<16} {_utc(s.ends_ms):<16} "
              f"{s.created_by:<12} {s.comment}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    from modelmedic.response.silences import read_all, remove

    settings = _settings(args)
    silence = asyncio.run(read_all(settings.kafka)).by_id.get(args.id)
    if silence is None:
        raise NotFound(f"no silence, maintenance window or pause {args.id!r}: list them with `modelmedic silence list`")
    asyncio.run(remove(settings.kafka, silence, args.operator))
    print(json.dumps({"removed": silence.id}) if args.json else f"removed {silence.describe()}")
    return 0


def _group(subparsers: argparse._SubParsersAction, kind: str, text: str) -> None:
    group = subparsers.add_parser(kind, help=text, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--operator", default=os.environ.get("USER", "operator"), help="who you are, for the audit")
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="create one (it can start later: --start)")
    add.add_argument("--model", action="append", required=True, help="model name glob (repeatable; '*' for all)")
    add.add_argument("--version", action="append", help="only these versions (repeatable)")
    add.add_argument("--class", dest="anomaly_class", action="append",
                     choices=["latency", "throughput", "errors", "prediction", "drift"], help="only these classes")
    add.add_argument("--start", type=when_ms, default=when_ms("now"), help="now (default), +30m or 2026-01-10T02:00Z")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--end", type=when_ms, help="+2h or an ISO time")
    end.add_argument("--duration", type=duration_s, help="90m, 2h, 1d (from --start)")
    add.add_argument("--comment", default="", help="why (shown in the list, the audit and the UI)")
    if kind == "maintenance":
        add.add_argument("--remediation-only", action="store_true",
                         help="pause automatic remediation only; pages still go (someone acts by hand)")
    add.set_defaults(func=_add(kind))
    listing = actions.add_parser("list", parents=[common], help="active and scheduled ones (every kind)")
    listing.add_argument("--all", action="store_true", help="those over too")
    listing.set_defaults(func=_list)
    rm = actions.add_parser("rm", parents=[common], help="remove one now (by id, any kind)")
    rm.add_argument("id")
    rm.set_defaults(func=_rm)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    _group(subparsers, "silence", "hold back pages for matching incidents (model glob, version, class)")
    _group(subparsers, "maintenance", "maintenance windows: hold back pages and automatic remediation")

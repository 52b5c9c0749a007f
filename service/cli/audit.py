"""``modelmedic audit``: why it rolled back, why it did not page, who acked: the audit topic, queried.

Every decision of the response plane (opened, paged or page-silenced and why, playbook-start
and -end with the outcome, verification-failed, escalated and why, acknowledged and by whom,
resolved and how) and every silence made or removed is a record of ``kafka.topics.audit``.
This reads that topic from Kafka with the service's settings (``-c``), bounded: from
``--since`` (found by timestamp) to the end offsets taken when it starts, never waiting for
more, and prints the records that match, oldest first::

    modelmedic audit -c config.yaml --incident 3f2a1c9b0d1e2f3a4b5c      # one incident's story
    modelmedic audit -c config.yaml --model 'fraud-*' --since=-24h --action acknowledged
    modelmedic audit -c config.yaml --since 2026-01-10T02:00Z --until 2026-01-10T04:00Z --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from modelmedic.cli.silence import duration_s, when_ms

if TYPE_CHECKING:
    from modelmedic.audit import AuditFilter
    from modelmedic.config import KafkaSettings


def since_ms(text: str) -> int:
    """``-24h`` (before now) or what :func:`~modelmedic.cli.silence.when_ms` takes."""
    return int((time.time() - duration_s(text[1:])) * 1000) if text.startswith("-") else when_ms(text)


async def read_audit(settings: KafkaSettings, start_ms: int | None, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The audit records written at or after ``start_ms`` (all: None) up to the topic's end now, oldest first."""
    import msgspec
    from aiokafka import TopicPartition

    from modelmedic.errors import KafkaUnavailable
    from modelmedic.kafka import consumer, topic_partitions

    c = consumer(settings, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        tps: list[TopicPartition] = await topic_partitions(c, settings.topics.audit)
        if not tps:
            return []
        c.assign(tps)
        ends = await c.end_offsets(tps)
        starts = await c.offsets_for_times({tp: start_ms for tp in tps}) if start_ms else {}
        for tp in tps:
            found = starts.get(tp)
            if found is None and start_ms:
                c.seek(tp, ends[tp])  # nothing that recent on it
            elif found is not None:
                c.seek(tp, found.offset)
            else:
                await c.seek_to_beginning(tp)
        records: list[dict[str, Any]] = []
        remaining = {tp for tp in tps if await c.position(tp) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"timed out reading {settings.topics.audit} to its end: is the broker up?")
            for tp, batch in (await c.getmany(*remaining, timeout_ms=200)).items():
                records += [msgspec.json.decode(r.value) for r in batch if r.offset < ends[tp]]
            remaining = {tp for tp in remaining if await c.position(tp) < ends[tp]}
        return sorted(records, key=lambda r: r.get("ts", 0))
    finally:
        await c.stop()


def audit_filter(args: argparse.Namespace) -> AuditFilter:
    """The command's filters, as the API's (``--model`` a glob; a silence's own globs count)."""
    from modelmedic.audit import ACTIONS, AuditFilter
    from modelmedic.errors import ConfigError

    unknown = sorted(set(args.action or ()) - set(ACTIONS))
    if unknown:
        raise ConfigError(f"--action {unknown[0]}: no such action; the actions are {', '.join(ACTIONS)}")
    return AuditFilter(incident=args.incident, model=args.model, actions=frozenset(args.action or ()),
                       since_ms=args.since, until_ms=args.until)


def _why(details: dict[str, Any]) -> str:
    """The reason and evidence of one record, on one line."""
    return "; ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, dict | list) else v}"
                     for k, v in details.items() if v not in (None, "", [], {}))


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from modelmedic.audit import Head
    from modelmedic.config import load_settings

    which = audit_filter(args)
    records = [r for r in asyncio.run(read_audit(load_settings(args.config).kafka, args.since))
               if which.matches(msgspec.convert(r, Head))]
    if args.json:
        print(json.dumps(records))
        return 0
    if not records:
        print("no audit records match")
        return 0
    print(f"{'TIME (UTC)':<19} {'ACTOR':<14} {'ACTION':<20} {'INCIDENT':<20} {'MODEL':<16} WHY")
    for r in records:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.get("ts", 0) / 1000))
        print(f"{at:<19} {r.get('actor', ''):<14} {r.get('action', ''):<20} {r.get('incident_id') or '-':<20} "
              f"{r.get('model', ''):<16} {_why(r.get('details') or {})}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="what the response plane decided and why, and who acted",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    audit.add_argument("--incident", help="one incident's records")
    audit.add_argument("--model", help="a model name or glob")
    audit.add_argument("--action", action="append",
                       help="only these actions (repeatable): opened, paged, page-silenced, playbook-start, "
                            "playbook-end, escalated, acknowledged, resolved, guard-rail, storm-member...")
    audit.add_argument("--since", type=since_ms, help="--since=-24h (before now; with the =), now or an ISO time (default: the whole topic)")
    audit.add_argument("--until", type=since_ms, help="the same forms")
    audit.set_defaults(func=_run)

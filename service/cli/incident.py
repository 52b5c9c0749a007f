"""``modelmedic incident``: list, acknowledge, resolve, silence and run a playbook by hand.

A thin client of the service's operator API (``/api/v1/incidents``, docs/api.md), so on-call
works the same whether the service runs next door or in a cluster behind a port-forward.
The token is your own (``modelmedic operator token``; the service's audit names you for what
you do with it); pass it with ``--token`` or ``MODELMEDIC_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
from urllib.parse import urlencode

from modelmedic.errors import ModelmedicError

STATES = ["open", "remediating", "verifying", "escalated", "acknowledged", "resolved"]


class ApiError(ModelmedicError):
    """The service refused the request (or it was malformed); the message says why."""

    exit_code = 3


class ApiUnreachable(ApiError):
    """The service could not be reached at ``--url``."""

    exit_code = 4


def _call(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        response = httpx.request(method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise ApiUnreachable(f"cannot reach modelmedic at {args.url} ({exc}): check --url (MODELMEDIC_URL)") from None
    if response.status_code >= 400:
        try:
            reason = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            reason = response.text.strip()
        hint = " (give your token with --token or MODELMEDIC_API_TOKEN)" if response.status_code == 401 else ""
        raise ApiError(f"{method} {path} answered {response.status_code}: {reason}{hint}")
    return response.json()


def _line(i: dict) -> str:
    level = f"L{i['escalation_level']}" if i["escalation_level"] else ""
    return f"{i['id']}  {i['state']:<12} {level:<3} {i['anomaly_class']:<10} {i['series']:<40} {i['summary'][:80]}"


def _list(args: argparse.Namespace) -> int:
    """Every page up to ``--limit`` incidents, newest first."""
    query = {k: v for k, v in (("state", args.state), ("model", args.model), ("class", args.anomaly_class)) if v}
    items: list[dict] = []
    cursor = None
    while len(items) < args.limit:
        page = _call(args, "GET", "/api/v1/incidents?" + urlencode(
            {**query, "limit": min(500, args.limit - len(items)), **({"cursor": cursor} if cursor else {})}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    if args.json:
        print(json.dumps(items))
    else:
        for i in items:
            print(_line(i))
    return 0


def _action(name: str):
    def run(args: argparse.Namespace) -> int:
        body: dict = {}
        if name == "silence":
            body = {"minutes": args.minutes}
        elif name == "run":
            try:
                body = {"playbook": args.playbook, "params": json.loads(args.params)}
            except ValueError as exc:
                raise ApiError(f"--params is not JSON ({exc}): e.g. --params '{{\"step\": 2}}'") from None
        result = _call(args, "POST", f"/api/v1/incidents/{args.id}/{name}", body)
        if args.json:
            print(json.dumps(result))
        elif name == "run":
            print(f"{args.playbook}: {result['outcome']['status']}: {result['outcome']['message']}")
        else:
            print(_line(result))
        return 0
    return run


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    incident = subparsers.add_parser(
        "incident", help="list and act on incidents through the running service's operator API",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    incident.add_argument("--url", default=os.environ.get("MODELMEDIC_URL", "http://127.0.0.1:8080"),
                          help="the service's HTTP address (MODELMEDIC_URL)")
    incident.add_argument("--token", default=os.environ.get("MODELMEDIC_API_TOKEN"),
                          help="your operator token (MODELMEDIC_API_TOKEN)")
    incident.add_argument("--timeout", type=float, default=30.0)
    actions = incident.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="incidents, newest first")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--model")
    listing.add_argument("--class", dest="anomaly_class", choices=["latency", "throughput", "errors", "prediction", "drift"])
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.set_defaults(func=_list)
    for name, text in (("ack", "acknowledge: stops timed escalation"), ("resolve", "resolve by hand (sends the resolve page)")):
        p = actions.add_parser(name, help=text)
        p.add_argument("id")
        p.set_defaults(func=_action(name))
    silence = actions.add_parser("silence", help="no pages for this incident for a while")
    silence.add_argument("id")
    silence.add_argument("--minutes", type=float, default=60.0)
    silence.set_defaults(func=_action("silence"))
    run = actions.add_parser("run", help="run a playbook on the incident's model now (guard rails apply)")
    run.add_argument("id")
    run.add_argument("playbook", help="e.g. scale-out, rollback, restart")
    run.add_argument("--params", default="{}", help='JSON params, e.g. \'{"step": 2}\'')
    run.set_defaults(func=_action("run"))

"""``modelmedic incident``: list, acknowledge, resolve, silence and run a playbook by hand.

A thin client of the service's operator API (``/api/incidents``), so on-call works the
same whether the service runs next door or in a cluster behind a port-forward. The token
is the service's ``http.api_token``; pass it with ``--token`` or ``MODELMEDIC_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os

from modelmedic.errors import ModelmedicError


class ApiError(ModelmedicError):
    """The service refused or could not be reached; the message says which and why."""


def _call(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> object:
    import httpx

    headers = {"X-Operator": args.operator}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        response = httpx.request(method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach modelmedic at {args.url} ({exc}): check --url (MODELMEDIC_URL)") from None
    if response.status_code >= 400:
        raise ApiError(f"{method} {path} answered {response.status_code}: {response.text.strip()}")
    return response.json()


def _print(result: object, as_json: bool) -> None:
    if as_json or not isinstance(result, list):
        print(json.dumps(result, indent=None if as_json else 2))
        return
    for i in result:
        print(f"{i['id']}  {i['state']:<12} {i['anomaly_class']:<10} {i['series']:<40} {i['summary'][:80]}")


def _list(args: argparse.Namespace) -> int:
    query = f"?state={args.state}" if args.state else ""
    _print(_call(args, "GET", f"/api/incidents{query}"), args.json)
    return 0


def _action(name: str):
    def run(args: argparse.Namespace) -> int:
        body: dict = {}
        if name == "silence":
            body = {"minutes": args.minutes}
        elif name == "run":
            body = {"playbook": args.playbook, "params": json.loads(args.params)}
        _print(_call(args, "POST", f"/api/incidents/{args.id}/{name}", body), args.json)
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
                          help="the service's http.api_token (MODELMEDIC_API_TOKEN)")
    incident.add_argument("--operator", default=os.environ.get("USER", "operator"), help="who you are, for the audit trail")
    incident.add_argument("--timeout", type=float, default=30.0)
    incident.add_argument("--json", action="store_true", help="machine-readable output")
    actions = incident.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="incidents, newest first")
    listing.add_argument("--state", choices=["open", "remediating", "verifying", "escalated", "acknowledged", "resolved"])
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



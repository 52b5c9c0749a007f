"""``modelmedic policy check FILE``: validate a remediation policy before deploying it.

The policy checks the service runs at start (:func:`~modelmedic.response.policy.load_policy`,
then :meth:`~modelmedic.response.policy.Policy.validate_playbooks` against the installed
playbooks), so a typo fails here rather than at start; a bad file exits 3 with the field to fix.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def summary(path: str) -> dict[str, Any]:
    """Load and validate ``path``; what it routes: its rules and the playbooks it names (defaults excluded)."""
    from modelmedic.cli.playbooks import loaded_registry
    from modelmedic.response.policy import load_policy

    policy = load_policy(path)
    policy.validate_playbooks(loaded_registry())
    used = sorted({ref.name for rule in policy.rules for ref in rule.playbooks})
    return {"file": path, "ok": True, "rules": len(policy.rules), "playbooks": used}


def _check(args: argparse.Namespace) -> int:
    from modelmedic.errors import PolicyError

    try:
        result = summary(args.file)
    except PolicyError as error:
        if not args.json:
            raise
        print(json.dumps({"file": args.file, "ok": False, "error": str(error)}, indent=2))
        return error.exit_code
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"OK {args.file}: {result['rules']} rules, playbooks used: {', '.join(result['playbooks']) or 'none'}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("policy", help="remediation policy files")
    actions = parser.add_subparsers(metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a policy file as the service would at start")
    check.add_argument("file", help="the policy YAML file")
    check.set_defaults(func=_check)

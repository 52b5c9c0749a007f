"""``modelmedic operator``: make an operator's token for the status UI and the operator API.

``modelmedic operator token alice --role operate`` prints a new random token (give it to
alice; it is shown once and stored nowhere) and the entry to add to the service's
``http.operators``, which holds only the token's SHA-256. Rotating a token is making a new
one and replacing the entry; revoking it is deleting the entry.
"""

from __future__ import annotations

import argparse
import json
import secrets

from modelmedic.config import OperatorSettings, token_sha256

TOKEN_BYTES = 32
"""256 bits of randomness: a hash of it cannot be reversed by guessing (docs/api.md)."""


def _token(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    entry = OperatorSettings(name=args.name, role=args.role, token_sha256=token_sha256(token))
    if args.json:
        print(json.dumps({"token": token, "operator": entry.model_dump()}))
        return 0
    print(f"token for {entry.name} (shown once; give it to them, it is stored nowhere):\n  {token}\n")
    print("add to the service's settings (YAML):\n  http:\n    operators:")
    print(f"      - {{name: {entry.name}, role: {entry.role}, token_sha256: {entry.token_sha256}}}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    operator = subparsers.add_parser("operator", help="make tokens for the people who use the status UI and the API",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = operator.add_subparsers(title="actions", metavar="ACTION", required=True)
    token = actions.add_parser("token", help="a new token and its http.operators entry")
    token.add_argument("name", help="who gets it: the audit names them for what they do with it")
    token.add_argument("--role", choices=["read", "operate"], default="read",
                       help="read: the UI and GET endpoints; operate: also ack, resolve, silence, run (default: read)")
    token.set_defaults(func=_token)

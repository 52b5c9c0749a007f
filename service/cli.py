"""``modelmedic`` command line: one entry point, one sub-command per task.

Each command module exposes ``add_commands(subparsers)`` and sets ``func`` on its
parsers; heavy imports happen inside the handlers so ``--help`` and quick commands
stay fast. To add a command, write such a module and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from modelmedic.errors import ModelmedicError

COMMAND_MODULES = [
    "modelmedic.commands",
    "modelmedic.registry_commands",
    "modelmedic.incident_commands",
    "modelmedic.release_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmedic",
        description="Watch every ML model in production, alert at once, and fix what can be fixed.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModelmedicError as exc:
        print(f"modelmedic: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

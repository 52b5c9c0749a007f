"""``modelmedic`` command line: one entry point, one sub-command group per module.

Every module in this package (``run``, ``registry``, ``release``, ``incident``, ...) exposes
``add_commands(subparsers)`` and sets ``func`` on its parsers; they are discovered by
walking the package, so adding a command group is adding a module. Heavy imports happen
inside the handlers so ``--help`` and quick commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from modelmedic.errors import ModelmedicError


def command_modules() -> list[str]:
    """The command-group modules of this package, in name order (stable ``--help``)."""
    return sorted(f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmedic",
        description="Watch every ML model in production, alert at once, and fix what can be fixed.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in command_modules():
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

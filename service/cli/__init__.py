"""``modelmedic`` command line: one entry point, one sub-command group per module.

Every module in this package (``run``, ``registry``, ``release``, ``incident``, ...) exposes
``add_commands(subparsers)`` and sets ``func`` on its parsers; they are discovered by
walking the package, so adding a command group is adding a module. Heavy imports happen
inside the handlers so ``--help`` and quick commands stay fast.

Exit codes, so scripts can tell "fix your command" from "try again later":

===  ==========================================================================
0    ok
1    any other error
2    usage: the command line does not parse (argparse)
3    refused or not found: invalid input or policy, unknown model, version,
     playbook or object, not allowed, not owned here (``exit_code = 3`` errors)
4    unreachable: Kafka, the Kubernetes API server or an HTTP endpoint is not
     answering (``exit_code = 4`` errors)
130  interrupted (Ctrl-C)
141  stdout closed early (``modelmedic ... | head -1``): no traceback
===  ==========================================================================

Codes 1, 3 and 4 come from the ``exit_code`` attribute of the
:class:`~modelmedic.errors.ModelmedicError` that ended the command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import pkgutil
import sys

from modelmedic.errors import ModelmedicError

EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a C tool killed by a closed pipe exits with."""
EXIT_INTERRUPTED = 130


def command_modules() -> list[str]:
    """The command-group modules of this package, in name order (stable ``--help``)."""
    return sorted(f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmedic",
        description="Watch every ML model in production, alert at once, and fix what can be fixed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('modelmedic')}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(name).add_commands(subparsers)
    return parser


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's flush at exit does not raise again
    (the recipe of the Python docs, "Note on SIGPIPE" in the signal module)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ModelmedicError as exc:
        print(f"modelmedic: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""``modelmedic`` command line: one entry point, one sub-command group per module.

Every module in this package (``run``, ``registry``, ``release``, ``incident``, ...) exposes
``add_commands(subparsers)`` and sets ``func`` on its parsers; they are discovered by
walking the package, so adding a command group is adding a module. Heavy imports happen
inside the handlers so ``--help`` and quick commands stay fast.

Global options, accepted before or after the command (``modelmedic --json silence list`` and
``modelmedic silence list --json`` are one command), defined once here for every parser:

- ``--config`` / ``-c FILE``: the service's YAML settings, for the commands that read them
  (``run``, ``replay``, ``audit``, ``silence``, ``maintenance``, ``release``);
- ``--json``: machine-readable output (JSON; ``run`` logs JSON lines, ``replay`` writes JSON lines;
  an error is one ``{"error": {"type", "message", "exit_code"}}`` object on stderr);
- ``-v`` (``-vv``): log more on stderr, INFO (DEBUG); ``run``: DEBUG instead of ``log_level``.

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
import json
import os
import pkgutil
import sys
from collections.abc import Iterator

from modelmedic.errors import ModelmedicError

EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a C tool killed by a closed pipe exits with."""
EXIT_INTERRUPTED = 130


def command_modules() -> list[str]:
    """The command-group modules of this package, in name order (stable ``--help``)."""
    return sorted(f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict]] = [
    (("--config", "-c"), {"dest": "config", "default": None, "metavar": "FILE",
                          "help": "the service's YAML settings file (its Kafka, topics, sinks...)"}),
    (("--json",), {"dest": "json", "action": "store_true", "default": False, "help": "machine-readable output"}),
    (("-v", "--verbose"), {"dest": "verbose", "action": "count", "default": 0,
                           "help": "log more on stderr (-v INFO, -vv DEBUG)"}),
]
"""(option strings, add_argument keywords) of the options every command takes."""


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser below it (each command group and action)."""
    yield parser
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no tree walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in {id(p): p for p in action.choices.values()}.values():
                yield from _parsers(sub)


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The global options on the top parser (with their defaults) and on every parser below it with
    no default: argparse copies a sub-parser's defaults over what the top parser parsed, so only an
    option given after the command may set it there. A command that declares one itself (its own
    help text) keeps its declaration, its default dropped the same way."""
    for option_strings, keywords in GLOBAL_OPTIONS:
        parser.add_argument(*option_strings, **keywords)
    for sub in list(_parsers(parser))[1:]:
        for option_strings, keywords in GLOBAL_OPTIONS:
            own = sub._option_string_actions.get(option_strings[0])  # noqa: SLF001
            if own is not None:
                own.default = argparse.SUPPRESS
            else:
                strings = [s for s in option_strings if s not in sub._option_string_actions]  # noqa: SLF001
                sub.add_argument(*strings, **{**keywords, "default": argparse.SUPPRESS})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmedic",
        description="Watch every ML model in production, alert at once, and fix what can be fixed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('modelmedic')}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(name).add_commands(subparsers)
    add_global_options(parser)
    return parser


def log_level(args: argparse.Namespace) -> str | None:
    """The log level ``-v`` asks for (None: not given)."""
    return {0: None, 1: "INFO"}.get(args.verbose, "DEBUG")


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's flush at exit does not raise again
    (the recipe of the Python docs, "Note on SIGPIPE" in the signal module)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def report_error(exc: ModelmedicError, *, as_json: bool) -> None:
    """Say what went wrong on stderr: one line of text, or under ``--json`` one JSON object, so a
    script that parses the output parses the failure too (type, message, exit code)."""
    if as_json:
        error = {"type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        print(json.dumps({"error": error}), file=sys.stderr)
    else:
        print(f"modelmedic: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (level := log_level(args)) is not None:
        from modelmedic import logs

        logs.setup(level, "json" if args.json else "text")
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ModelmedicError as exc:
        report_error(exc, as_json=args.json)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

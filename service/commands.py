"""Core commands: ``run`` (the service) and ``replay`` (a detector over a CSV, offline)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from modelmedic.config import load_settings
    from modelmedic.service import serve

    settings = load_settings(args.config)
    return asyncio.run(serve(settings))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the service: consume inference events, detect anomalies, alert",
        description="Run the always-on service. Settings come from --config (YAML) and "
        "MODELMEDIC_* environment variables (nested sections joined with __).",
    )
    run.add_argument("--config", "-c", help="YAML settings file (see README: Configuration)")
    run.set_defaults(func=_run)

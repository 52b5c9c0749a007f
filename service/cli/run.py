"""Core commands: ``run`` (the service) and ``replay`` (a detector over a CSV, offline)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from modelmedic.config import load_settings
    from modelmedic.app import serve, tune_gc

    settings = load_settings(args.config)
    tune_gc()
    return asyncio.run(serve(settings))


def _replay(args: argparse.Namespace) -> int:
    from modelmedic.detection import replay  # numpy and scipy: loaded only for this command
    from modelmedic.errors import ModelmedicError

    if args.detector not in replay.DETECTORS:
        raise ModelmedicError(f"unknown detector {args.detector!r}: choose one of {', '.join(sorted(replay.DETECTORS))}")
    return replay._replay(args)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the service: consume inference events, detect anomalies, alert",
        description="Run the always-on service. Settings come from --config (YAML) and "
        "MODELMEDIC_* environment variables (nested sections joined with __).",
    )
    run.add_argument("--config", "-c", help="YAML settings file (see README: Configuration)")
    run.set_defaults(func=_run)
    replay = subparsers.add_parser(
        "replay",
        help="run a detector over a timestamp,value CSV and print each row's anomaly score",
        description="Replay a series through a detector exactly as the streaming path runs it "
        "(same classes, one slot, each row scored before it is learned) and write CSV "
        "timestamp,value,anomaly_score, one row per input row.",
    )
    replay.add_argument("file", help="CSV file with a header timestamp,value")
    replay.add_argument("--detector", "-d", default="default",
                        help="detector: default, ewma, robust, robust-diff, cusum, seasonal (default: %(default)s)")
    replay.add_argument("--output", "-o", help="write the CSV here instead of standard output")
    replay.set_defaults(func=_replay)

"""Core commands: ``run`` (the service) and ``replay`` (the same detection, offline, on a file)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from modelmedic.config import load_settings
    from modelmedic.app import serve, tune_gc

    settings = load_settings(args.config)
    # The global --json and -v: JSON log lines, DEBUG (the service prints nothing else).
    update = {"log_format": "json"} if args.json else {}
    if args.verbose:
        update["log_level"] = "DEBUG"
    settings = settings.model_copy(update=update)
    tune_gc()
    return asyncio.run(serve(settings))


def _replay(args: argparse.Namespace) -> int:
    from modelmedic.detection import replay  # numpy and the plane: loaded only for this command

    return replay.command(args)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the service: consume inference events, detect anomalies, alert",
        description="Run the always-on service. Settings come from --config (YAML) and "
        "MODELMEDIC_* environment variables (nested sections joined with __). --json: log JSON lines; "
        "-v: log at DEBUG.",
    )
    run.set_defaults(func=_run)
    replay = subparsers.add_parser(
        "replay",
        help="what the service computes, offline: a metric CSV's scores, or the anomalies of inference events",
        description="FILE.csv (header timestamp,value): write timestamp,value,anomaly_score, one row per "
        "input row, each row scored before it is learned by the per-value bank detection.metric_bank (or "
        "--detector). FILE.jsonl (one inference event a line): run the detection plane on the events, as the "
        "service would read them from Kafka, and write the anomaly records it would publish (same ids), "
        "one JSON a line; the file's end is not an outage (no idle-close anomalies).",
    )
    replay.add_argument("file", help="a CSV with a header timestamp,value, or a .jsonl/.ndjson file of inference events")
    replay.add_argument("--detector", "-d", default=None,
                        help="CSV only: a per-value bank (calibrated, ensemble, ewma, robust, robust-diff, cusum, "
                        "seasonal; default: detection.metric_bank, calibrated)")
    replay.add_argument("--partitions", type=int, default=None,
                        help="JSONL only: partitions of the inference topic replayed (default: kafka.partitions)")
    replay.add_argument("--output", "-o", help="write here instead of standard output")
    replay.set_defaults(func=_replay)

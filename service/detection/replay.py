"""``modelmedic replay``: run a detector over a ``timestamp,value`` CSV exactly as the stream would.

The detector is a :class:`~modelmedic.detectors.SeriesBank` with one slot, driven through
:class:`~modelmedic.detectors.OneSeries`, one row at a time, each row scored before it is
learned: the same classes and the same order as the detection plane, so a replayed
score is the score the service would have produced. ``load/nab.py`` (the NAB benchmark)
runs through :func:`replay_scores` too.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from modelmedic.detectors import (
    CusumBank,
    EwmaBank,
    OneSeries,
    RobustBank,
    SeasonalBank,
    SeriesBank,
    default_bank,
)
from modelmedic.errors import ModelmedicError

DETECTORS: dict[str, Callable[[], SeriesBank]] = {
    "default": default_bank,
    "ewma": EwmaBank,
    "robust": RobustBank,
    "robust-diff": lambda: RobustBank(order=1),
    "cusum": CusumBank,
    "seasonal": SeasonalBank,
}


def epoch_seconds(stamp: str) -> float:
    """Event time of a CSV timestamp: epoch seconds or milliseconds, or ISO 8601 (UTC if naive).

    >>> epoch_seconds("2014-04-01 00:05:00"), epoch_seconds("1396310700"), epoch_seconds("1396310700000")
    (1396310700.0, 1396310700.0, 1396310700.0)
    """
    try:
        number = float(stamp)
    except ValueError:
        parsed = datetime.fromisoformat(stamp.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return number / 1000.0 if number > 1e11 else number


def replay_scores(timestamps: Iterable[str], values: Iterable[float], detector: str = "default") -> np.ndarray:
    """Anomaly score of every row, in order, each row scored before it is learned.

    >>> import numpy as np
    >>> stamps = [f"2024-01-01 00:{m:02d}:00" for m in range(60)]
    >>> values = 10 + np.sin(np.arange(60.0))
    >>> values[50] = 40
    >>> scores = replay_scores(stamps, values, "robust")
    >>> int(np.argmax(scores)), len(scores)
    (50, 60)
    """
    if detector not in DETECTORS:
        raise ModelmedicError(f"unknown detector {detector!r}: choose one of {', '.join(sorted(DETECTORS))}")
    one = OneSeries(DETECTORS[detector]())
    return np.array([one.score_learn_one(float(v), epoch_seconds(t)) for t, v in zip(timestamps, values)])


def read_csv(path: Path) -> tuple[list[str], list[float]]:
    """The ``timestamp`` and ``value`` columns of a CSV file (blank values become NaN)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ModelmedicError(f"cannot read {path}: {exc.strerror}; pass an existing CSV file") from exc
    if rows and not {"timestamp", "value"} <= set(rows[0]):
        raise ModelmedicError(f"{path} has columns {list(rows[0])}; it needs a header with timestamp,value")
    try:
        return [r["timestamp"] for r in rows], [float(r["value"] or "nan") for r in rows]
    except ValueError as exc:
        raise ModelmedicError(f"{path}: {exc}; every value must be a number") from exc


def _replay(args: argparse.Namespace) -> int:
    stamps, values = read_csv(Path(args.file))
    scores = replay_scores(stamps, values, args.detector)
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        writer.writerows((t, repr(v), f"{s:.6f}") for t, v, s in zip(stamps, values, scores))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0

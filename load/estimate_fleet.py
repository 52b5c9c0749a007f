"""Does the label-free accuracy estimate track realized accuracy on the fleet generator's probability models?

    .venv/bin/python load/estimate_fleet.py [--models 16] [--hours 24] [--seed 1] [--sample-every 4] [--bad MODEL]

A fleet of probability models only (``load/fleet.py``: each answers a vector whose top
class gets between 0.3 and 1 of the probability above chance, whatever the input, and is
right 85% of the time: a model that is *not* calibrated), 0.05-2 req/s each with a daily
cycle, 30% of requests labelled 5-30 minutes later, is fed through ``QualityMonitor`` as the
plane feeds it (1 in ``--sample-every`` requests, labels as they fall due, a poll per minute
with the series that served in it).
Every hour each model's estimate (``estimated_accuracy``: its last 200-400 sampled
predictions) is compared with the realized accuracy of *all* its labelled requests over the
run (the fleet's accuracy does not change while a version is healthy), once its calibration
is learned from labels. ``--bad`` releases a bad version of one model at half time (its
predictions mixed toward the rarest class, its confidence unchanged: a change the estimate
cannot see and the calibration check should). Prints the error per model and overall, and
every anomaly record; docs/detection.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import FleetSpec, Incident, stream  # noqa: E402

from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.events import decode_inference, decode_label  # noqa: E402

T0 = 1_767_225_600_000
MINUTE_MS = 60_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-every", type=int, default=4)
    parser.add_argument("--bad", default="", help="a model (model-003) that releases a bad version at half time")
    args = parser.parse_args(argv)
    spec = FleetSpec(models=args.models, rate_range=(0.05, 2.0), seasonality=0.6, classifier_share=0.0,
                     probability_share=1.0, label_fraction=0.3, seed=args.seed)
    half = args.hours * 1800
    incidents = [Incident.parse(f"bad_version:{args.bad}@{half:g}+{half:g}x3")] if args.bad else []
    monitor = QualityMonitor(MINUTE_MS, QualitySettings(), label_sample_every=args.sample_every, clock=None)
    predicted: dict[tuple[str, str], tuple[int, str]] = {}  # (model, request) -> (top class, version)
    right: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (model, version) -> correct, labelled
    checkpoints: dict[str, list[float]] = defaultdict(list)  # model -> hourly estimates once calibrated on labels
    records = []
    for chunk in stream(spec, incidents, T0, args.hours * 3600, chunk_s=60.0):  # one chunk, one window
        active = set()
        for _, raw in chunk.inference:
            event = decode_inference(raw)
            active.add((event.model, event.version, event.role))
            if getattr(event, "role", "") == "production" and isinstance(event.prediction, list) and event.ok:
                predicted[(event.model, event.request_id)] = (int(np.argmax(event.prediction)), event.version)
                monitor.observe_inference(event)
        for _, raw in chunk.labels:
            label = decode_label(raw)
            top = predicted.pop((label.model, label.request_id), None)
            if top is not None:
                tally = right[(label.model, top[1])]
                tally[0] += top[0] == label.label
                tally[1] += 1
            monitor.observe_label(label)
        end = int(chunk.end_ms)
        records += monitor.poll(end, active)
        if (end - T0) % 3_600_000 == 0:
            for model, version in {(model, version) for model, version in right}:
                e = monitor.estimate(model, version) or {}
                if e.get("calibration") == "labels" and not (args.bad == model and end - T0 > half * 1000):
                    checkpoints[f"{model}/{version}"].append(e["estimated_accuracy"])
    errors = []
    print(f"{'series':24} {'checks':>6} {'realized':>8} {'labels':>6} {'bias':>7} {'MAE':>6} {'max':>6}")
    for series, estimates in sorted(checkpoints.items()):
        correct, labelled = right[tuple(series.split("/"))]
        gap = np.array(estimates) - correct / labelled
        errors.append(gap)
        print(f"{series:24} {gap.size:6d} {correct / labelled:8.3f} {labelled:6d} {gap.mean():+7.3f} "
              f"{np.abs(gap).mean():6.3f} {np.abs(gap).max():6.3f}")
    every = np.concatenate(errors) if errors else np.zeros(0)
    print(f"all: {every.size} hourly checks, bias {every.mean():+.4f}, MAE {np.abs(every).mean():.4f}, "
          f"p95 |error| {np.quantile(np.abs(every), 0.95):.4f}, max {np.abs(every).max():.4f}")
    for a in records:
        print(f"{(a.onset - T0) / 3_600_000:6.2f} h {a.state:9} {a.kind:18} {a.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

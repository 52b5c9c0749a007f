"""test_quality_stream's low-traffic canary fleet, offline: when each divergent release is found.

    .venv/bin/python load/canary_offline.py [--budget 1e-4] [--classifier 2.0] [--minutes 30]

The fleet of ``tests/integration/test_quality_stream.py``'s low-traffic test (six models at 0.6
req/s, every request mirrored to the previous version as a canary, seed 31; three releases at 20
minutes that diverge for 30; ``--classifier`` sets the classifier release's severity, ``--minutes``
how long the releases last) is generated, decoded and fed to one ``QualityMonitor`` at the
default sampling (1 request in 4), polled every second of event time; prints, per model and
decision, when it first fired, in minutes after the release. What the real-Kafka test checks
within 30 minutes, without Kafka, in a few CPU seconds (docs/detection.md, "One false-alarm
budget per version-day").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load.fleet import FleetSpec, Incident, generate  # noqa: E402
from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.events import InferenceEvent  # noqa: E402

START_MS = 1_767_225_600_000  # the integration tests' START_MS
RELEASE_S = 1200


def first_firings(budget: float, classifier: float, minutes: float) -> dict[tuple[str, str], float]:
    """(model, kind) -> minutes from the release to the first firing record. The divergent releases: the
    regressor model-000 and the probability model model-002 at x1.5, the classifier model-001 at ``classifier``."""
    spec = FleetSpec(models=6, rate=0.6, canary_fraction=1.0, classifier_share=1 / 3, probability_share=1 / 3, seed=31)
    severity = {"model-000": 1.5, "model-001": classifier, "model-002": 1.5}
    incidents = [Incident.parse(f"bad_version:{m}@{RELEASE_S}+{minutes * 60:g}x{x}") for m, x in sorted(severity.items())]
    monitor = QualityMonitor(1000, QualitySettings(false_alarms_per_day=budget), label_sample_every=4, clock=None)
    decode = msgspec.json.Decoder(InferenceEvent).decode
    fired: dict[tuple[str, str], float] = {}
    next_end = START_MS + 1000
    for _, value in generate(spec, incidents, START_MS, RELEASE_S + minutes * 60):
        event = decode(value)
        while event.ts >= next_end:
            for a in monitor.poll(next_end):
                if a.state == "firing":
                    fired.setdefault((a.model, a.kind), (a.window_end - START_MS) / 60_000 - RELEASE_S / 60)
            next_end += 1000
        monitor.observe_inference(event)
    return fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=QualitySettings().false_alarms_per_day,
                        help="quality.false_alarms_per_day (default: the setting's)")
    parser.add_argument("--classifier", type=float, default=2.0, help="severity of the classifier's release (x)")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the releases last")
    args = parser.parse_args()
    fired = first_firings(args.budget, args.classifier, args.minutes)
    for model in (f"model-{i:03d}" for i in range(6)):  # the healthy three too: they must print nothing
        kinds = {k: t for (m, k), t in fired.items() if m == model}
        print(model, ", ".join(f"{k} {t:.1f} min after the release" for k, t in sorted(kinds.items())) or "nothing fired")


if __name__ == "__main__":
    main()

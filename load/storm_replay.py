"""The detection harness's pages from recorded anomalies: response-plane changes measured in seconds.

    .venv/bin/python -u load/storm_replay.py record /tmp/rough-1.json --small --rough --seed 1
    .venv/bin/python -u load/storm_replay.py replay /tmp/rough-1.json [--replicas 2]

``record`` runs ``load/detection_harness.py``'s two fleets once (the same arguments) and writes
every anomaly batch the harness's pager was given, and every advance of its event time, in
order. ``replay`` feeds them to a fresh :class:`~load.detection_harness.Pager` (the real
response plane of the code it runs with) and prints the harness's tables, each multi-model
entry's members (onset, first firing) and every page, all in seconds from the entry's start.
Detection is the recording's, so two replays of one recording differ only by their response
plane: how storms, holds and pages changed, compared line by line (replaying with the code
that recorded reproduces the harness's pages exactly).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import detection_harness as h  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.detectors.sequential import threshold_for  # noqa: E402
from modelmedic.events import Anomaly  # noqa: E402


class Step(msgspec.Struct, frozen=True):
    """What the harness gave its pager: a batch of anomalies, or event time running on to ``advance_ms``."""

    anomalies: list[Anomaly] = []
    advance_ms: int = 0


class Recording(msgspec.Struct):
    """One harness run's pager input, per fleet (quiet, incidents), and the shape that made it."""

    small: bool
    rough: bool
    seed: int
    models: int | None
    fleets: list[list[Step]]


class RecordingPager(h.Pager):
    """The harness's pager, also writing down what it was given."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.steps: list[Step] = []

    async def batch(self, anomalies: list[Anomaly]) -> None:
        self.steps.append(Step(anomalies=list(anomalies)))
        await super().batch(anomalies)

    async def advance(self, to_ms: int) -> None:
        self.steps.append(Step(advance_ms=to_ms))
        await super().advance(to_ms)


def shape_of(rec: Recording) -> h.Shape:
    shape = replace(h.SMALL if rec.small else h.FULL, rough=rec.rough)
    return replace(shape, models=rec.models) if rec.models else shape


async def record(rec: Recording) -> None:
    settings = load_settings()
    for scenario in h.scenarios(shape_of(rec), rec.seed):
        pager = RecordingPager(settings)
        await h.run_offline(scenario, settings, pager=pager)
        rec.fleets.append(pager.steps)


async def replay(steps: list[Step], replicas: int = 1) -> h.Outcome:
    """The recorded steps through fresh pagers: the anomalies, and the pages of this code's response plane.

    ``replicas`` > 1: as many response planes, each given the anomalies of its share of the topic's
    partitions (consecutive ranges, as Kafka's range assignor deals them), as replicas sharing the
    consumer group are: each sees, holds and groups into storms only its own models' incidents."""
    settings = load_settings()
    pagers, outcome, partition = [h.Pager(settings) for _ in range(replicas)], h.Outcome(), h._Partitions(settings.kafka.partitions)
    owner = lambda a: partition(a.model.encode()) * replicas // settings.kafka.partitions  # noqa: E731
    for step in steps:
        if step.anomalies:
            for k, pager in enumerate(pagers):
                if mine := [a for a in step.anomalies if owner(a) == k]:
                    await pager.batch(mine)
            outcome.anomalies += step.anomalies
        else:
            for pager in pagers:
                await pager.advance(step.advance_ms)
    outcome.pages = sorted(page for pager in pagers for page in pager.pages)
    return outcome


def members(report: h.Report) -> list[str]:
    """Each multi-model entry's members (onset and first firing) and the pages naming any of them."""
    lines = []
    for truth in (t for t in report.scenario.truths if len(t.models) > 1):
        lines.append(f"-- {truth.kind.name} (s from its start)")
        firsts: dict[str, Anomaly] = {}
        for a in report.outcome.anomalies:
            if a.state == "firing" and truth.covers(a.model, a.window_end):
                firsts.setdefault(a.model, a)
        for model, a in sorted(firsts.items(), key=lambda kv: kv[1].window_end):
            lines.append(f"   {model} onset {(a.onset - truth.start_ms) / 1000:+.0f} fired {(a.window_end - truth.start_ms) / 1000:+.0f}")
        lines += [f"   page {(at - truth.start_ms) / 1000:+.0f}: {', '.join(models)}"
                  for at, models in report.outcome.pages if any(truth.covers(m, at) for m in models)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "replay"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--rough", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", type=int)
    parser.add_argument("--replicas", type=int, default=1, help="replay: response planes sharing the partitions")
    args = parser.parse_args(argv)
    logging.getLogger("modelmedic").setLevel(logging.ERROR)
    if args.action == "record":
        rec = Recording(args.small, args.rough, args.seed, args.models, [])
        asyncio.run(record(rec))
        args.path.write_bytes(msgspec.json.encode(rec))
        return 0
    rec = msgspec.json.decode(args.path.read_bytes(), type=Recording)
    settings = load_settings()
    threshold = threshold_for(settings.windows.size_ms / 1000, 1.0 - settings.detection.threshold)
    print(f"fleet shape: {shape_of(rec)}, seed {rec.seed} (replayed from {args.path})")
    for scenario, steps in zip(h.scenarios(shape_of(rec), rec.seed), rec.fleets):
        report = h.score(scenario, asyncio.run(replay(steps, args.replicas)), threshold)
        print(h.render(report))
        print("\n".join(members(report)))
        print("pages (s from the run's start):", *(f"{(at - h.START_MS) / 1000:.0f} {','.join(m)}"
                                                   for at, m in report.outcome.pages), sep="\n   ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The detection harness's pages from recorded anomalies: response-plane changes measured in seconds.

    .venv/bin/python -u load/storm_replay.py record /tmp/rough-1.json --small --rough --seed 1
    .venv/bin/python -u load/storm_replay.py replay /tmp/rough-1.json [--replicas 2] [--tick-s 1]

``record`` runs ``load/detection_harness.py``'s two fleets once (the same shape arguments: any
of the harness's) and writes every anomaly batch the harness's pager was given, and every
advance of its event time, in order. ``replay`` feeds them to a fresh
:class:`~load.detection_harness.Pager` (the real response plane of the code it runs with) and
prints the harness's tables, each multi-model entry's members (onset, first firing) and every
page, all in seconds from the entry's start. Detection is the recording's, so two replays of
one recording differ only by their response plane: how storms, holds and pages changed,
compared line by line (replaying with the code that recorded reproduces the harness's pages
exactly). ``--tick-s`` moves event time on in steps of that many seconds between the recorded
steps, as the live service's tick does every second: the harness moves it once a chunk, so a
hold that ends between two chunks pages at the next (seed 6's storm paged at 220 s in the
harness and at 562 s with a tick a second, before session 31).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
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
    """One harness run's pager input, per fleet (quiet, incidents), and the shape and seed that made it."""

    shape: h.Shape
    seed: int
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


async def record(rec: Recording) -> None:
    settings = load_settings()
    for scenario in h.scenarios(rec.shape, rec.seed):
        pager = RecordingPager(settings)
        await h.run_offline(scenario, settings, pager=pager)
        rec.fleets.append(pager.steps)


async def replay(steps: list[Step], replicas: int = 1, tick_ms: int = 0) -> h.Outcome:
    """The recorded steps through fresh pagers: the anomalies, and the pages of this code's response plane.

    ``replicas`` > 1: as many response planes, each given the anomalies of its share of the topic's
    partitions (consecutive ranges, as Kafka's range assignor deals them), as replicas sharing the
    consumer group are: each sees, holds and groups into storms only its own models' incidents.
    ``tick_ms`` > 0: event time also moves on in steps of ``tick_ms`` up to each recorded step's."""
    settings = load_settings()
    pagers, outcome, partition = [h.Pager(settings) for _ in range(replicas)], h.Outcome(), h._Partitions(settings.kafka.partitions)
    owner = lambda a: partition(a.model.encode()) * replicas // settings.kafka.partitions  # noqa: E731
    now_ms = 0
    for step in steps:
        to_ms = max((a.window_end for a in step.anomalies), default=step.advance_ms)
        if tick_ms and now_ms:
            for at_ms in range(now_ms + tick_ms, to_ms, tick_ms):
                for pager in pagers:
                    await pager.advance(at_ms)
        now_ms = max(now_ms, to_ms)
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
    h.add_shape_arguments(parser)
    parser.add_argument("--replicas", type=int, default=1, help="replay: response planes sharing the partitions")
    parser.add_argument("--tick-s", type=float, default=0.0, help="replay: move event time on this often between steps")
    args = parser.parse_args(argv)
    logging.getLogger("modelmedic").setLevel(logging.ERROR)
    if args.action == "record":
        rec = Recording(h.shape_from(args), args.seed, [])
        asyncio.run(record(rec))
        args.path.write_bytes(msgspec.json.encode(rec))
        return 0
    rec = msgspec.json.decode(args.path.read_bytes(), type=Recording)
    settings = load_settings()
    threshold = threshold_for(settings.windows.size_ms / 1000, 1.0 - settings.detection.threshold)
    print(f"fleet shape: {rec.shape}, seed {rec.seed} (replayed from {args.path})")
    for scenario, steps in zip(h.scenarios(rec.shape, rec.seed), rec.fleets):
        report = h.score(scenario, asyncio.run(replay(steps, args.replicas, int(args.tick_s * 1000))), threshold)
        print(h.render(report))
        print("\n".join(members(report)))
        print("pages (s from the run's start):", *(f"{(at - h.START_MS) / 1000:.0f} {','.join(m)}"
                                                   for at, m in report.outcome.pages), sep="\n   ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

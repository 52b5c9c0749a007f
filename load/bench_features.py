"""What the inputs cost the detection plane: ``load/bench_plane.py``'s fleet, with and without features.

    .venv/bin/python load/bench_features.py [--events 200000] [--features 16] [--rounds 3]

The same batches as ``bench_plane.py`` (its fleet and polls), run twice through a fresh offline
plane per round, alternately, so a busy spell of the shared machine hits both alike: once as the
fleet sends them (no features: an old producer), once with ``--features`` numeric and
categorical features added to every record. Only the quality sample's requests (1 in 4) have
theirs decoded, checked and counted; the others pay the native decoder's skip. Prints CPU per
event for both and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load.bench_plane import fleet_batches, run  # noqa: E402
from load.fleet import FleetSpec  # noqa: E402
from modelmedic.app import tune_gc  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.testing import Record  # noqa: E402


def with_features(batches: list[dict], count: int, seed: int = 1) -> list[dict]:
    """The batches with ``count`` features in every record (a third categorical), as a producer sends them."""
    rng = np.random.default_rng(seed)
    out = []
    for batch in batches:
        copy = {}
        for tp, records in batch.items():
            values = rng.normal(0.0, 1.0, (len(records), count))
            copy[tp] = [Record(r.topic, r.partition, r.offset, _add(r.value, row), r.key) for r, row in zip(records, values)]
        out.append(copy)
    return out


def _add(value: bytes, row: np.ndarray) -> bytes:
    features = {f"f{j}": (f"c{int(v > 0)}{int(v > 1)}" if j % 3 == 2 else round(float(v), 4)) for j, v in enumerate(row)}
    # The fleet encodes InferenceEvent, whose features are null: replaced, not repeated (a repeated field
    # is left to the msgspec fallback).
    text = json.dumps(features, separators=(",", ":")).encode()
    return value.replace(b'"features":null', b'"features":' + text, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s per model (event time)")
    parser.add_argument("--features", type=int, default=16, help="features per record")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    settings = load_settings()
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={
        "topics": settings.kafka.topics.model_copy(update={"inference": "inference"})})})
    plain = fleet_batches(args.events, FleetSpec(models=args.models, rate=args.rate, canary_fraction=0.1, seed=1), 6, 2_500)
    featured = with_features(plain, args.features)
    tune_gc()
    without = with_ = float("inf")
    for _ in range(args.rounds):
        without = min(without, asyncio.run(run(plain, settings, 1)))
        with_ = min(with_, asyncio.run(run(featured, settings, 1)))
    size = np.mean([len(r.value) for batch in featured[:5] for records in batch.values() for r in records])
    print(f"inputs: {with_ / args.events * 1e6:.2f} us of CPU per event with {args.features} features "
          f"(records of {size:.0f} B), {without / args.events * 1e6:.2f} without ({with_ / without:.3f}x, "
          f"quality sample 1 in {settings.detection.quality_sample_every}, min of {args.rounds} each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

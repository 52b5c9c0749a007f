"""CPU of encoding a partition's quality monitor with a full label join, as each checkpoint does.

    python load/bench_join_checkpoint.py                 # 50,000 entries (label_max_pending), 10 checkpoints
    python load/bench_join_checkpoint.py --entries 10000

A label join filled with fleet-shaped entries (100 models, ids ``1-`` and a hex counter, one
sampled prediction every 72 ms: 50,000 span the default 6 h horizon), then one checkpoint
interval's changes before each encoding: 70 predictions join at the back, 20 labels take theirs
from the last 25,000 (labels come 5-30 minutes late), and expiry takes from the front. Prints the
median and least thread CPU of ``encode_snapshot`` over the checkpoints, and checks that the last
snapshot restores the join exactly. Run it on two trees (a worktree at each commit) to compare.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.detection.snapshots import decode_snapshot, encode_snapshot  # noqa: E402

T0 = 1_767_225_600_000
SPACING_MS = 72
"""Event time between two sampled predictions of one partition."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    monitor = QualityMonitor(10_000, QualitySettings(), label_sample_every=4)
    join, added = monitor._label_join, 0

    def add(n: int) -> None:
        nonlocal added
        for i in range(added, added + n):
            join.put((f"model-{rng.randrange(100):03d}", f"1-{i * 7919:x}"), (T0 + i * SPACING_MS, "2.1.0", float(i % 3), False))
        added += n

    add(args.entries)
    encode_snapshot({"quality": monitor})  # the first checkpoint encodes everything
    cpu = []
    for _ in range(args.checkpoints):
        add(70)
        for key in rng.sample(list(join.items)[-25_000:], 20):
            join.items.pop(key)
        join.advance(T0 + added * SPACING_MS - 6 * 3_600_000)
        started = time.thread_time()
        blob = encode_snapshot({"quality": monitor})
        cpu.append(time.thread_time() - started)
    restored = decode_snapshot(blob)["quality"]._label_join.items
    assert list(restored.items()) == list(join.items.items()), "the snapshot does not restore the join"
    cpu.sort()
    print(f"{len(join.items):,} entries: checkpoint encoding CPU median {1000 * cpu[len(cpu) // 2]:.2f} ms, "
          f"least {1000 * cpu[0]:.2f} ms; snapshot {len(blob) / 1e3:,.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

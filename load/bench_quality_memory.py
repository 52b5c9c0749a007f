"""The quality monitor's memory: bytes per pending join entry (in memory and pickled) and per tracked version.

    .venv/bin/python load/bench_quality_memory.py

Pending entries are what the joins hold (``quality.label_max_pending``, ``canary_max_pending``);
a version's state is its rings and its learned drift reference. Measured with tracemalloc on
36-character request ids (UUIDs), as model servers usually send; docs/benchmarks.md has the
figures.
"""

from __future__ import annotations

import pickle
import sys
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402

T0 = 1_700_000_000_000


def pending_entry_bytes(n: int = 50_000) -> tuple[float, float]:
    """(bytes in memory, bytes pickled) per production prediction waiting for its label."""
    names = [("m", "1.0.0", "production")]
    rows = [(0, 0, T0 + i, True, str(uuid.UUID(int=i)), float(i % 7)) for i in range(n)]
    monitor = QualityMonitor(60_000, QualitySettings(label_max_pending=4 * n))  # below half full: every one kept
    monitor.observe_sampled(rows[:10], names)  # the model and version exist before measuring
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    monitor.observe_sampled(rows[10:], names)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / (n - 10), len(pickle.dumps(monitor)) / n


def version_bytes(versions: int = 100, predictions: int = 1000, entry: float = 0.0) -> float:
    """Bytes per tracked version once its drift reference and rings are full (pending entries excluded)."""
    names = [(f"model-{i}", "1.0.0", "production") for i in range(versions)]
    monitor = QualityMonitor(60_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in range(predictions):
        monitor.observe_sampled([(0, i, T0 + k, True, f"r{i}-{k}", float(k % 13)) for i in range(versions)], names)
    grown = tracemalloc.get_traced_memory()[0] - before - entry * len(monitor._label_join.items)
    tracemalloc.stop()
    return grown / versions


def main() -> int:
    in_memory, pickled = pending_entry_bytes()
    print(f"pending prediction: {in_memory:.0f} B in memory, {pickled:.0f} B pickled (before zlib)")
    print(f"tracked version with a full drift reference and rings: {version_bytes(entry=in_memory) / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A hash of every decision the quality monitor takes on a seeded stream: equal before and after a change that
must not change them (a faster monitor), in separate processes.

    .venv/bin/python load/quality_decisions.py [--models 1000] [--requests 200000] [--seed 1]

Run it in each checkout (``PYTHONPATH`` at its ``modelmedic``) and compare the last line. The stream: over 4 hours
of event time, ``--requests`` requests spread over ``--models`` models, each serving 1.0.0 and then 2.0.0 from a
random time on; a quarter of them with a canary (0.9.0) on every request, a tenth of those diverging by 5.0 (and
their labels 10x as far from the predictions) after the stream's midpoint; 30% of requests labelled 1-25 minutes
later; a third of the models stop serving at a random time, so idle recovery and expiry read when a series last
served; then 3 hours without traffic. A poll every 10 s window with the series that served in it: by slot
(``QualityMonitor.watch``) where the monitor has it, its windows forgetting series at the monitor's TTL (so slots
are handed out again), else by name. Prints the counters and the sha256 of every ``poll`` record and of each
version's states at the end. One request in ``SAMPLE_EVERY`` is sampled (by a hash of its id, as the plane's decoder
picks them), so a quiet series' last request is often known only from the windows.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.detection.windows import PartitionWindows  # noqa: E402
from modelmedic.events import LabelEvent  # noqa: E402

W, T0, HOUR, MINUTE = 10_000, 1_767_225_600_000, 3_600_000, 60_000
SPAN = 4 * HOUR
HORIZON = 30 * MINUTE
SAMPLE_EVERY = 4


class Feed:
    """The monitor and what the plane hands it: sampled rows by series number, labels, and each window's series."""

    def __init__(self, monitor: QualityMonitor) -> None:
        self.monitor, self.digest, self.records = monitor, hashlib.sha256(), 0
        self.names: list[tuple[str, str, str]] = []
        self.number: dict[tuple[str, str, str], int] = {}
        self.rows: list[tuple] = []
        self.active: set[tuple[str, str, str]] = set()
        self.labels: list[tuple[int, str, str, float]] = []
        self.windows = PartitionWindows(W, 0, HORIZON // W) if hasattr(monitor, "watch") else None
        if self.windows is not None:
            monitor.watch(self.windows)

    def request(self, key: tuple[str, str, str], ts: int, rid: str, prediction: float) -> None:
        if key not in self.number:
            self.number[key] = len(self.names)
            self.names.append(key)
        self.active.add(key)
        if not zlib.crc32(rid.encode()) % SAMPLE_EVERY:  # the decoder's sample (``QualityMonitor._crc``)
            self.rows.append((0, self.number[key], ts, True, rid, prediction))

    def window(self, end: int) -> None:
        """Hand over the window ending at ``end``: its rows, the labels due by then, and a poll."""
        self.monitor.observe_sampled(sorted(self.rows, key=lambda row: row[2]), self.names)
        while self.labels and self.labels[0][0] < end:
            ts, model, rid, label = heapq.heappop(self.labels)
            self.monitor.observe_label(LabelEvent(model, rid, ts, label))
        for r in self.monitor.poll(end, self._served(end)):
            self.records += 1
            self.digest.update(repr((r.id, r.series, r.kind, r.state, r.onset, r.window_end, r.observed, r.baseline,
                                     r.score, r.summary)).encode())
        if self.windows is not None:
            self.windows.expire((end - T0) // W)
        self.rows, self.active = [], set()

    def _served(self, end: int):
        """The window's series: by name, or as the windows' slots (created and kept live as ingest would)."""
        if self.windows is None:
            return sorted(self.active)
        w, windows = (end - T0) // W, self.windows
        for key in self.active:
            if key not in windows.slot_of:
                windows._new_slot(key, w)  # noqa: SLF001 (ingest's bookkeeping, without the aggregates)
            windows.last_window[windows.slot_of[key]] = w
        return np.array(sorted(windows.slot_of[key] for key in self.active), dtype=np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    models, requests = args.models, args.requests
    feed = Feed(QualityMonitor(W, QualitySettings(label_horizon_ms=HORIZON), label_sample_every=SAMPLE_EVERY,
                                    clock=None))
    ts = T0 + np.sort(rng.integers(0, SPAN, requests))
    model = rng.integers(0, models, requests)
    stop = T0 + rng.integers(SPAN // 4, 2 * SPAN, models)
    release = T0 + rng.integers(0, 3 * SPAN, models)
    diverge = rng.random(models) < 0.1
    prediction = np.round(rng.normal(100, 15, requests), 3)
    end = T0 + W
    for i in range(requests):
        t, m = int(ts[i]), int(model[i])
        while t >= end:
            feed.window(end)
            end += W
        if t >= stop[m] and m % 3 == 0:
            continue
        name, p, rid = f"model-{m:05d}", float(prediction[i]), f"r{i}"
        late = bool(diverge[m]) and t > T0 + SPAN // 2
        feed.request((name, "2.0.0" if t >= release[m] else "1.0.0", "production"), t, rid, p)
        if m % 4 == 0:
            feed.request((name, "0.9.0", "canary"), t + 2, rid, round(p + (5.0 if late else 0.75 * rng.normal()), 3))
        if rng.random() < 0.3:
            label = round(p + rng.normal() * (30 if late else 3), 3)
            heapq.heappush(feed.labels, (t + int(rng.integers(MINUTE, 25 * MINUTE)), name, rid, label))
    while feed.labels or end < int(ts[-1]) + 3 * HOUR:
        feed.window(end)
        end += W
    monitor = feed.monitor
    for name in sorted(monitor._models):  # noqa: SLF001 (every version still tracked)
        for version in sorted(monitor._models[name].versions):  # noqa: SLF001
            feed.digest.update(repr((name, version, monitor.states(name, version))).encode())
    print(f"{feed.records} poll records; counters {monitor.counters()}")
    print(f"sha256 {feed.digest.hexdigest()}")


if __name__ == "__main__":
    main()

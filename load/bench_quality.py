"""The quality monitor at fleet scale: CPU per event and memory per monitored model.

    .venv/bin/python load/bench_quality.py [--models 100000] [--events 3000000] [--minutes 10] [--sample-every 4]
        [--mirror-every 4] [--against OLD_QUALITY_PY --rounds 2]

Feeds ``QualityMonitor.observe_sampled`` what the plane's decoder hands it (the sampled
rows: one request in ``--sample-every``) for ``--events`` requests spread uniformly over
``--models`` models (one production version each, one in ``--mirror-every`` (a quarter by default) with a canary
on every request), and ``poll`` once per 10 s window with the series that served in it, as the plane
does (their slots in a partition's windows, ``QualityMonitor.watch``; by name for a monitor of a release before it). The CPU time of both, divided by every request (sampled or not), is the monitor's
share of the plane's cost per event at that sample rate: once while every model is new
(its detectors are created), then for the same traffic again (the steady state). Memory per model is tracemalloc's
count of the monitor's allocations (plus its native table's bytes, which tracemalloc does not see) over the
models, twice: after a few sampled requests per
model (the drift reference still being learned) and once every model's reference is fitted.
The garbage collector is tuned as ``modelmedic run`` tunes it (``modelmedic.app.tune_gc``):
with Python's defaults, full collections walking every model's detectors took a third of the
first-sight cost at 100k models, which the service does not pay.
``--against`` times another ``service/detection/quality.py`` (e.g. ``git show REV:service/detection/quality.py
> /tmp/old.py``), or another checkout's monitor with its canary detector (the root of a ``git worktree add
--detach /tmp/old REV``: its ``service/detection/quality.py`` using its ``detectors/quality.py``'s
``CanaryDivergence``), on the same workload in the same process, alternating with the tree's for ``--rounds``
rounds (in turn first and second), so a before/after shares the machine's load (memory is then not measured).
Prints one line per measurement; docs/benchmarks.md ("The quality monitor") has the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelmedic.app import tune_gc  # noqa: E402
from modelmedic.config import QualitySettings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.detection.windows import PartitionWindows  # noqa: E402

T0 = 1_767_225_600_000
WINDOW_MS = 10_000
PENDING_BYTES = 253
"""Bytes per label-join entry (load/bench_quality_memory.py, 36-character request ids)."""


def workload(models: int, events: int, minutes: float, sample_every: int, seed: int = 1, mirror_every: int = 4):
    """(rows per window, active series per window, names): the sampled rows as the decoder gives them. Every
    ``mirror_every``-th model has a canary twin of each request: the pairs are most of what is left of the monitor's
    Python once the rows' bookkeeping is cheap (docs/benchmarks.md), so how many models mirror matters."""
    rng = np.random.default_rng(seed)
    span = int(minutes * 60_000)
    rate = events / (models * span / 1000)
    names = [(f"model-{m:06d}", "1.0.0", "production") for m in range(models)]
    names += [(f"model-{m:06d}", "0.9.0", "canary") for m in range(0, models, mirror_every)]
    model = rng.integers(0, models, events)
    ts = T0 + np.sort(rng.integers(0, span, events))
    prediction = np.round(rng.normal(100.0, 15.0, events), 3)
    sampled = np.flatnonzero(rng.random(events) < 1.0 / sample_every)
    windows: list[tuple[int, list, list]] = []
    for end in range(T0 + WINDOW_MS, T0 + span + WINDOW_MS, WINDOW_MS):
        lo, hi = np.searchsorted(ts, [end - WINDOW_MS, end])
        rows = []
        for i in sampled[(sampled >= lo) & (sampled < hi)].tolist():
            m, t, p = int(model[i]), int(ts[i]), float(prediction[i])
            rows.append((0, m, t, True, f"r{i}", p))
            if m % mirror_every == 0:  # its canary twin, 0.05 prediction spreads apart
                rows.append((0, models + m // mirror_every, t + 2, True, f"r{i}", round(p + 0.75 * rng.normal(), 3)))
        served = np.unique(model[lo:hi])
        mirrored = served[served % mirror_every == 0]
        windows.append((end, rows, np.concatenate([served, models + mirrored // mirror_every])))
    return windows, names, rate


def slots_for(names) -> PartitionWindows:
    """A partition's windows with a slot for each series, slot ``i`` for ``names[i]``: a window's ``active``
    (indices into ``names``) is then what ``PartitionWindows.served_slots`` hands the plane's monitor."""
    windows = PartitionWindows(WINDOW_MS, 0, 1 << 30)
    for key in names:
        windows._new_slot(key, 0)  # noqa: SLF001 (the series, as ingest would create them)
    return windows


def attach(monitor, names):
    """``monitor`` fed as the plane feeds it: slots of a partition's windows (``QualityMonitor.watch``), or, for a
    monitor of a release before that, the series' names. Returns how to turn a window's ``active`` into its form."""
    if hasattr(monitor, "watch"):
        monitor.watch(slots_for(names))
        return lambda active: active
    return lambda active: [names[i] for i in active.tolist()]


def later(windows, shift_ms: int):
    """The same traffic ``shift_ms`` later (other request ids): the steady state, every model known."""
    return [(end + shift_ms, [(i, s, t + shift_ms, ok, rid + "'", p) for i, s, t, ok, rid, p in rows], active)
            for end, rows, active in windows]


def run(monitor: QualityMonitor, windows, names, served) -> float:
    """CPU seconds of feeding every window's rows and polling at its end (``served``: :func:`attach`'s)."""
    cpu = 0.0
    for end, rows, active in windows:
        active = served(active)  # the plane's work, not the monitor's (it built the names list before)
        start = time.process_time()
        monitor.observe_sampled(rows, names)
        monitor.poll(end, active)
        cpu += time.process_time() - start
    return cpu


def memory_per_model(settings: QualitySettings, windows, names, models: int, sample_every: int) -> tuple[float, int]:
    """(bytes per model held by the monitor apart from its label join, label join entries)."""
    monitor = QualityMonitor(WINDOW_MS, settings, label_sample_every=sample_every, clock=None)
    served = attach(monitor, names)  # the windows' tables are theirs, not the monitor's: only their stamps count
    tracemalloc.start()
    run(monitor, windows, names, served)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if hasattr(monitor, "_table"):  # the native table's rows (Rust's allocator: not traced)
        held += monitor._table.nbytes()  # noqa: SLF001
    pending = monitor.sizes()["label_pending"]
    return (held - pending * PENDING_BYTES) / models, pending


def load_monitor(path: str) -> type:
    """``QualityMonitor`` of another copy of service/detection/quality.py (its other imports from the tree), or
    of a checkout's root, with that checkout's ``CanaryDivergence``."""
    root = Path(path)
    if not root.is_dir():
        return _load(path, "modelmedic.detection.quality_against").QualityMonitor
    canary = _load(str(root / "detectors" / "quality.py"), "modelmedic.detectors.quality_against")
    monitor = _load(str(root / "service" / "detection" / "quality.py"), "modelmedic.detection.quality_against")
    monitor.CanaryDivergence = canary.CanaryDivergence
    return monitor.QualityMonitor


def _load(path: str, name: str):
    """A module from a file, registered under ``name`` (dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--against {path}: not a Python file; give a copy of service/detection/quality.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(args, windows, names) -> None:
    """Tree vs ``--against``, alternating, each round on a fresh monitor: first sight, then the steady state.

    Odd rounds run ``--against`` first, even rounds the tree: whichever monitor builds its models second in a round
    (after the first one's were freed) paid up to 50% more for first sight in 11 of 13 rounds at 100k models,
    whatever its code (docs/benchmarks.md), so an even number of rounds gives each side both places."""
    steady = later(windows, int(args.minutes * 60_000))
    sides = [("against", load_monitor(args.against)), ("tree", QualityMonitor)]
    for round_ in range(1, args.rounds + 1):
        for label, cls in sides if round_ % 2 else sides[::-1]:
            monitor = cls(WINDOW_MS, QualitySettings(), label_sample_every=args.sample_every, clock=None)
            served = attach(monitor, names)
            first, again = run(monitor, windows, names, served), run(monitor, steady, names, served)
            print(f"round {round_} {label:7}: first sight {first / args.events * 1e6:.3f}, steady state "
                  f"{again / args.events * 1e6:.3f} us per request; label join {monitor.sizes()['label_pending']:,}",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--minutes", type=float, default=10.0, help="event time the requests span")
    ap.add_argument("--sample-every", type=int, default=4)
    ap.add_argument("--mirror-every", type=int, default=4, help="one model in this many has a canary")
    ap.add_argument("--against", help="another service/detection/quality.py, or a checkout's root, to time "
                                      "alternately with the tree's")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of --against (odd ones run it first, even ones the "
                                                          "tree: use an even number)")
    args = ap.parse_args()
    windows, names, rate = workload(args.models, args.events, args.minutes, args.sample_every,
                                    mirror_every=args.mirror_every)
    sampled = sum(len(rows) for _, rows, _ in windows)
    print(f"{args.models:,} models, {args.events:,} requests in {args.minutes:g} min of event time "
          f"({rate:.2f} req/s per model), "
          f"1 in {args.sample_every} sampled: {sampled:,} rows with the canary twins")
    tune_gc()  # as the service does (the workload above is frozen out of every collection, as start-up is)
    if args.against:
        compare(args, windows, names)
        return
    settings = QualitySettings()
    monitor = QualityMonitor(WINDOW_MS, settings, label_sample_every=args.sample_every, clock=None)
    served = attach(monitor, names)
    for what, traffic in (("first sight of every model", windows),
                          ("steady state", later(windows, int(args.minutes * 60_000)))):
        cpu = run(monitor, traffic, names, served)
        print(f"CPU, {what}: {cpu / args.events * 1e6:.3f} us per request (observe_sampled + poll), "
              f"{cpu / sampled * 1e6:.2f} us per sampled row; models tracked {monitor.sizes()['models']:,}, "
              f"versions evicted {monitor.series_evicted:,}")
    learning, pending = memory_per_model(settings, windows, names, args.models, args.sample_every)
    fitted, _ = memory_per_model(settings.model_copy(update={"drift_reference": 2}), windows, names, args.models,
                                 args.sample_every)
    print(f"memory per model: {learning:,.0f} B while its drift reference is learned (a few values each here; "
          f"up to drift_reference={settings.drift_reference} floats), {fitted:,.0f} B with it fitted; "
          f"plus the label join: {pending:,} entries x ~{PENDING_BYTES} B")


if __name__ == "__main__":
    main()

"""What ``modelmedic replay`` costs: a metric CSV per row, inference events per event.

    .venv/bin/python load/bench_replay.py            # the 24 NAB files, then a 6-model fleet's JSONL

CSV: ``modelmedic.detection.replay.command`` on every NAB data file (read, parse, score,
write to memory; the CLI's start-up left out), twice, CPU and wall time per row. JSONL:
8 minutes of a 6-model fleet (about 70,000 events) through the same command.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load.fleet import FleetSpec, Incident, generate  # noqa: E402
from load.nab import NAB_ROOT  # noqa: E402
from modelmedic.detection.replay import command  # noqa: E402


def _run(path: Path, **options: object) -> tuple[float, float]:
    args = argparse.Namespace(file=str(path), config=None, detector=None, partitions=None, output=None, json=False)
    vars(args).update(options)
    cpu, wall = time.process_time(), time.perf_counter()
    with redirect_stdout(io.StringIO()):
        command(args)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    files = sorted((NAB_ROOT / "data").glob("*/*.csv"))
    rows = sum(len(f.read_text().splitlines()) - 1 for f in files)
    for _ in range(2):
        cpu = wall = 0.0
        for f in files:
            c, w = _run(f)
            cpu, wall = cpu + c, wall + w
        print(f"CSV: {len(files)} files, {rows:,} rows: {1e6 * cpu / rows:.1f} us CPU/row, {1e6 * wall / rows:.1f} wall")
    spec = FleetSpec(models=6, rate=20, seed=3, canary_fraction=0.1, canary_every=3)
    lines = [v for _, v in generate(spec, [Incident.parse("latency_spike:model-002@240+120x4")], 1_767_225_600_000, 480)]
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        events.write_bytes(b"".join(line + b"\n" for line in lines))
        cpu, wall = _run(events)
    print(f"JSONL: {len(lines):,} events: {1e6 * cpu / len(lines):.1f} us CPU/event, {1e6 * wall / len(lines):.1f} wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of the metric-stream detectors at fleet scale: state per series and time per point.

    python load/bench_detectors.py                  # every bank at 100,000 series
    python load/bench_detectors.py --series 10000 --steps 50

Each step is one closed window: every series gets one value (hourly daily-cycle noise
with event times) in a single vectorized ``score_learn`` call, as in the detection plane.
Warm-up steps are not timed. Targets: <= 4 KB per series, <= 5 us per point.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from modelmedic.detectors import CusumBank, EwmaBank, RobustBank, SeasonalBank, default_bank

BANKS = {
    "default (CalibratedBank)": default_bank,
    "EwmaBank": EwmaBank,
    "RobustBank": RobustBank,
    "CusumBank": CusumBank,
    "SeasonalBank": SeasonalBank,
}


def bench(make, series: int, steps: int, warmup: int, seed: int = 0) -> tuple[int, float]:
    """``(state bytes per series, seconds per point)``."""
    rng = np.random.default_rng(seed)
    bank = make()
    bank.ensure(series)
    slots = np.arange(series)
    level = rng.uniform(10, 1000, series)
    t0 = 1.7e9
    elapsed = 0.0
    for step in range(warmup + steps):
        t = t0 + 3600.0 * step
        x = level * (1 + 0.3 * np.sin(2 * np.pi * step / 24) + rng.normal(0, 0.05, series))
        start = time.perf_counter()
        bank.score_learn(slots, x, np.full(series, t))
        if step >= warmup:
            elapsed += time.perf_counter() - start
    return bank.state_bytes(), elapsed / (steps * series)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=30, help="timed windows")
    parser.add_argument("--warmup", type=int, default=10, help="untimed windows first")
    args = parser.parse_args(argv)
    print(f"{args.series} series, {args.steps} timed windows after {args.warmup} warm-up windows")
    print(f"{'detector':<24}{'bytes/series':>14}{'us/point':>10}")
    for name, make in BANKS.items():
        size, per_point = bench(make, args.series, args.steps, args.warmup)
        print(f"{name:<24}{size:>14}{per_point * 1e6:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

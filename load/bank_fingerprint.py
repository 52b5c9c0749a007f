"""Did a change to the sequential banks change a decision? And what does a round of them cost?

    .venv/bin/python load/bank_fingerprint.py                       # one fingerprint per bank and window size
    .venv/bin/python load/bank_fingerprint.py --against OLD/detectors/sequential.py   # CPU a round, side by side

Fingerprints: the four banks of the judge (:class:`PoissonCusumBank`, :class:`BernoulliCusumBank`,
:class:`LatencyCusumBank`, :class:`TailCusumBank`) step 40 series through a seeded synthetic run,
each window on a random nine in ten of them: 4,000 windows of 1 s and 3,500 of 60 s (two days, so
the seasonal buckets and the second-day charts run), with drops, surges, error and tail bursts,
latency steps and a creep, and tail resets. A SHA-256 over every field of every call's ``Evidence``
(and the tail's bound, the latency reference's quantile and ``stopped``) and each bank's final
state rows is printed per bank, with how many rows were at or above ``h``. A restructuring that
keeps the arithmetic prints the same lines; run it from both trees and compare.

``--against FILE``: that ``sequential.py`` (another tree's, importing this tree's
``modelmedic.detectors.base`` and ``special``) and this tree's are loaded side by side and stepped
alternately, 38 series every window, 1 s windows; the thread CPU of each bank a round, the
minimum over ``--repeats`` blocks of 200 windows (the first not counted), so both sides meet the
machine's load alike.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np

from modelmedic.detectors import sequential

SERIES = 40
BANKS = ("throughput", "errors", "latency", "latency_tail")


def make_banks(module: ModuleType) -> dict[str, object]:
    """The judge's four banks at their defaults, from ``module`` (a ``sequential.py``)."""
    return {"throughput": module.PoissonCusumBank(), "errors": module.BernoulliCusumBank(),
            "latency": module.LatencyCusumBank(), "latency_tail": module.TailCusumBank()}


def _regime(rng: np.random.Generator, windows: int) -> np.ndarray:
    """A multiplier per window and series: 1, or one of a few changes for a stretch (12 stretches)."""
    factor = np.ones((windows, SERIES))
    for _ in range(12):
        series, start = rng.integers(SERIES), rng.integers(windows // 4, windows)
        factor[start:start + rng.integers(5, windows // 5), series] = rng.choice([0.0, 0.3, 0.6, 1.5, 3.0, 8.0])
    return factor


def _update(digest: hashlib._Hash, *arrays: np.ndarray) -> None:
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(str(a.dtype).encode())
        digest.update(a.tobytes())


class Window(NamedTuple):
    """One window of the seeded run: what the judge hands each bank (a random nine in ten of the series)."""

    slots: np.ndarray
    t_ms: np.ndarray
    count: np.ndarray
    errors: np.ndarray
    p50: np.ndarray
    p95: np.ndarray
    over: np.ndarray
    """Requests over the tail's bound."""
    reset: np.ndarray | None
    """The tail's resets (two windows in three)."""


EVERY = np.arange(SERIES) * 3 + 1
"""The series' slots, with gaps between them."""


def synthetic_windows(window_s: float, windows: int, seed: int) -> Iterator[Window]:
    """The seeded run of the module docstring: regime changes, a daily cycle, every seventh series creeping."""
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.uniform(np.log(0.02), np.log(60.0), SERIES))
    traffic, failing, slower, tail = (_regime(rng, windows) for _ in range(4))
    daily = 1.0 + 0.5 * np.cos(2 * np.pi * np.arange(windows) * window_s / 86_400.0)
    for w in range(windows):
        rows = np.flatnonzero(rng.random(SERIES) < 0.92)
        slots, t_ms = EVERY[rows], np.full(rows.size, w * window_s * 1000.0 + 1.7e12)
        count = rng.poisson(rate[rows] * window_s * daily[w] * traffic[w, rows]).astype(float)
        errors = rng.binomial(count.astype(np.int64), np.minimum(0.004 * failing[w, rows] ** 2, 0.9)).astype(float)
        median = 80.0 * slower[w, rows] * (1 + 0.0005 * w * (rows % 7 == 0))  # every seventh series creeps
        p50 = np.where(count > 0, median * np.exp(0.1 * rng.standard_normal(rows.size)), np.nan)
        p95 = np.where(count > 0, p50 * np.exp(0.5 + 0.1 * rng.random(rows.size)), np.nan)
        over = rng.binomial(count.astype(np.int64), np.minimum(0.01 * tail[w, rows], 0.9)).astype(float)
        reset = rng.random(rows.size) < 0.02
        yield Window(slots, t_ms, count, errors, p50, p95, over, reset if w % 3 else None)


def fingerprints(window_s: float, windows: int, seed: int) -> list[str]:
    """One line per bank: its fingerprint over the seeded run (module docstring) and its rows at or above h."""
    h = sequential.threshold_for(window_s, 1e-4)
    banks = make_banks(sequential)
    digests, alarms = {name: hashlib.sha256() for name in BANKS}, dict.fromkeys(BANKS, 0)
    for win in synthetic_windows(window_s, windows, seed):
        slots, t_ms, count = win.slots, win.t_ms, win.count
        evidence = {
            "throughput": banks["throughput"].score_learn(slots, count, t_ms, window_s, h, h / 2),
            "errors": banks["errors"].score_learn(slots, win.errors, count, t_ms, window_s, h, h / 2),
        }
        reference = banks["latency"].quantile_ms(slots, banks["latency_tail"].quantile)
        bound = banks["latency_tail"].bound_ms(slots, reference)
        evidence["latency"] = banks["latency"].score_learn(slots, count, win.p50, win.p95, t_ms, window_s, h, h / 2)
        _update(digests["latency"], reference, bound, banks["latency"].stopped(slots))
        evidence["latency_tail"] = banks["latency_tail"].score_learn(slots, win.over, count, reference, t_ms, window_s,
                                                                     h, h / 2, reset=win.reset)
        for name, ev in evidence.items():
            _update(digests[name], *ev)
            alarms[name] += int(np.count_nonzero(ev.cusum >= h))
    lines = []
    for name, bank in banks.items():
        state = bank.rows(EVERY)
        for key in sorted(state):
            digests[name].update(key.encode())
            _update(digests[name], state[key])
        lines.append(f"{window_s:g} s windows, {name}: {digests[name].hexdigest()[:16]} ({alarms[name]:,} rows at or above h)")
    return lines


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _round_cpu(banks: dict[str, object], rng: np.random.Generator, first_window: int, rate: np.ndarray,
               spent: dict[str, float]) -> None:
    """Step ``banks`` through 200 windows of every series, adding each bank's thread CPU to ``spent``."""
    slots, h = np.arange(rate.size), sequential.threshold_for(1.0, 1e-4)
    for w in range(first_window, first_window + 200):
        t_ms = np.full(rate.size, w * 1000.0)
        count = rng.poisson(rate).astype(float)
        errors = rng.binomial(count.astype(np.int64), 0.005).astype(float)
        p50 = 80.0 * np.exp(0.1 * rng.standard_normal(rate.size))
        over = rng.binomial(count.astype(np.int64), 0.01).astype(float)
        clock = time.thread_time()
        banks["throughput"].score_learn(slots, count, t_ms, 1.0, h, h / 2)
        spent["throughput"] += time.thread_time() - clock
        clock = time.thread_time()
        banks["errors"].score_learn(slots, errors, count, t_ms, 1.0, h, h / 2)
        spent["errors"] += time.thread_time() - clock
        clock = time.thread_time()
        reference = banks["latency"].quantile_ms(slots, 0.99)
        banks["latency_tail"].bound_ms(slots, reference)
        banks["latency"].score_learn(slots, count, p50, p50 * 1.6, t_ms, 1.0, h, h / 2)
        banks["latency"].stopped(slots)
        spent["latency"] += time.thread_time() - clock
        clock = time.thread_time()
        banks["latency_tail"].score_learn(slots, over, count, reference, t_ms, 1.0, h, h / 2,
                                          reset=np.zeros(rate.size, dtype=bool))
        spent["latency_tail"] += time.thread_time() - clock


def side_by_side(other: Path, repeats: int, series: int = 38) -> list[str]:
    """CPU a round of each bank, ``other``'s ``sequential.py`` and this tree's, stepped alternately."""
    sides = {"other": make_banks(_load(other, "_other_sequential")), "this tree": make_banks(sequential)}
    rate = np.exp(np.random.default_rng(3).uniform(np.log(1.0), np.log(200.0), series))
    rngs = {name: np.random.default_rng(5) for name in sides}
    blocks: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for block in range(repeats):
        for name, banks in sides.items():
            spent = dict.fromkeys(BANKS, 0.0)
            _round_cpu(banks, rngs[name], block * 200, rate, spent)
            blocks[name].append(spent)
    lines = []
    for name, spent in blocks.items():
        least = {bank: min(s[bank] for s in spent[1:]) / 200 * 1e6 for bank in BANKS}
        lines.append(f"{name}: " + ", ".join(f"{bank} {us:.0f}" for bank, us in least.items())
                     + f"; {sum(least.values()):.0f} us of CPU a round ({series} series)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, metavar="SEQUENTIAL_PY", help="time this tree's banks against it")
    parser.add_argument("--repeats", type=int, default=12, help="blocks of 200 windows a side (--against)")
    args = parser.parse_args(argv)
    lines = (side_by_side(args.against, args.repeats) if args.against
             else fingerprints(1.0, 4000, 1) + fingerprints(60.0, 3500, 2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The throughput bank's null on synthetic traffic: false drops, and the drops it must still find.

    .venv/bin/python load/throughput_null.py                       # per-minute jitter of sd 0.1
    .venv/bin/python load/throughput_null.py --jitter 0 --walk 0.1 # rough()'s half-hour walk
    .venv/bin/python load/throughput_null.py --jitter 0            # Poisson on the sine
    .venv/bin/python load/throughput_null.py --wander-z 0          # the same, the wander off
    .venv/bin/python load/throughput_null.py --sustain 0 --shallow-sustain 0   # counted from the crossing
    .venv/bin/python load/throughput_null.py --jitter 0 --business 2 --seasonality 0.818 --days 5   # business days

``PoissonCusumBank.score_learn`` on 1 s windows, as the judge (``h`` = ``threshold_for(1, 1e-4)``, at most ``h / 2``
a window). Per rate, ``--per`` series, each a daily sine of amplitude ``--seasonality`` (0.6: the trough a quarter
of the peak; with ``--business``, ``load/fleet.py``'s business day instead) with its own phase, times a lognormal
factor of sd ``--jitter`` drawn anew each minute, times an Ornstein-Uhlenbeck walk of the log rate (sd ``--walk``,
``--walk-s`` time constant), Poisson counts. Three copies of each rate path: **null** (false drop episodes, from the
judge's start of one, at ``h`` once its CUSUM left 0 its minimum duration before (``--sustain``,
``--shallow-sustain``: the service's ``throughput_sustain_s`` and ``throughput_shallow_sustain_s``; both 0: from the
crossing), until back under ``RESET h``, per day), **-30%** for an hour and **-90%** for 30 minutes from a random
hour 4-20 of each day (found: a drop firing between the start and 600 s after the end; the delay to it). Seeded;
about a minute a day of traffic on this machine. docs/detection.md, "Busy traffic wanders more than Poisson".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from load.fleet import daily_factor  # noqa: E402

from modelmedic.config import DetectionSettings  # noqa: E402
from modelmedic.detection.judge import MinimumDuration  # noqa: E402
from modelmedic.detectors import PoissonCusumBank  # noqa: E402
from modelmedic.detectors.sequential import RESET, threshold_for  # noqa: E402

DAY_S = 86_400
HOUR_S = 3_600
DROPS = {"-30%": (0.7, 3_600), "-90%": (0.1, 1_800)}


def rate_paths(rates: np.ndarray, hours: int, rng: np.random.Generator, jitter: float, walk: float,
               walk_s: float, seasonality: float = 0.6, business_h: float = 0.0) -> np.ndarray:
    """Per second (seconds x series) of the law in the module's docstring."""
    t = np.arange(hours * HOUR_S)[:, None]
    phase = rng.uniform(0, 2 * np.pi, rates.size)
    minutes = np.exp(jitter * rng.standard_normal((hours * 60, rates.size)) - jitter**2 / 2)
    keep = np.exp(-1.0 / walk_s)
    steps = walk * np.sqrt(1 - keep**2) * rng.standard_normal((t.size, rates.size))
    log_walk = np.empty_like(steps)
    log_walk[0] = walk * rng.standard_normal(rates.size)
    for s in range(1, t.size):  # (a loop over seconds, vectorized over series: a few seconds a day)
        log_walk[s] = keep * log_walk[s - 1] + steps[s]
    day = (daily_factor(seasonality, phase, t * 1000.0, ramp_h=business_h) if business_h
           else 1 + seasonality * np.sin(2 * np.pi * t / DAY_S + phase))
    return rates * day * np.repeat(minutes, 60, axis=0) * np.exp(log_walk - walk**2 / 2)


def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    rates = np.repeat(args.rates, args.per)
    paths = rate_paths(rates, args.days * 24, rng, args.jitter, args.walk, args.walk_s, args.seasonality, args.business)
    starts = {name: rng.integers(4 * HOUR_S, 20 * HOUR_S, (rates.size, args.days)) + np.arange(args.days) * DAY_S
              for name in DROPS}
    t = np.arange(paths.shape[0])[:, None]
    law = [paths]
    for name, (ratio, length) in DROPS.items():
        inside = np.zeros(paths.shape, dtype=bool)
        for d in range(args.days):
            inside |= (t >= starts[name][:, d]) & (t < starts[name][:, d] + length)
        law.append(np.where(inside, paths * ratio, paths))
    lam = np.concatenate(law, axis=1)
    bank = PoissonCusumBank(wander_z=args.wander_z, suspect_learning=args.suspect_learning)
    h = threshold_for(1.0, 1e-4)
    minimum = MinimumDuration.for_throughput(DetectionSettings(throughput_sustain_s=args.sustain,
                                                               throughput_shallow_sustain_s=args.shallow_sustain), bank)
    slots, on = np.arange(lam.shape[1]), np.zeros(lam.shape[1], dtype=bool)
    n = rates.size
    false = np.zeros((n, args.days), dtype=int)
    delay = {name: np.full((n, args.days), np.nan) for name in DROPS}
    for s in range(lam.shape[0]):
        ev = bank.score_learn(slots, rng.poisson(lam[s]).astype(float), np.full(slots.size, s * 1000.0), 1.0, h, h / 2)
        drop = (ev.cusum >= h) & (ev.kind == 0) & (on | (~minimum.unmet(ev, s * 1000) if minimum else True))
        day = s // DAY_S
        false[:, day] += (drop & ~on)[:n]
        on = drop | (on & (ev.cusum >= RESET * h))
        for k, (name, (_, length)) in enumerate(DROPS.items(), start=1):
            st = starts[name][:, day]
            hit = drop[k * n:(k + 1) * n] & (st <= s) & (s <= st + length + 600) & np.isnan(delay[name][:, day])
            delay[name][hit, day] = s + 1 - st[hit]
    shape = f"business days (ramps of {args.business:g} h)" if args.business else "a sine"
    print(f"seed {args.seed}, {args.per} series a rate, {shape}, seasonality {args.seasonality}, jitter {args.jitter} a "
          f"minute, walk {args.walk} ({args.walk_s:g} s), wander_z {args.wander_z}, suspect_learning "
          f"{args.suspect_learning}, h {h:.2f}, minimum {args.sustain:g} s ({args.shallow_sustain:g} s shallow)")
    print("req/s  day  false drops (series / episodes)   " + "   ".join(f"{k} found / median / max s" for k in DROPS))
    for i, r in enumerate(args.rates):
        rows = slice(i * args.per, (i + 1) * args.per)
        for d in range(args.days):
            cells = []
            for name in DROPS:
                got = delay[name][rows, d][~np.isnan(delay[name][rows, d])]
                cells.append(f"{got.size:2d} / {np.median(got) if got.size else np.nan:6.0f} / "
                             f"{got.max() if got.size else np.nan:6.0f}")
            f = false[rows, d]
            head = f"{r:6g} {d + 1:4d}  {np.count_nonzero(f):5d} / {f.sum():4d}"
            print(head + " " * 18 + "       ".join(cells))
    print(f"false drop episodes: {false.sum()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per", type=int, default=10, help="series a rate")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--rates", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0])
    p.add_argument("--jitter", type=float, default=0.1, help="sd of the rate's log, drawn anew each minute")
    p.add_argument("--walk", type=float, default=0.0, help="sd of an Ornstein-Uhlenbeck walk of the log rate")
    p.add_argument("--walk-s", type=float, default=1_800.0, help="the walk's time constant")
    p.add_argument("--wander-z", type=float, default=2.0, help="PoissonCusumBank's wander_z (0: off)")
    p.add_argument("--seasonality", type=float, default=0.6, help="the daily sine's amplitude (0.95: nights at 2.6%%)")
    p.add_argument("--business", type=float, default=0.0, metavar="RAMP_H",
                   help="business days (load/fleet.py daily_factor) with ramps of this many hours (0: the sine)")
    p.add_argument("--suspect-learning", type=float, default=PoissonCusumBank().suspect_learning,
                   help="PoissonCusumBank's suspect_learning (0: the half hours learn under no suspicion)")
    defaults = DetectionSettings()
    p.add_argument("--sustain", type=float, default=defaults.throughput_sustain_s,
                   help="the judge's minimum duration (throughput_sustain_s; 0 and --shallow-sustain 0: from the crossing)")
    p.add_argument("--shallow-sustain", type=float, default=defaults.throughput_shallow_sustain_s,
                   help="a shallow drop's (throughput_shallow_sustain_s)")
    run(p.parse_args())


if __name__ == "__main__":
    main()

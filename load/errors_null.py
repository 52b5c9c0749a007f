"""The errors bank's null on synthetic traffic: false alarms, and the error bursts it must still find.

    .venv/bin/python load/errors_null.py                           # independent errors, 0.01-5 req/s
    .venv/bin/python load/errors_null.py --clump 2                 # errors in clumps of two on average
    .venv/bin/python load/errors_null.py --clump 2 --rates 5 5000 --models 40 --hours 38

``BernoulliCusumBank.score_learn`` on 1 s windows, as the judge (``h`` = ``threshold_for(1, 1e-4)``, at most
``h / 2`` a window; a window only where the model had requests). ``--models`` models, rates log-uniform in
``--rates``, a daily sine of amplitude 0.6 and the fleet's weekends (``load/fleet.py``), each with its phase,
Poisson requests, a usual error rate log-uniform in 0.1-1% (as ``realistic()``). ``--clump`` > 1: errors come
in clumps of geometric size (that mean) within a window, a clump starting at ``rate / clump`` a request (a
client retrying, a restart failing what was in flight). Two fleets on the same rates: **quiet** (alarms: a
warm series crossing ``h``; an alarm lasts until its CUSUM is under ``RESET h``, as an episode) and **burst**
(each model's errors independent at 13% for an hour from a random time 30-36 h in: found when its first alarm
is within it, delay from its start; an alarm elsewhere is false). Seeded; a few minutes for the defaults.
docs/detection.md, "Errors in clumps".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from modelmedic.detectors import BernoulliCusumBank
from modelmedic.detectors.sequential import RESET, threshold_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from load.fleet import START_MS, daily_factor, weekly_factor  # noqa: E402  (the harness's Monday: its days and weekends)

HOUR_S = 3_600
BURST, BURST_S, DEADLINE_S = 0.13, 3_600, 900
BANDS = ((0.01, 0.05), (0.05, 0.2), (0.2, 1.0), (1.0, 5.0), (5.0, 100.0), (100.0, 5000.0))


def errors(rng: np.random.Generator, requests: np.ndarray, rate: np.ndarray, clump: float) -> np.ndarray:
    """Errors among ``requests`` at ``rate`` a request, in clumps of geometric size ``clump`` on average (1: none)."""
    if clump == 1.0:
        return rng.binomial(requests, rate).astype(float)
    clumps = rng.binomial(requests, rate / clump)
    sizes = clumps + rng.negative_binomial(np.maximum(clumps, 1), 1.0 / clump) * (clumps > 0)
    return np.minimum(sizes, requests).astype(float)


def models(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each model's request rate, phase and usual error rate."""
    law = np.random.default_rng(args.seed)
    rates = np.exp(law.uniform(*np.log(args.rates), args.models))
    return rates, law.uniform(0, 2 * np.pi, args.models), np.exp(law.uniform(np.log(0.001), np.log(0.01), args.models))


def fleet(args: argparse.Namespace, law: tuple[np.ndarray, np.ndarray, np.ndarray],
          burst_at: np.ndarray | None) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Every alarm (model, second) of one fleet of :func:`models`' ``law``, and each model's first alarm within its
    burst (s after it)."""
    rates, phase, usual = law
    rng = np.random.default_rng([args.seed, 1 if burst_at is None else 2])
    bank, h = BernoulliCusumBank(), threshold_for(1.0, 1e-4)
    firing, alarms, found = np.zeros(args.models, dtype=bool), [], np.full(args.models, np.nan)
    for second in range(int(args.hours * HOUR_S)):
        t_ms = START_MS + second * 1000
        requests = rng.poisson(rates * daily_factor(0.6, phase, t_ms) * weekly_factor(0.6, phase, t_ms))
        served = np.flatnonzero(requests)
        if not served.size:
            continue
        e = errors(rng, requests[served], usual[served], args.clump)
        if burst_at is not None:
            inside = (second >= burst_at[served]) & (second < burst_at[served] + BURST_S)
            e = np.where(inside, rng.binomial(requests[served], BURST), e)
        t = np.full(served.size, float(t_ms))
        ev = bank.score_learn(served, e, requests[served].astype(float), t, 1.0, h, h / 2)
        over = ev.warm & (ev.cusum >= h * np.where(firing[served], RESET, 1.0))
        for model in served[over & ~firing[served]]:
            alarms.append((int(model), second))
            if burst_at is not None and np.isnan(found[model]) and 0 <= second - burst_at[model] < BURST_S:
                found[model] = second - burst_at[model]
        firing[served] = over
    return alarms, found


def run(args: argparse.Namespace) -> None:
    burst_at = np.random.default_rng([args.seed, 3]).uniform(30 * HOUR_S, 36 * HOUR_S, args.models)
    law = models(args)
    quiet, _ = fleet(args, law, None)
    alarms, found = fleet(args, law, burst_at)
    false = [(m, s) for m, s in alarms if not burst_at[m] <= s < burst_at[m] + BURST_S + DEADLINE_S]
    days = args.models * args.hours / 24
    print(f"{args.models} models, {args.rates[0]}-{args.rates[1]} req/s, {args.hours} h, clumps of {args.clump}, "
          f"seed {args.seed}")
    print(f"false alarms: quiet fleet {len(quiet)} ({len(quiet) / days:.3f} per model-day), burst fleet {len(false)}")
    rates = law[0]
    print("req/s          models  found  within 900 s  median delay s")
    for low, high in BANDS:
        band = found[(rates >= low) & (rates < high)]
        if band.size:
            median = f"{np.nanmedian(band):.0f}" if np.isfinite(band).any() else "-"
            print(f"{low:>6g}-{high:<6g} {band.size:7d} {np.isfinite(band).sum():6d} {(band <= DEADLINE_S).sum():13d} "
                  f"{median:>15}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--rates", type=float, nargs=2, default=(0.01, 5.0), help="log-uniform request rates (req/s)")
    parser.add_argument("--hours", type=float, default=48.0, help="at least 37: the bursts start 30-36 h in")
    parser.add_argument("--clump", type=float, default=1.0, help="mean errors in a clump (1: independent errors)")
    parser.add_argument("--seed", type=int, default=1)
    run(parser.parse_args())


if __name__ == "__main__":
    main()

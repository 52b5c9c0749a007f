"""One throughput incident of the detection harness, replayed many times on ``PoissonCusumBank`` alone.

    .venv/bin/python load/throughput_alone.py --models 40 --hours 48 --seed 1      # smooth seed 1's -30% drop
    .venv/bin/python load/throughput_alone.py --models 40 --hours 48 --seed 5 --seasonality 0.95 --weekend 0.3 --nth 1

A fleet run gives one draw of a model's traffic: a miss there may be bad luck or the bank's design. This builds
``load/detection_harness.py``'s incident fleet from the same options, takes the ``--nth`` entry of ``--kind`` (a
throughput drop or surge of its ``LIBRARY``), and replays its model's rate (``load/fleet.py``'s day and week, times
the incident's magnitude from its start to its end) as ``--runs`` independent Poisson series of 1 s windows, judged
as the judge does (``h`` = ``threshold_for(1, 1e-4)``, at most ``h / 2`` a window). Found: the kind's chart (a drop
or a surge) crossing ``h`` between the incident's start and 600 s after its end. Prints how many were found, within
a third of the deadline and within it, their median delay, and the harness's bound (what the data allow). With
``--after-h H`` the replays go on for H hours after the incident and it also prints how many raised the other chart
(a surge after a drop, a drop after a surge) later than the harness's grace: what the harness counts as a false
anomaly of that model. The fleet's other models, canaries and labels are not replayed: only the bank. About a minute
a day of traffic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from load.detection_harness import (MATCH_GRACE_S, add_shape_arguments, information_bound_s,  # noqa: E402
                                    scenarios, shape_from)
from load.fleet import profiles  # noqa: E402
from modelmedic.detectors import PoissonCusumBank  # noqa: E402
from modelmedic.detectors.sequential import threshold_for  # noqa: E402

GRACE_S = 600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--kind", default="throughput drop -30%", help="a throughput kind's name in LIBRARY")
    parser.add_argument("--nth", type=int, default=0, help="which of that kind's entries (0: the first)")
    parser.add_argument("--runs", type=int, default=200, help="independent replays")
    parser.add_argument("--after-h", type=float, default=0.0,
                        help="hours replayed after the incident, for the other chart's crossings after the grace")
    args = parser.parse_args(argv)
    _, fleet = scenarios(shape_from(args), args.seed)
    truth = [t for t in fleet.truths if t.kind.name == args.kind][args.nth]
    if truth.kind.fleet_kind not in ("throughput_collapse", "surge"):
        parser.error(f"--kind {args.kind!r} is not a throughput kind: this replays PoissonCusumBank only")
    profile = next(p for p in profiles(fleet.spec) if p.model == truth.models[0])
    start_s, end_s = ((t - fleet.start_ms) / 1000 for t in (truth.start_ms, truth.end_ms))
    h = threshold_for(1.0, 1e-4)
    bank, slots, rng = PoissonCusumBank(), np.arange(args.runs), np.random.default_rng(args.seed)
    surge = int(truth.kind.fleet_kind == "surge")
    delay, after = np.full(args.runs, np.nan), np.full(args.runs, np.nan)
    for s in range(int(end_s + max(GRACE_S, args.after_h * 3600))):
        t_ms = fleet.start_ms + s * 1000
        rate = (fleet.spec.seasonal_rate(profile.rate, profile.phase, t_ms)
                * (truth.kind.magnitude if start_s <= s < end_s else 1.0))
        ev = bank.score_learn(slots, rng.poisson(rate, args.runs).astype(float), np.full(args.runs, t_ms), 1.0, h,
                              h / 2)
        first = (start_s <= s < end_s + GRACE_S) & (ev.cusum >= h) & (ev.kind == surge) & np.isnan(delay)
        delay[first] = s - start_s
        other = (s >= end_s + MATCH_GRACE_S) & (ev.cusum >= h) & (ev.kind != surge) & np.isnan(after)
        after[other] = s - end_s
    deadline = truth.kind.deadline_s
    bound = information_bound_s(truth.kind, profile, fleet.spec, truth.start_ms, h)
    found = delay[~np.isnan(delay)]
    print(f"{truth.kind.name} on {profile.model} ({profile.rate:.2f} req/s), {start_s / 3600:.2f} h in, "
          f"{(end_s - start_s) / 3600:.2f} h long; bound {bound:.0f} s, deadline {deadline:.0f} s")
    print(f"found {found.size} of {args.runs}; within {deadline / 3:.0f} s {np.count_nonzero(found <= deadline / 3)}, "
          f"within {deadline:.0f} s {np.count_nonzero(found <= deadline)}; median delay "
          f"{np.median(found) if found.size else float('nan'):.0f} s")
    if args.after_h:
        late = after[~np.isnan(after)]
        print(f"a {'drop' if surge else 'surge'} more than {MATCH_GRACE_S:.0f} s and less than {args.after_h:g} h after "
              f"the end: {late.size} of {args.runs}; median {np.median(late) if late.size else float('nan'):.0f} s "
              "after the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The throughput bank's overdispersion ``phi`` (``PoissonCusumBank``) is the traffic's, not an incident's.

``phi`` divides every chart's evidence, and it is learned from each window's Pearson residual. It learned the
incidents too (ten times slower under suspicion, as the level), and each chart then needed that much more evidence
for hours after (docs/detection.md, session 15). Synthetic Poisson windows of 1 s (the judge's default), seeded.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import threshold_for

WINDOW_S = 1.0
H = threshold_for(WINDOW_S, 1e-4)
MONDAY_MS = 1_767_571_200_000


def _phi_after(rate: float, series: int, seed: int, healthy_s: int, incident_s: int, ratio: float) -> np.ndarray:
    """Each series' ``phi`` at the end of ``incident_s`` of its rate times ``ratio``, after ``healthy_s`` at ``rate``."""
    rng = np.random.default_rng(seed)
    bank, slots = PoissonCusumBank(), np.arange(series)
    for t_s in range(healthy_s + incident_s):
        lam = np.full(series, rate * WINDOW_S * (ratio if t_s >= healthy_s else 1.0))
        bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(series, MONDAY_MS + t_s * 1000.0), WINDOW_S,
                         H, H / 2)
    return bank._f[slots, PoissonCusumBank._COLUMNS.index("phi")]


def test_phi_does_not_learn_a_drop() -> None:
    # 3 req/s, an hour at a tenth of it after an hour of its usual rate: phi was 1.14-1.18 at the drop's end
    # before it froze under a drop's suspicion; now 1.01-1.05, what it was when the drop began.
    phi = _phi_after(3.0, 6, seed=42, healthy_s=3600, incident_s=3600, ratio=0.1)
    assert np.all(phi < 1.1), phi.tolist()


@pytest.mark.xfail(strict=True, reason="phi learns a surge: 1.55-1.59 after an hour of x3 at 1 req/s (1.00-1.03 before "
                   "it). Frozen under the surge's suspicion it stays at 1.01-1.03, but then 4 and 3 of 200 series of "
                   "test_throughput_first_day.py's test_a_surge_that_ended_is_not_read_as_a_drop raise a false drop "
                   "after a first-day surge (a level 1.5x above the rate in the decline, which the inflated phi masked)")
def test_phi_does_not_learn_a_surge() -> None:
    phi = _phi_after(1.0, 6, seed=41, healthy_s=3600, incident_s=3600, ratio=3.0)
    assert np.all(phi < 1.2), phi.tolist()


def test_phi_sees_batches_at_the_lowest_rates() -> None:
    # 0.05 req/s in 1 s windows (warm from its first hours), requests in batches (geometric, 2 on average: a dispersion of 3). With the residual
    # bound at 50 alone phi settled under 1 (so at 1.0): a batch of two is a residual of about 76. Poisson counts stay ~1.
    rng = np.random.default_rng(43)
    series, rate = 20, 0.05
    bank, slots = PoissonCusumBank(), np.arange(2 * series)
    for t_s in range(6 * 3600):
        batches = rng.poisson(rate / 2, series)
        batched = np.array([rng.geometric(0.5, k).sum() if k else 0 for k in batches], dtype=float)
        x = np.concatenate([batched, rng.poisson(rate, series).astype(float)])
        bank.score_learn(slots, x, np.full(slots.size, MONDAY_MS + t_s * 1000.0), WINDOW_S, H, H / 2)
    phi = bank._f[slots, PoissonCusumBank._COLUMNS.index("phi")]
    assert np.median(phi[:series]) > 1.6 and np.median(phi[series:]) < 1.2, phi.round(2).tolist()

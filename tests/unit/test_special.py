"""modelmedic.detectors.special against scipy.special, over the arguments the detectors pass.

scipy is a test dependency for this comparison only (pyproject's ``test`` extra); the product
imports none of it. Tolerances are what the functions meet, measured: the C library's
erf/erfc and scipy's agree to ~1e-16 where the value is large and ~6e-14 of the value at 1e-289;
the binomial CDF loses ~1e-9 of its value at 1e5 requests a window (its log-beta front factor is
a difference of numbers near 1e6), scipy's likewise approximates.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special as reference

from modelmedic.detectors import special

RNG = np.random.default_rng(18)
NORMAL = 1e-290
"""Values below this are denormal-adjacent: there the two libraries differ in the last digits kept."""


def close(ours: np.ndarray, theirs: np.ndarray, rtol: float, atol: float = 0.0) -> None:
    """Equal where scipy's value is a normal float (or both non-finite alike), to ``rtol``."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape
    same_special = (np.isnan(ours) & np.isnan(theirs)) | (ours == theirs)
    judged = ~same_special & (np.abs(theirs) >= NORMAL)
    np.testing.assert_allclose(ours[judged], theirs[judged], rtol=rtol, atol=atol)
    tiny = ~same_special & (np.abs(theirs) < NORMAL)
    assert np.all(np.abs(ours[tiny]) < 1e-280), "a value scipy underflows must be tiny here too"


def test_erf_and_erfc_over_the_z_scores_and_tails_the_banks_pass():
    """EwmaBank and ZBank pass ``z / sqrt 2`` of any sign, CalibratedBank ``|z| / sqrt 2`` up to 26."""
    x = np.concatenate([np.linspace(-40.0, 40.0, 40_001), RNG.normal(0.0, 5.0, 10_000),
                        [0.0, -0.0, 1e-300, np.inf, -np.inf, np.nan]])
    close(special.erf(x), reference.erf(x), rtol=1e-15)
    close(special.erfc(x), reference.erfc(x), rtol=1e-13)
    tail = np.linspace(0.0, 26.0, 26_001)
    close(special.erfc(tail), reference.erfc(tail), rtol=1e-13)


def test_log_ndtr_over_the_ensembles_arguments_and_far_tails():
    """EnsembleBank passes ``-|z|`` and ``-(short - mean) / spread`` (any sign, any size)."""
    x = np.concatenate([np.linspace(-2000.0, 40.0, 204_001), RNG.normal(0.0, 10.0, 10_000),
                        [-20.0, -20.0 - 1e-12, -19.999, 0.0, -0.0, 6.0, np.inf, -np.inf, np.nan, -1e6]])
    below = x <= 6.0
    close(special.log_ndtr(x[below]), reference.log_ndtr(x[below]), rtol=1e-13)
    # above 6 the value is -Phi(-x), whose relative condition number is ~x^2: the last bit of
    # x / sqrt 2 (or x * sqrt 0.5, scipy's way) moves it by ~1e-13 at x = 20
    close(special.log_ndtr(x[~below]), reference.log_ndtr(x[~below]), rtol=1e-12)


def test_ndtri_over_plotting_positions_and_fixed_quantiles():
    """LatencyCusumBank: ``(ceil(m q) - 0.375) / (m + 0.25)`` for m up to 4,096 draws, and
    fixed quantiles; also the extremes of (0, 1)."""
    m = np.arange(1.0, 4097.0)
    positions = np.concatenate([(np.ceil(m / 2) - 0.375) / (m + 0.25), (np.ceil(0.95 * m) - 0.375) / (m + 0.25)])
    p = np.concatenate([positions, np.logspace(-300, -1e-16, 5_000), 1.0 - np.logspace(-16, -1, 1_000),
                        RNG.random(10_000), [0.5, 0.95, 0.99, 0.999]])
    close(special.ndtri(p), reference.ndtri(p), rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError):
        special.ndtri(np.array([0.5, 1.0]))


@pytest.mark.parametrize("df", [*range(1, 60), 99, 100, 255, 256, 999])
def test_chdtrc_for_whole_degrees_of_freedom(df):
    """The G-test's survival function: ``k - 1`` degrees of freedom for k used bins."""
    for x in np.concatenate([[0.0, 1e-300], np.logspace(-6, 4, 121), [df - 1.0, float(df), df + 1.0]]):
        ours, theirs = special.chdtrc(df, float(x)), float(reference.chdtrc(df, x))
        if theirs >= NORMAL:
            assert ours == pytest.approx(theirs, rel=1e-12), (df, x)
        else:
            assert ours < 1e-280, (df, x)


def test_chdtrc_refuses_fractional_degrees_of_freedom():
    with pytest.raises(ValueError, match="whole number"):
        special.chdtrc(2.5, 1.0)  # type: ignore[arg-type]
    assert special.chdtrc(3, -1.0) == 1.0 and np.isnan(special.chdtrc(3, float("nan")))


def test_bdtr_over_window_counts_and_error_rates():
    """BinomialRateBank: ``k = errors - 1`` of ``n`` requests a window, at a learned rate >= 0.5%."""
    n = np.concatenate([RNG.integers(0, 60, 10_000), RNG.integers(0, 5_000, 10_000), RNG.integers(0, 100_000, 2_000)])
    k = np.floor(RNG.random(n.size) * (n + 1))
    p = RNG.random(n.size) * RNG.choice([1.0, 0.1, 0.01], n.size)
    small = n < 5_000
    close(special.bdtr(k[small], n[small], p[small]), reference.bdtr(k[small], n[small], p[small]), rtol=1e-10)
    close(special.bdtr(k, n, p), reference.bdtr(k, n, p), rtol=1e-8)
    edges = special.bdtr(np.array([0, 3, 10, 12, 0]), np.array([0, 10, 10, 10, 10]), np.array([0.5, 0.0, 0.3, 0.3, 1.0]))
    np.testing.assert_array_equal(edges, [1.0, 1.0, 1.0, 1.0, 0.0])

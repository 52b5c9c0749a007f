"""Request counts of clients that send in batches, as ``load/fleet.py``'s ``rough()`` does."""

from __future__ import annotations

import numpy as np


def batched(rng: np.random.Generator, batches: np.ndarray) -> np.ndarray:
    """The requests in ``batches`` batches per series, each of a geometric size, two on average (three times
    Poisson's variance): the sum of ``k`` geometric sizes is ``k`` plus a negative binomial count of failures,
    one draw per series instead of one per batch."""
    return (batches + np.where(batches > 0, rng.negative_binomial(np.maximum(batches, 1), 0.5), 0)).astype(float)

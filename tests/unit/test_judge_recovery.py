"""An episode ends on evidence, not on quiet: a sparse series whose CUSUM hovers about ``h`` is
one episode, not a firing/recovered pair per request.

At 0.5 requests a window (1 s windows: most of them empty) a release failing 5% of its requests
against a usual 1% keeps the errors CUSUM near ``h``: a few successful requests put it just under,
the empty windows after them counted as recovery, and the next error fired again. Measured on
seeds 0-5 with the end at ``h`` and the cap at ``1.5 h``: 1, 5, 3, 5, 1 and 8 records (five of
six seeds flapped); with the end at ``0.75 h`` and the cap at ``1.25 h``: one firing record on
each, and one recovery on seed 5 that never fires again.
"""

from __future__ import annotations

import pytest
from test_judge import PROD, run

from modelmedic.config import DetectionSettings

USUAL = {PROD: (0.5, 20.0, 0.01)}
BAD_RELEASE = {PROD: (0.5, 20.0, 0.05)}


@pytest.mark.parametrize("seed", range(6))
def test_a_sparse_error_burst_is_one_episode(seed: int) -> None:
    records = run([(2000, USUAL), (4000, BAD_RELEASE)], seed, DetectionSettings())
    states = [a.state for _, a in records if a.kind == "errors"]
    assert states[:1] == ["firing"] and states.count("firing") == 1, states

"""A prediction-drift alarm's message states the rule it met: the window it reports at the onset is
one whose PSI reached the limit with a small enough p-value (it once reported the window with the
lowest p-value, whose PSI could be under the limit: "PSI 0.15 >= 0.25")."""

from __future__ import annotations

import numpy as np
import pytest

from modelmedic.detectors.drift import PredictionDrift


@pytest.mark.parametrize("seed", range(40))
def test_the_onset_reports_a_window_that_met_the_alarm_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    drift = PredictionDrift(reference_size=200, test_interval_s=10)  # 2.5 predictions a second: tested every 25
    for i, x in enumerate(rng.normal(0.0, 1.0, 200 + 400)):
        assert drift.observe(float(x), i / 2.5) is None, "no alarm before the shift"
    onsets = [d for i, x in enumerate(rng.normal(0.8, 1.0, 2000), 600)
              if (d := drift.observe(float(x), i / 2.5)) is not None]
    assert onsets, "a 0.8-spread shift is flagged (0.6 is not always, against a reference of 200 at 5.8e-9)"
    evidence = onsets[0].evidence
    assert evidence["psi"] >= drift.psi_threshold and evidence["p_value"] < drift.alpha, onsets[0].message

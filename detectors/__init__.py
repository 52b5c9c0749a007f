"""Online anomaly detectors behind one small protocol (see :mod:`modelmedic.detectors.base`)."""

from modelmedic.detectors.base import Detector, OneSeries, SeriesBank, ZBank, replay_lockstep, replay_series
from modelmedic.detectors.calibrated import CalibratedBank
from modelmedic.detectors.changepoint import CusumBank
from modelmedic.detectors.ensemble import EnsembleBank
from modelmedic.detectors.ewma import EwmaBank
from modelmedic.detectors.robust import RobustBank
from modelmedic.detectors.seasonal import SeasonalBank
from modelmedic.detectors.sequential import BernoulliCusumBank, LatencyCusumBank, PoissonCusumBank, TailCusumBank


def default_bank() -> SeriesBank:
    """The detector the detection plane uses for every window metric unless configured otherwise.

    :class:`CalibratedBank` since it beat :class:`EnsembleBank` leave-one-category-out
    (docs/detection.md, ``load/nab_loo.py``).
    """
    return CalibratedBank()


__all__ = [
    "Detector",
    "OneSeries",
    "SeriesBank",
    "ZBank",
    "CalibratedBank",
    "CusumBank",
    "EnsembleBank",
    "EwmaBank",
    "RobustBank",
    "SeasonalBank",
    "BernoulliCusumBank",
    "LatencyCusumBank",
    "PoissonCusumBank",
    "TailCusumBank",
    "default_bank",
    "replay_lockstep",
    "replay_series",
]

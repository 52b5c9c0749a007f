"""Online anomaly detectors behind one small protocol (see :mod:`modelmedic.detectors.base`)."""

from modelmedic.detectors.base import Detector, OneSeries, SeriesBank
from modelmedic.detectors.ewma import EwmaBank


def default_bank() -> SeriesBank:
    """The detector the detection plane uses for every window metric unless configured otherwise."""
    return EwmaBank()


__all__ = ["Detector", "OneSeries", "SeriesBank", "EwmaBank", "default_bank"]

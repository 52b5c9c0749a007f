"""The quality monitor's settings live in the one Settings model, are validated there, and reach every
partition's monitor the plane builds."""

from __future__ import annotations

import pytest

from modelmedic.config import QualitySettings, Settings, load_settings
from modelmedic.detection import plane as detection
from modelmedic.detection.quality import QualityMonitor
from modelmedic.errors import ConfigError
from modelmedic.testing import offline_plane


async def no_snapshots(*args: object, **kwargs: object) -> dict:
    return {}


async def test_the_plane_builds_each_partitions_monitor_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMEDIC_QUALITY__DRIFT_WINDOW", "500")
    monkeypatch.setattr(detection, "read_compacted", no_snapshots)  # a fresh start: no snapshot to restore
    settings = load_settings(quality={"max_models": 3, "canary_expected_rate": 0.05, "idle_recover_ms": 7000},
                             detection={"quality_sample_every": 2})
    plane = offline_plane(settings, partitions=0)
    await plane._restore([0, 1])
    for p in (0, 1):
        monitor = plane.parts[p].quality
        assert isinstance(monitor, QualityMonitor)
        assert (monitor.max_models, monitor.canary_expected_rate, monitor.drift_window) == (3, 0.05, 500)
        assert (monitor.idle_recover_ms, monitor.label_sample_every) == (7000, 2)
        assert monitor.label_warmup == QualitySettings().label_warmup, "the others keep their defaults"
        assert all(hasattr(monitor, name) for name in QualitySettings.model_fields), "every setting reaches it"


def test_defaults_learn_the_canary_rate_and_derive_the_idle_times() -> None:
    monitor = QualityMonitor(60_000, Settings().quality)
    assert monitor.canary_expected_rate is None, "learned per model, as the plane always did"
    assert monitor.series_ttl_ms == monitor.label_horizon_ms
    # Five windows, but never under 15 minutes: a low-traffic model's quiet gaps are not the end of a version.
    minute = 60_000
    assert [QualityMonitor(size, Settings().quality).idle_recover_ms for size in (1000, minute, 10 * minute)] == [
        15 * minute, 15 * minute, 50 * minute]


@pytest.mark.parametrize(("quality", "named"), [
    ({"false_alarms_per_day": 0}, "quality.false_alarms_per_day"),
    ({"canary_expected_rate": 1.5}, "quality.canary_expected_rate"),
    ({"drift_bins": 1}, "quality.drift_bins"),
    ({"drift_min_live": 2000}, "drift_min_live=2000 exceeds drift_window=1000"),
    ({"canary_min_pairs": 300}, "canary_min_pairs=300 exceeds canary_warmup=200"),
    ({"max_modles": 3}, "quality.max_modles"),
])
def test_a_bad_setting_fails_at_start_naming_the_field(quality: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(quality=quality)


def test_every_quality_setting_is_documented() -> None:
    undocumented = [name for name, field in QualitySettings.model_fields.items() if not field.description]
    assert undocumented == []

"""Ids of predictions that left the label join are kept one ``label_horizon_ms``, not only up to a count, and the
monitor's sizes are kept as it goes (no walk over every model a checkpoint).

OLD_TREE is the snapshot tree (``detection/snapshots.py``: msgpack, zlib, base64) of a monitor written by the code
of c2b9c7f, whose ``_judged`` held bare flags (no time) and which counted versions model by model: six predictions
of two models ("m0", "m1", version "1.0", ids r0-r5 a second apart from T0), labels for r2, r3 and r4 a minute
later, horizon one hour.
"""

from __future__ import annotations

import base64
import zlib

import msgspec

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import _from_tree
from modelmedic.events import InferenceEvent, LabelEvent

T0 = 1_700_000_040_000
HOUR = 3_600_000
OLD_TREE = (
    "eNrtV0tonEUcn00DDQVB0FIUUUFEUVwbHz2JCSiISEu8eB1nv282meZ7OfNt0o0HI6iXejDdqOgp5LG7SfbRJK1a6uEj6SGyjRF6KpRS"
    "PYgoiEdP6n+em1gSq6h48Lvs/B/zf/7+M7OVg1cfDWOfBiH1mZf3aUq9lMVR/rUSCVhazr+sf4/HEUtjfh291BpnkR+PY8EmKA7F1vev"
    "rgakQAMsSJgEFNMxysu5cx6JCC9jeioBg9THnKQ0WzHchLOYK1Zn4MJH8vu4aUQh4cMs6gws7mbTYhHsOPaaYQegTZ3wCy08a4RpHFBO"
    "Ig+c3EDq+9z5jwukwGRiO7VMKKtGq8CI2Mt2yCKcEMbFIRvhOOFhKbm82TL0yRhUdH1caqdwQiOfRcNbJ+4/VySBoJhACqEAPsc+KXcG"
    "7j72zQ/3PPdYQ9fUVmN64usXWne+brg2Jhuv0QV/cSn14pCKe9ua100Omc+YsNGe1eRIzNlELOP9Eh37cXLFeu8GvDHUpiJlIfTMbW46"
    "ToFF4tBFR3qAmQK0F4DklBtOOkwSF3vb56yYYk6LlFOIE/Q0R6Ns68B3LU3L7AI2Rv0lTSuPy3qtIHfXeU2k4AezKKV8jAAoO4MndOLN"
    "RDCcjnAqRuLA7wx8pdlLMkk1AZB67p2ZhqTBnoDYRV+b+QBpTr0YWKo6t12caQrKGRU4TQNbsHqRkrQEtjfW7Eq1FKIupfSZVcfckWjb"
    "MV2uK47l0m06lsq40TUvmEviM8fdK/s1n6QEm6HGhZI/TAFAb2lY7RYadA326Z3nuzHtqMzWQ7d/0hXQlDMP67KAZMELYm80q5m6vt87"
    "Gx6tHLz6wL4HDT4upafr1sObc/15uevB/Xe9otXfreohy+z4GTMzVQVlkVUlDnHU01C/XsyhqSlaUhTlPOZuQhYUjsDzIzd5jrnIK2l+"
    "iEu2DOV5SV9Hhxdda7OWW6pT8vJm1XW47ho7r/q5ByoXNKQXpdQLKOFuYPY/Ntp79X+BBMkI6TxbmH/8g/vKF5bg5BR6Vjq//qRV5iU4"
    "s7qd+GmEenI1iX0apVOohguyqWIK1fUKRxW1SeLQlm4WJ503fjYeVZqoqkNdr9vxzxaguTSdrKkIQrGNUO709rd33KhCsUlZXEOHtYEe"
    "tOtrKLECoTpV6wUiaMAimi26Uy5bNt1Xt81NHqD4stPUX6/pAy46sGzuLga7jV7vYC0dYVFEfdQyC1ygRdiHmpZW+lcym3bY/x+Bd+5/"
    "eN8yvHOo59+D95HN38M79zfD+8jmrcG77+E/C+8aLjIOJZts4B1vmz/G7pCu9NtVfVFCUnMeSeDpMxfF46gORmWPxPag8VNNiDdK/Uu5"
    "95axjvsv+VEXsvK0MSQ9mbx/Gex6tINuPb5YOXMG7qhZfnTayeR8onXJ75/l/dOuepKfs/ynp131Jb9nvYpTGAbxTxanhk/K69v/sLeS"
    "U0E/kckFRPNkZjhPZcvdl4aY6l3CFk2KsFgFouZxuMWpX0FqqzqUpDG5mJfPSTkacLHDRE+2zMLAZbJp6d1w0U9Kgf1SEjAPjKOm4cQc"
    "hjRCLUPCfwPGJQztBh4niaS7/x203NBWvpa400lgMcr0JvMoo2NM/t/YrWQBbwMJmRBAfmrIUiSBBolYvd8AJXxcdA=="
)


def _monitor() -> QualityMonitor:
    return QualityMonitor(60_000, QualitySettings(label_horizon_ms=HOUR), clock=None)


def _predict(mon: QualityMonitor, model: str, rid: str, ts: int, version: str = "1.0") -> None:
    mon.observe_inference(InferenceEvent(model, version, "production", rid, ts, 5.0, True, 1))


def _counts(mon: QualityMonitor) -> tuple[int, int, int]:
    return mon.labels_duplicate, mon.labels_missed, mon.labels_orphan


def test_a_judged_id_is_forgotten_one_horizon_after_it_left_the_join() -> None:
    mon = _monitor()
    _predict(mon, "m", "r1", T0)
    mon.observe_label(LabelEvent("m", "r1", T0 + 60_000, 1))
    mon.observe_label(LabelEvent("m", "r1", T0 + 60_000 + HOUR - 1, 1))  # within the horizon: a duplicate
    assert _counts(mon) == (1, 0, 0) and mon.sizes()["label_judged"] == 1
    mon.poll(T0 + 60_000 + HOUR + 60_000)  # a horizon after it left: the id is gone
    assert mon.sizes()["label_judged"] == 0
    mon.observe_label(LabelEvent("m", "r1", T0 + 60_000 + HOUR + 60_000, 1))  # as late as an expired prediction's
    assert _counts(mon) == (1, 0, 1)


def test_a_lookup_does_not_find_an_id_older_than_the_horizon_before_a_poll_forgets_it() -> None:
    mon = _monitor()
    _predict(mon, "m", "r1", T0)
    mon.observe_label(LabelEvent("m", "r1", T0 + 1000, 1))
    mon.observe_label(LabelEvent("m", "r1", T0 + 1000 + HOUR + 1, 1))
    assert _counts(mon) == (0, 0, 1)


def test_the_versions_count_follows_versions_created_and_forgotten() -> None:
    mon = QualityMonitor(60_000, QualitySettings(label_horizon_ms=HOUR, max_models=3, max_versions=2), clock=None)
    for i in range(500):
        _predict(mon, f"m{i % 5}", f"r{i}", T0 + 1000 * i, version=f"{i % 7}")
        assert mon.sizes()["versions"] == sum(len(m.versions) for m in mon._models.values())
    assert mon.series_evicted > 0
    mon.poll(T0 + 500_000 + HOUR + 60_000)  # every model stopped serving a horizon ago: forgotten
    assert mon.sizes()["versions"] == mon.sizes()["models"] == 0


def test_a_snapshot_written_before_judged_ids_expired_restores_and_they_expire() -> None:
    mon = _from_tree(msgspec.msgpack.decode(zlib.decompress(base64.b64decode(OLD_TREE))), [])
    assert mon.sizes()["versions"] == 2 and mon.sizes()["label_judged"] == 3
    at = T0 + 60_000 + 2000  # the last label's time: the restored ids left then at the latest
    mon.observe_label(LabelEvent("m0", "r2", at + HOUR - 1, 1))
    assert _counts(mon) == (1, 0, 0)
    _predict(mon, "m1", "r9", at + 120_000)
    assert mon.sizes()["versions"] == 2
    mon.poll(at + HOUR + 60_000)
    assert mon.sizes()["label_judged"] == 0 and mon.sizes()["versions"] == 1  # m0 stopped serving a horizon ago
    mon.observe_label(LabelEvent("m1", "r3", at + HOUR + 60_000, 1))
    assert _counts(mon) == (1, 0, 1)

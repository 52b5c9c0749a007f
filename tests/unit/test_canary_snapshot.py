"""A canary detector snapshotted before its four CUSUMs were flattened into lists restores and carries on.

``CanaryDivergence`` kept four ``WindowedCusum`` objects (``_rate``, ``_large``, ``_up``, ``_down``); it now keeps
their numbers in one list each (``_cusums``). OLD_TREE is the snapshot tree (``detection/snapshots.py``,
msgpack, zlib, base64) of a detector fed the first 330 pairs of ``_pairs()`` by the code of 1271951, raised
by the bias that starts at pair 300.
"""

from __future__ import annotations

import base64
import random
import zlib

import msgspec

from modelmedic.detection.snapshots import _from_tree, _to_tree
from modelmedic.detectors.quality import CanaryDivergence

OLD_TREE = (
    "eNrVVF9IFEEY36NAsECQwJCEqF6SFJEK+8duGgVCmS9lRExzt3PX1O7sNrvr3SVEBR32lHFGfzDCjt3TtHqpoAe5Qw2UOYmCIjPK"
    "pF7yJSjqKWx297zESnwK/F7m+775/b6Z3/cNkywar1I1GSkqknGoWkYmCpkaNapPW1DBZry6ARJI43twK6IRRELonbD2HorpHIVk"
    "QKGJsnd1ijXq+Ux8csO1mw4KhzmEib1+3GtqCqKQ85k4KXjmqJBGMClA+hUeIzBLHPWzj3SqBWEQu3cBc4rkz+kLYmjM59hGCCoo"
    "+zAMFQMByOuqBtARBTKMM7F869T0moYqxzCRDgwmHfCv06tiAnSIqVHsRDnD0nMjPW7O12We+bDv/qq2nigmshadw+tTYYwXJzIm"
    "kYAdVLTQqdyIDU5qmCSLxjcs2FvQyFGIJlKmqfy9YDrvXFmeIlqUzXzxMWk+AUyRLKRlquk6d3qAgiAlSB5KAb2Gibd2rR7f8Thm"
    "A0WhRlJIBpIBJr5P1E5cHx5kmf6OS32j54rd3PMHK+q7sitZpqvyctnxrwd95DfpdcvZMptlnjVPPR24XermPu9NvGyW61hm4ESq"
    "9vybSdtrDRdZuaDIw17HkNxgGZbabofchZPWLfzqXNRFW0GtiHempq1zOLFzzG6FioWYkDfbm+ygTS0CiJB2F04qbP85KsfPMMns"
    "8OIU702hF92xArObBPJFveX3hgO8N7rkJeeHuhjJKWDp/19vIfT0DvlXqyjolSq3ZOo//li/SL3i9IxnXK/41vwkbizfVNBbkdc7"
    "W9IGnE6W+oSzy/6teP6EbWDGdeQQSw0i6vhf4FigsRfI2IARilDAc03v35W2tTe1HKrL2ID/y3KnwIFMOoK1TMn+SSZ9P3rn2DXz"
    "Fe8hDofdzd1MtEFNUzr7gkmlmye2l/wsSwOKQoiYV4XcSCB3QfgFq8OtUg=="
)
FED = 330


def _pairs() -> list[tuple[float, float, float]]:
    """600 numeric pairs about a minute apart: healthy, then ~0.5 prediction spreads higher (pairs 300-419), then
    healthy again (seeded)."""
    r = random.Random(14)
    out = []
    for i in range(600):
        p = round(r.gauss(100.0, 15.0), 3)
        out.append((p, round(p + r.gauss(0.0, 0.5) + (7.5 if 300 <= i < 420 else 0.0), 3), 60.0 * i + 30.0 * r.random()))
    return out


def _detector() -> CanaryDivergence:
    return CanaryDivergence(prior_rate=0.1, window_s=60.0, max_pending=1)


def test_a_detector_snapshotted_with_windowed_cusums_restores_and_decides_as_one_never_interrupted() -> None:
    restored = _from_tree(msgspec.msgpack.decode(zlib.decompress(base64.b64decode(OLD_TREE))), [])
    live = _detector()
    pairs = _pairs()
    for p, c, ts in pairs[:FED]:
        live.observe_pair(p, c, ts)
    assert restored.anomalous and restored.decision() == live.decision()
    states = set()
    for p, c, ts in pairs[FED:]:
        assert restored.observe_pair(p, c, ts) == live.observe_pair(p, c, ts)
        assert restored.decision() == live.decision()
        states.add(live.decision().state)
    assert states == {"anomalous", "ok"}  # it was raised and it recovered


def test_a_detector_round_trips_through_its_snapshot_tree() -> None:
    live = _detector()
    pairs = _pairs()
    for p, c, ts in pairs[:FED]:
        live.observe_pair(p, c, ts)
    restored = _from_tree(_to_tree(live, []), [])
    assert _numbers(restored) == _numbers(live)
    for p, c, ts in pairs[FED:]:
        assert restored.observe_pair(p, c, ts) == live.observe_pair(p, c, ts)
    assert restored.decision() == live.decision() and _numbers(restored) == _numbers(live)


def _numbers(detector: CanaryDivergence) -> dict:
    """A detector's snapshot state but its join (an object, equal by identity only)."""
    return {k: v for k, v in detector.__getstate__().items() if k != "_join"}

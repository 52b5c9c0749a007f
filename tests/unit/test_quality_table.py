"""The quality monitor's native bookkeeping (``QualityTable``, ``native/src/quality.rs``) against its Python.

``QualityMonitor.observe_sampled`` lets the table do the rows whose whole work is bookkeeping and hands the
others to ``_observe_row``, the loop body every row went through before. The reference here is the same
monitor with every row handed to ``_observe_row`` (:func:`_every_row_in_python`): both are fed the same seeded
stream (thinning in a half-full label join, mirrored models and their twins, canaries before their twin,
label and canary expiry, eviction over ``max_models``, slots handed to other series, failed requests,
classes, probability vectors, drift references fitted and counted), batch by batch, and their snapshots,
records and counters must be equal after every batch. Separate processes check the same against the monitor
of before (``load/quality_decisions.py``: the sha256 of every decision, docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import random

import pytest

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import decode_snapshot, encode_snapshot
from modelmedic.events import LabelEvent

T0 = 1_767_225_600_000
MODELS = 24
SETTINGS = QualitySettings(label_max_pending=40, label_horizon_ms=90_000, max_models=18, drift_reference=12,
                           drift_every=5, drift_min_live=10, drift_window=40, drift_test_interval_s=5.0,
                           canary_join_ms=4_000, canary_max_pending=30, canary_warmup=20, canary_min_pairs=5,
                           label_warmup=10, label_min_outcomes=5, max_versions=3, drift_reference_s=0.0)


def _monitor(settings: QualitySettings = SETTINGS) -> QualityMonitor:
    return QualityMonitor(1_000, settings, label_sample_every=1, clock=None)


def _counting(method: str, settings: QualitySettings = SETTINGS) -> tuple[QualityMonitor, list]:
    """A monitor that lists the first argument of each call of its ``method`` (which rows Python did), and the list."""
    calls: list = []
    inner = getattr(QualityMonitor, method)

    class Counting(QualityMonitor):
        pass

    def counted(self: QualityMonitor, first: object, *rest: object) -> None:
        calls.append(first)
        inner(self, first, *rest)

    setattr(Counting, method, counted)
    return Counting(1_000, settings, label_sample_every=1, clock=None), calls


def _every_row_in_python(mon: QualityMonitor, rows: list, names: list) -> None:
    """``observe_sampled`` as before the table: every row through the Python loop body."""
    scale = mon.label_horizon_ms * max(len(mon._models), 1) / mon.label_max_pending
    for row in rows:
        mon._observe_row(row, names, scale)


def _prediction(model: int, r: random.Random) -> object:
    """Model 0 answers probability vectors, 1 classes, 2 ints, the rest floats (a few answers missing)."""
    if r.random() < 0.03:
        return None
    if model == 0:
        p = r.random()
        return [p, 1.0 - p]
    if model == 1:
        return r.choice(["a", "b", "c"])
    if model == 2:
        return r.randrange(5)
    return round(r.gauss(10.0 + model, 2.0), 3)


def _label(model: int, r: random.Random) -> object:
    """A label for one of model ``model``'s requests (a class index for the vectors' model)."""
    if model == 0:
        return r.randrange(2)
    label = _prediction(model, r)
    return 0.0 if label is None else label


def _stream(seed: int, batches: int = 160):
    """(names, [(rows, labels, poll_at, active)]): ``names`` is the slots' list, changed in place between
    batches as the decoder does (a slot handed to another series gets a new tuple)."""
    r = random.Random(seed)
    names: list = [(f"m{m}", "1", "production") for m in range(MODELS)]
    names += [(f"m{m}", "0", "canary") for m in range(0, MODELS, 3)]
    names += [("m5", "9", "shadow")]
    canary_slot = {m: MODELS + i for i, m in enumerate(range(0, MODELS, 3))}
    steps, ts, rid, labels = [], T0, 0, []
    for b in range(batches):
        if b % 40 == 39:  # a slot handed out again: another version of one model, or another model
            slot = r.randrange(MODELS)
            model, version, role = names[slot]
            names[slot] = (model, str(int(version) + 1), role) if r.random() < 0.6 else (f"x{b}", "1", role)
        rows = []
        busy = r.sample(range(MODELS), 4)  # most traffic from a few models: they thin
        for _ in range(r.randrange(1, 40)):
            ts += r.randrange(0, 400)
            slot = r.choice(busy) if r.random() < 0.7 else r.randrange(MODELS)
            model = int(names[slot][0][1:]) if names[slot][0][0] == "m" else 3
            rid += 1
            row = (0, slot, ts - r.randrange(0, 50), r.random() > 0.02, f"r{rid}", _prediction(model, r))
            twin = canary_slot.get(slot) if names[slot][0] == f"m{slot}" else None
            pair = [] if twin is None else [(0, twin, ts + r.randrange(0, 30), r.random() > 0.02, f"r{rid}",
                                              _prediction(model, r))]
            rows += pair + [row] if r.random() < 0.1 else [row] + pair  # a canary now and then comes first
            if r.random() < 0.05:
                rows.append((0, len(names) - 1, ts, True, f"r{rid}", 1.0))  # shadow
            if r.random() < 0.4:
                labels.append((ts + r.randrange(1_000, 120_000), names[slot][0], f"r{rid}", _label(model, r)))
        labels.sort()
        due = [label for label in labels if label[0] <= ts]
        labels = [label for label in labels if label[0] > ts]
        active = sorted({names[row[1]] for row in rows})
        steps.append((list(names), rows, due, ts + 1 if b % 3 == 0 else None, active))
    return steps


def _feed(mon: QualityMonitor, step, observe) -> list:
    names, rows, labels, poll_at, active = step
    observe(mon, rows, names)
    for label_ts, model, rid, label in labels:
        mon.observe_label(LabelEvent(model, rid, label_ts, label))
    return mon.poll(poll_at, active) if poll_at is not None else []


def _snapshot(mon: QualityMonitor) -> bytes:
    return encode_snapshot({"quality": mon})


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_table_does_what_the_python_loop_did_batch_by_batch(seed: int) -> None:
    native, python = _monitor(), _monitor()
    for step in _stream(seed):
        assert _feed(native, step, QualityMonitor.observe_sampled) == _feed(python, step, _every_row_in_python)
        assert native.counters() == python.counters() and native.sizes() == python.sizes()
        assert native._table.order() == python._table.order()
        assert _snapshot(native) == _snapshot(python)
    counters = native.counters()
    assert counters["predictions_thinned"] > 100 and counters["series_evicted"] > 0
    assert counters["canary_dropped"] + counters["canary_expired"] > 0 and counters["labels_expired"] > 0


def test_rows_the_table_did_are_the_rows_python_would_have_left_alone() -> None:
    """The table takes most rows of a thinning fleet (the point of it), and a restored monitor carries on
    exactly as one never interrupted (its table rebuilt from the snapshot, drift predictions handed over)."""
    (counting, calls), python = _counting("_observe_row"), _monitor()
    steps = _stream(5)
    rows = sum(len(step[1]) for step in steps)
    restored = None
    for i, step in enumerate(steps):
        _feed(counting, step, QualityMonitor.observe_sampled)
        expected = _feed(python, step, _every_row_in_python)
        if i == len(steps) // 2:
            restored = decode_snapshot(encode_snapshot({"quality": python}))["quality"]
        elif restored is not None:
            assert _feed(restored, step, QualityMonitor.observe_sampled) == expected
            assert _snapshot(restored) == _snapshot(python)
    assert len(calls) < 0.7 * rows


def test_a_classifier_s_rows_are_the_table_s_and_a_numeric_model_s_class_is_still_skipped() -> None:
    """Half of a fleet's models may answer classes, and the table left every class row to Python (the plane's
    ``load/bench_plane.py``: 42k of its 75k sampled rows). Now it takes them once the version's drift reference
    is not numeric; a class from a numeric model is still Python's, which skips it."""
    (mon, calls), native, python = _counting("_observe_row"), _monitor(), _monitor()
    names = [("labels", "1", "production"), ("numbers", "1", "production")]
    r = random.Random(7)
    for b in range(50):
        rows = [(0, 0, T0 + 100 * (20 * b + i), True, f"c{b}-{i}", r.choice(["a", "b"])) for i in range(20)]
        rows += [(0, 1, T0 + 100 * (20 * b + i), True, f"n{b}-{i}", "odd" if i == 0 and b >= 2 else r.gauss(0.0, 1.0))
                 for i in range(20)]
        mon.observe_sampled(rows, names)
        native.observe_sampled(rows, names)
        _every_row_in_python(python, rows, names)
    classes = [row for row in calls if row[1] == 0]
    assert len(classes) < 0.25 * 1_000  # the reference's fitting and every fifth (a drift count) only
    assert mon.counters()["predictions_skipped"] == python.counters()["predictions_skipped"] == 48
    assert _snapshot(native) == _snapshot(python)


def test_a_row_the_label_join_keeps_is_put_there_by_the_table() -> None:
    """Where the label join is under half its bound every production row is kept, and each came back to Python
    for the put alone (65k of ``load/bench_plane.py``'s 75k sampled rows). The table puts it, as Python would, while
    that pushes nothing out; the first entry of an empty join and a put at the bound are Python's."""
    roomy = SETTINGS.model_copy(update={"label_max_pending": 3_000})
    (mon, puts), native, python = _counting("_put_label", roomy), _monitor(roomy), _monitor(roomy)
    names = [("numbers", "1", "production")]
    r = random.Random(8)
    for b in range(40):
        rows = [(0, 0, T0 + 10 * (25 * b + i), True, f"n{b}-{i}", r.gauss(0.0, 1.0)) for i in range(25)]
        for monitor in (mon, native):
            monitor.observe_sampled(rows, names)
        _every_row_in_python(python, rows, names)
    assert len(python._label_join.items) == 1_000 and len(puts) < 0.25 * 1_000
    assert _snapshot(native) == _snapshot(python)


def test_a_snapshot_of_the_monitor_before_the_table_restores_and_carries_on() -> None:
    """OLD_SNAPSHOT: the snapshot (``detection/snapshots.py``'s ``encode_snapshot``, base64) of a monitor fed the first
    80 batches of ``_stream(6)`` by the code of 6ccfab2 (``_models`` an ``OrderedDict`` of models with every field
    as an attribute). Restored, it carries on as a monitor fed everything by this code."""
    restored = decode_snapshot(base64.b64decode(OLD_SNAPSHOT))["quality"]
    assert restored.drift_reference_s == QualitySettings().drift_reference_s  # a setting added since: its default
    restored.drift_reference_s = SETTINGS.drift_reference_s  # 0 here, as its writer learned references
    live = _monitor()
    steps = _stream(6)
    for step in steps[:OLD_FED]:
        _feed(live, step, QualityMonitor.observe_sampled)
    assert restored._table.order() == live._table.order()
    assert _snapshot(restored) == _snapshot(live)
    for step in steps[OLD_FED:]:
        assert _feed(restored, step, QualityMonitor.observe_sampled) == _feed(live, step, QualityMonitor.observe_sampled)
    assert _snapshot(restored) == _snapshot(live)


OLD_FED = 80
OLD_SNAPSHOT = (
    "lbNtb2RlbG1lZGljLnNuYXBzaG90BcQAxRLReAHtPHt8FOW1s3mRRIiBC6i9opZLNUDBPAhJeLiD+KSKprWW2tZhsztJBvflzG4A7VWpBWtV"
    "bAgYEW8NSXbzDvLQSuEHKQYvdUAptr6AREtvUaDVe70Cwk+953uc2Wx2Epbrsj/5ufPPzPc+53zn8T3OnCVN9/ptTsW3uGbIOxNdHofsdMkO"
    "xT7ZIftku0/xuCfz8smlrN6tHrfi86g9wi2dCxW3w7NQ0pT7ZMml7Un+YIPTViY7Jc3m8jplSa6S1cWWTXab26YuluRFXuhQdkiqzSd3ree5"
    "XlXxqDRLt25eTZ5nOniRy6ZWKG7d2hKeLZeXQz9G9kZe2wm1YUhe+EfW5nle6PM4ZdXmtsu69T2BPluN8T1ltjKFEEDqU2sza7+B1ypTbNpA"
    "fbsUt+S1KaqWioAvtKkuv3dkJ2+8wAM1gDwX1mF3LtsiySu7HYq74rJN5TanJks2gN+lQa4qOWyLdeu3pv716KWzJ7UzgiIpVt73/o2dI+/n"
    "uYgsAsvrwmgev8/uccla6jqWF8KMYS8IvAsGaubzrFqlR1Xu8xBgXxMs0m/W4+AGtDnrZM2nuGACJdZy964OI6dMcWuZW4ykHbiqDOYaWMio"
    "3G6UVti8xoSvc6hKuU9S5XJZlWGShrazDMZeOZ0sRejsVKrkzFaWpsO1sW/KaakvsIQPBpEUt09Wq2zAi7o4kiHd4dUUyVepylqlx+nQrXtZ"
    "diuZDcr42oh28g1cqwHQWvI6xQFcrMp2D2RRogzbUtehyaoia5LP50Q6NZfLNp8f+n15I37RiQSI/T55xgYj08Bw9651RibDEoRnvZGFqDo6"
    "jCyKbbuRBFQMBF4yciMwn8tQ3Oiw+WwSl2OpzO+okEGAfsmYKbyQ85SYzlq+YPTdlzJ7rsp+MVQg+1TFLjGyQEnA7vTY7+lq4jQ9IHwnpcGV"
    "nw/q5d8GVS/SrUT5PNaM5F+yNg/afGfwNneyuXo8yGStC2WOd1IXpCysdQUJu0puoZ2+7R4VZtUntNKUrKoeVWf4CkKAMhGMPCFiZI+qTaal"
    "k29XiY4krH0dYd0eYVSLMbddncYn1YxDg5yPm3FaMxvpbA7AjwHGzC2EW+1O2aYacjK4qlgXMfuc7wM2p7fSpl+T8+6RMQ/ecqJVctpAQEht"
    "/cuPGdqNRPi6mlEp1Qq6eM1NeVd+uOgvujh99f6xe/9rPnxk/P7uQuu/Q9F4/jGj++DV33pumy7O6L64xrd1QRMRFtntqxaapDLCBVq10My+"
    "JHcNDNUoEcZFUtdLXv3BkywVoLItBJki3NGMiqIrAJIo+x5qokC7tNcFwbKmqudIIAjMYlusdbXTt0SFWBOay2ya7FTccleLofO62rgipoYn"
    "oiOYFsIAsmMHFBHr5U5rYx+aAsqID7j17SZfpeJ2yw5LJ/+QyuRyaCd0YDq8foMrrzguTA+DTDLlVTTcs6kBvg50J5hIQKlHuLwj3Bq3mpjh"
    "IJoXbn9DBDWMaBDtEq8CRsXECL/gVQezsW1mxjWggfmQuwbn+KDmk71EwXM110IEjJliKu9gg6nMkXnXrT6m7ppx0aKL2Yz12gjvcHNsCVC+"
    "3b0rIBGzDaQdNyhppTlQS1aXNYA5MO+wifdcndLg9iw0JK4JJkABphOaHKrH64WPZokIOzDYjgbJm2sIPQiGU9VqhBpLjUW37lPKhk/ZX61v"
    "X5eZ2zW8rJbkvbylsG7WvkZ9+2+rX7m3dcVcVvPomOyKzM6n9e1/mjjjxRtX30Rqvjev89SSkaX69q7Ueb9+w98ZhCGrZAA89/6V3ctm7AlI"
    "hKL6rJ+PPiACbZoku1/zu7RVwtOCIbQ7QkBYufawhErDKyIMZ6zIlYBufV/Y+1TFyMMD9diV/CV9zCoGJN9irxx0+11lshrkfNAiORTNVqHK"
    "cir99NFFoPjDx4prJ7/aHZCANR0rhVRdnFb6i5aaC94HLbeqYOf4BXcFoGF5+UoBqPYOWwsaFEAttwpIlJraz+KszU2YHDCiZ21yngKTM+3h"
    "H5x47Z2LYA6O79pUMi9bF0umXdqenneVLs78Kbyv/FAXpy5r+ug/NkzCOTj3luZobYwszdEDhqV5GS1NqomleeFKtDTJUVma9V+ApZkaF0tz"
    "puVV0sDLKzHj0x1P/jTn5DdqeTXr3R+6lwqzHqXLK5ih8aa2hC0p6ULy+7gFWtZINtVDAzIs1bWVqQ0zyourM7pv+plr5xcb7i8UX/vVvp73"
    "HisS5db5d3z/rSJx1/hpK/TeIvG3HzW98r3DxeJHf3z52o6MaWJPzSNL76qZJk6A4gdzposLeu799XLHdLHVDiaxAnZ7MiyNNa8q2xy6mDT3"
    "f+4a8/e8oN3jd/vooEpxdWb37UnMTAqWr/jGfppx7cHxgiHe2EeeHdbap8jz4v/7jf0YK1miH9iatAYUzIymiUlDb/69LhYvHv0IfOIqtUYg"
    "oDBsOZIGtpjGN1IhhWfgG7FL5vmp/B3ZM/b0Vd99VtYj+cra+v7De5/8yXXjyMra+nfriYN3jLuRrawvjHZlfeww13cHhFEEQsAXUWYAhy24"
    "93xsPesl97HDhiI0ltxjIxXhwb8loyLMikYRQv16V2KbmUOXvPSg5Ou5zfzKenBId3EdXZJttjKO/Ni6dzd5/tc6pYA8ySLLTxefpfWG8XS2"
    "qd6znjj+i4OuL78brvfSu0WUaNaZIGA6XBwEASUe66FG6K/noEtWpZvDXcffmH6pX/7uful9VhO9tkJIQTV2rjbbnxyP0RLok+ORkj8sUvJ7"
    "HvgDSn5GNJIP9etd8VkBAfMm9tqEixN77fjstd9btD21YGelzlUHKBtjHxq+1z6+b1bJol03nLGimDSfzJ+gW/efPPrqjLK/DdRj14jb+F47"
    "sqLZXntIaK+d1nevPbOx+Z5rH78J99pD4LThDdjmjX5EF2/oWrtt4s134l47Wbf+YTh5RgBwc5ds+uBfb8fVG9lrD0lL7LVNrjXOfq+9BpbC"
    "uTtgIXx3oS7mD7utd7rjLl3MSyd77jJdLHgi686Ui2t0cfL87jWBQ3fo4pTXSIZfF797K6884RK6gIacV7seHuF+GuosKycPTti535gfL4+R"
    "VTr+rGGVjI15polVWr4crdKQqKzS8uX1rty47MsTVilxAnx+nwBTk0SsEn70+Qyzc1huVpFZpY7QdQMcb5zhINhyc+X849lw2s8OgkPjG/2j"
    "cTIpQl2XOAiO6d0jnDdYLBYkbgwNCajJXNMTOLxsdEy+nrs3OGbZ7X7VZl/cI1zBttHt7IpsoaxUVPrA3DFG7CR3R3CbC3eqcHWo7Rmy17gT"
    "474axjXaZnaN0NDX82Hw+60+V1Vcv/Frrd27wJMk0rsidHdF7pQAW/MrbLwW/BH13pEds8klz68C9K4HGo01JRE2opWXBvrdG4GjhV8OiQx1"
    "ZtkRUP1uuHJvIi8YwSg2Q4uCYlyONcCVl1F97aLQp1vgndJXqCAgEReNbxLGQcnvdnzTUAaml9yweo0wArHKaZXIECoR8XM5TAsdxu5xl5/L"
    "UZrAoc0HzmUrByNYkHh+hBMVb2t140PkBA+R2SgaZCqwTjMdAjRAX2Stf91k3TJq60W69VDtv2z6dtoDuvXT2qWPX5/yep9BPry77Z05a0aH"
    "ciJHs/5z6+xhYyryg5JWCZ44RtV2sOjEszA8F+ZXVn1KuUK8PbjOBp8TUIA2p+GK0iDJuUYC+gUayjsayTU83KFHQBCQiDeZWQkBAd2EtDS0"
    "Z7BYMDpJ08Xh+S0dOy/Z28KAccqOWhjBqNDn09wP5uTFMdoEnSyN3ASZ+cFs+zFuglKi2gRtOwC3k1NAMyecv7j74tfzVD7k/EUuykqq+AX8"
    "lDEbJsFpADJvDBdjAzh2nToSI4Y+dcRgaOOWKclkV/9ZGTJ0dI5dn5XVu0oS/AzEPU/4eQU57bq3Un3+ip1xY+Pe1AWxYePe1IUGGxuHU5ZI"
    "NoYBz4qNoT7o5aIEH58/fLwa+Hgm3UQ+Awq6mjI0+Ew1rFqSNu4gfPyDH81Om/fnzz95ES4Cpl9CdpxQefrlcMB7aTt8XAuOvLMejZ8YpMsx"
    "EoN02RADQ5unR4pBz599KAZpUS1P/jKmYVFBQp1/7Z0GQssT2M2IE94k3jtzdHFi29LLXio9potXfmr9+T+qK+PH2RmnYsTZGaciOTvZhLNP"
    "70fOToqKs0/vh78uChIK/vxR8MQFVvz2o0Xfe6UZPoJ8BX7to1yLcwd28GJbmDnT2/BW/Hg98/MY8Xrm55G8buYC2+VGXo/OBfaVI7CYKYwL"
    "r8MgCQcQcgiScACJiwNIxHlTnyOhqC/GYl/RzAEkOeQAwj75zxY2x9g36++4Bu/YksH9diP10wNflVkpF3wx7USUd2zJyQkHkJg4gKwCS1NS"
    "zx1AZtJ9wxiYlTfBycO3VReL1lIjFD8DM9QRIwMz9JeGgTF2yykmi6ntI9DARHeK2Xt1vSuxWT7Pdgl5vyNeZhPBxemf3H0p59BbsHRqjCNj"
    "r48VY683GNvY/5rtEj44howd3crpg2OwcoqPk9KZfh5K/Jsd1b/Z5Dgz/7JCst2NHx9nlcaIj7NC10wGH5sdZ2aVIh9HdSrfm1Va70rcMp1H"
    "Cpqw8ST2U2f82Di7MEZsnF0YqY7N2Di78OzYOLsQ1HF8/mFKbGQTPqPx9Bk9jzaySaGNLPvkG9kbJtn/27mkADeySeAF2J5DfmsG35UPl37s"
    "UW6NciOblHSmjaxlkD+pkxrIKrbuG/Un9ZfmgWrIZUDBf5KAAFm6WPgQ5THIebv0KNwLxM+uDH+C2xX+z2y/P2Yh2lbfIDV77tlwtv/M9g4P"
    "rf+Nja3Z+v/QHDQ40a3/D82pd8Xn4DSx/I/J0c0zwPETWx/4bP/YP8E9WBoNhgH/7jxJROBOcHS4igvDJHJrQC5/8zbDHjhpKKy2qCfPJbp4"
    "9Y+eIEc+ujg+r+X0Yedj8ZOTUVkxWn+Nyopcf2WYnPOcdqE4pEd3aeaqd8UnaFNCHGIiDs+COOSmgk9D0S3k4xAJIAP749Wc5/PLx0GEsjrI"
    "WQOMPvspsA11/J+2ST+AgGUPnIKi1LXkHzZo/sxz28DvDURmxPNXdK8JQtEGdy3IShwFRIyVgIiRAnKBiYC8OQEF5IKoBATqS+WKCoErH2oH"
    "J2Ya2JMHyjpDpL7bWbzLpUEWOBGiYTbYbd7LSFAsFmKtd5TYDF2T0HTa6yJfLgbtlX43CSPXxhxkMSrX2Q1Go1mS4XIGGA5iXKypOrglkw+3"
    "QliRAW7BPggVpsE+6ewGi8Ss5/TFIczoUD0f3dZnKPjXZQGJyeh4LqXGQm4yG9XiwlweeG70b2osYKMb1ZK8kj5ZUK0YquXn8bwfX0WbFkG9"
    "/Kk8r6GX5k0NqHm5uVixT2bBVOzx2GFaMx9q5hcW8ebHDndiLEyJxoQZ0UY8uVmMTq06pVXCYHs0gT/RQKLJDhFlINTrAWEzxC0DlQqhHOGV"
    "T14A+FT+LmTZPJmfx7PxncvS+QWs2hReXMSStDGhAkvSSpCkY8B/lyy3hLXJ50nsmfdIe4I2vGccCMHkjfN4YzoQ+FTwTvKxGscCO+PV8jCN"
    "YNNmEKaAQRTWqQEudokU6YcF4ohYhUECFxS863B6Ie4cTOwjHClGgnoXBxLhCEcNMUYK5FE4DJRwIN4z9oEI83lCIJHmvDatBWzO56sfZjgT"
    "OAWIBNKWdlrv4ojzvviAfAA+bjgO4MnLaYZvWhtZ1OiR44IMwvoCvzHSmHM3tOFQhHUB2eHTkYcocrjC2QJJy0aCxnwIBA+J2he3/ixpQI2U"
    "xzdSi1HPAJ+DzUmOWHBSMz5FgsBQiB2DyOgkDEA+j1zgw+Ex2BRRRYKEsSCSDQfkEwVnvHy+EAxOCISWE3cwLQBdI+/xmWH04IJtAM0ZBunB"
    "p4vTEnmdEY1TITQRqJQ4VRjTcSmH8ZEF+PgINJ8IxIXOtUEuJA+rHEF3Dh5g1kiCPxM/fQjIW0VU8PXJK5nuhSCfHoefRq3lGv70RaQIBjQv"
    "YtMeWdYokGYASWRRZT0pKoEoiGxxwAY62DKPZUe2oEUwUH6/Jj0ENpof2QbLANtICHi7wgH6M4Wat4EJiOzv7cspHDCVA5URYY0sY7Q1BZER"
    "qXBtSVCrtEEA9bDZMAWCUJyyVzhdexhwRJQiAeBlwEaRZQyCgv40YhNrig4ryu3fgmEJ3Bc5BieqadncICWqGdz7Pz1AeGWq+UggfwONRGQy"
    "soxRjijhyDJGBTMgOGFBjvsRnANuKjK0jEqm2VCdXCB51OCHOjDdJ2rwuy17WCR2TXL4vU6FROkTOtivxZJHhSjO7t3LO3maB5DNxTTGkcWj"
    "RV5+HaaxfGOfv9Ik7R6FBJ+t6ORRzeUqCGstO3YHw2rxAMd7Ui9EYFyKpkHM2t9xWPxusgmA2P5Y01L8f+Cvf5OSxQGpeAFFkUsoRFEAhkdq"
    "kiKkUJQNM/Lonntm5s6dwZ0aG0kWSkKilPJaaJKNBVZCNEbybryysJBYYLIwQzIyio3isiIbNqQUuf/JOe72+85//vNf3ZTuX+0mjvVeIhF7"
    "IGYyxc333R8mBknU44wt7hQn1x37V7rt4LLE+dESeOFP39muWn9sBMgUAhVCJAJB6xr1Tg+aEWADdxAeoFvBLfkv/Tff7+CKwQm1/XE9YxKc"
    "VGRO+UId/5wX1LPMjF9UHjTbNVZARoBd5QElX6xAy3Baz8w4BKIagux0cCFQBaG8EwXzmIANZFUkLJ9AKF2ZaLJ+hJngNARKKU/Yi4PgGq79"
    "vLzNCGMEdKAOPoJ+NsSuKEDHAVYSK1FFCJePEDwbWDFFdKAKn0m/aoXgfntwtzXkYAZ0pIp4xHUjeFF1DQQWgB2povCONz4IZfuzxjeHAFbR"
    "KfidO0jiWTWCg6qodn+Og5q1dzs3soDHEbzeJsk8+YkNrLqytxKIhQnoZpPEPM9sP1friFJ1uomrJXAifvFrapD4o9pryJuU0y5HtTV3rKRg"
    "7DH8C/gFGXnETXgBa5q0ONfQdGmRoYmh6eTzDAyMs8vuvfdfaHjawdb/vnVKlOykRbkGIGkjA5j0Z+mFhpNO259qDZh1dfKK0/Yv41bf9Jot"
    "BgCFKiDx"
)

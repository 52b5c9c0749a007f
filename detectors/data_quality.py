"""Data quality of a model's inputs: each sampled request's features against the version's input
schema, and a sequential test of the share of requests that break it.

The registry holds each version's interface (``Registry.interface``): its ``input`` is a JSON
schema of an object. :class:`InputSchema` compiles the part of it that says what a feature may
hold (types, null, enum, minimum/maximum, required, additionalProperties) into one small rule
per feature, so a request costs a dict lookup and a few comparisons per feature, not a schema
validator's walk. :class:`ViolationRate` decides when a version's share of requests with a
violation stays above its budget: a Bernoulli CUSUM, so a burst of a few bad requests does not
alarm and a persistent excess does, with a threshold from a false-alarm budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modelmedic.detectors.quality import ANOMALOUS, OK, Decision
from modelmedic.detectors.sequential import threshold_for

CHECKS = ("missing", "unknown", "null", "type", "range", "unseen_category")
"""What can be wrong with one feature of one request: a required feature absent, a feature the
schema does not declare (when it forbids others), a null the schema does not allow, a value of
another type, a number out of range, a category not in the schema's enum."""

_TYPE_OF = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class _Rule:
    """What one feature may hold: JSON types (None: any), its enum, its numeric bounds."""

    types: frozenset[str] | None
    enum: frozenset | None
    low: float
    high: float
    low_open: bool
    high_open: bool

    def check(self, value: Any) -> str | None:
        """The :data:`CHECKS` name of what is wrong with ``value``, or None."""
        if value is None:
            return None if self.types is None or "null" in self.types else "null"
        kind = _TYPE_OF.get(value.__class__, "object")
        if kind == "number" and value.is_integer():  # JSON Schema: 3.0 is an integer
            kind = "integer"
        if self.types is not None and kind not in self.types:
            return "type"
        if self.enum is not None and value not in self.enum:
            return "unseen_category" if kind == "string" else "range"
        if kind in ("number", "integer") and (value < self.low or value > self.high or (self.low_open and value == self.low)
                                             or (self.high_open and value == self.high)):
            return "range"
        return None


def _rule(schema: Any) -> _Rule:
    """The rule of one property's schema (anything it cannot read allows anything)."""
    schema = schema if isinstance(schema, dict) else {}
    declared = schema.get("type")
    types = None if declared is None else frozenset([declared] if isinstance(declared, str) else declared)
    if types is not None and "number" in types:
        types |= {"integer"}
    enum = schema.get("enum")
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    low_open, high_open = "exclusiveMinimum" in schema, "exclusiveMaximum" in schema
    low = schema.get("exclusiveMinimum", low)
    high = schema.get("exclusiveMaximum", high)
    return _Rule(types, frozenset(enum) if isinstance(enum, list) else None, low, high, low_open, high_open)


class InputSchema:
    """A version's input schema, compiled for checking features.

    >>> s = InputSchema({"type": "object", "required": ["amount"], "additionalProperties": False,
    ...                  "properties": {"amount": {"type": "number", "minimum": 0},
    ...                                 "country": {"type": "string", "enum": ["FR", "DE"]}}})
    >>> s.violations({"amount": -1, "country": "XX", "extra": 1})
    [('amount', 'range'), ('country', 'unseen_category'), ('extra', 'unknown')]
    >>> s.violations({"country": None})
    [('country', 'null'), ('amount', 'missing')]
    >>> s.violations({"amount": 3})
    []
    """

    def __init__(self, schema: dict[str, Any]):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        self.rules = {name: _rule(sub) for name, sub in properties.items()}
        required = schema.get("required")
        self.required = tuple(required) if isinstance(required, list) else ()
        self.closed = schema.get("additionalProperties") is False

    def violations(self, features: dict[str, Any]) -> list[tuple[str, str]]:
        """``(feature, check)`` of everything wrong with one request's features (empty: clean)."""
        out = []
        rules = self.rules
        for name, value in features.items():
            rule = rules.get(name)
            if rule is None:
                if self.closed:
                    out.append((name, "unknown"))
                continue
            wrong = rule.check(value)
            if wrong is not None:
                out.append((name, wrong))
        out += [(name, "missing") for name in self.required if name not in features]
        return out


class ViolationRate:
    """Is the share of a version's sampled requests with a violation persistently above ``budget``?

    A Bernoulli CUSUM of "the share is ``effect`` times the budget" against "it is the budget":
    each request adds ``log(effect)``-ish when it breaks the schema and takes a little away when
    it is clean; the alarm fires when the sum reaches ``h`` and ends when it falls back to 0 (the
    sum is capped at ``1.5 h``, so a long episode ends after clean requests worth that much). The run length of a
    version at its budget to a false alarm is at least ``exp(h)`` requests (Lorden), so ``h =
    ln(requests_per_day / false_alarms_per_day)`` holds the budget for versions sending up to
    ``requests_per_day`` sampled requests a day; one whose share is lower alarms even more rarely.

    >>> v = ViolationRate(budget=0.01)
    >>> [v.observe(False) for _ in range(10_000)].count(True), v.anomalous
    (0, False)
    >>> fired = [v.observe(True) for _ in range(40)]
    >>> fired.index(True) + 1, v.anomalous
    (15, True)
    """

    def __init__(self, budget: float = 0.01, effect: float = 3.0, false_alarms_per_day: float = 0.01,
                 requests_per_day: float = 86_400.0):
        self.budget, self.effect = budget, effect
        bad = min(budget * effect, 0.999)
        self._up = math.log(bad / budget)
        self._down = math.log((1 - bad) / (1 - budget))
        self.h = threshold_for(86_400.0 / requests_per_day, false_alarms_per_day)
        self.cusum = 0.0
        self.anomalous = False
        self.seen = self.violated = 0
        self._run_seen = self._run_violated = 0
        """Requests, and those with a violation, since the CUSUM last stood at 0 (the episode's evidence)."""

    def observe(self, violated: bool) -> bool:
        """Take one request; True at an alarm's onset."""
        self.seen += 1
        self.violated += violated
        self.cusum = min(max(0.0, self.cusum + (self._up if violated else self._down)), 1.5 * self.h)
        if self.cusum == 0.0:
            self._run_seen = self._run_violated = 0
        else:
            self._run_seen += 1
            self._run_violated += violated
        was = self.anomalous
        self.anomalous = self.cusum >= self.h or (was and self.cusum > 0.0)
        return self.anomalous and not was

    def decision(self) -> Decision:
        """The current state, with the run's share of requests with a violation as evidence."""
        n, bad = self._run_seen, self._run_violated
        share = bad / n if n else 0.0
        evidence = {"violation_rate": share, "requests": n, "budget": self.budget, "cusum": self.cusum, "h": self.h}
        if self.anomalous:
            message = (f"{share:.1%} of {n:,} sampled requests break the input schema, budget {self.budget:.1%}")
        else:
            message = f"inputs within their schema ({self.violated:,} of {self.seen:,} sampled requests with a violation)"
        return Decision("drift", "data-quality", self.anomalous, evidence, message, ANOMALOUS if self.anomalous else OK)

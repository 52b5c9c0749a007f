"""The remediation policy: parsing with errors that name the field, routing, targets, the mission's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from modelmedic.errors import PolicyError
from modelmedic.response.policy import DEFAULT_RULES, FALLBACK_RULE, GuardRails, Policy, load_policy, parse_policy
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, Target, playbook

FULL = """
rules:
  - match: {anomaly_class: [latency], models: ["fraud-*"], roles: [canary]}
    playbooks: [{name: rollback, params: {recent_s: 600}}]
    verify_s: 120
    escalation:
      - {after_s: 0, severity: error, sinks: [slack]}
      - {after_s: 300, severity: critical, sinks: [pagerduty]}
  - match: {anomaly_class: "*", kinds: [errors], models: [churn]}
    playbooks: [{name: restart}]
    page: true
targets:
  namespace: serving
  deployment: "{model}-{role}"
  overrides:
    legacy-ranker: {namespace: legacy, deployment: ranker}
guard_rails: {cooldown_s: 600, max_actions_per_hour: 3, max_concurrent: 2, storm_models: 20, storm_window_s: 30, dry_run: true}
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(FULL)
    return load_policy(path)


def test_a_full_policy_file_loads(policy: Policy) -> None:
    assert policy.guard_rails == GuardRails(cooldown_s=600, max_actions_per_hour=3, max_concurrent=2, storm_models=20,
                                            storm_window_s=30, dry_run=True)
    first = policy.rules[0]
    assert (first.verify_s, [lvl.sinks for lvl in first.escalation]) == (120, [["slack"], ["pagerduty"]])
    assert policy.rules[1].match.anomaly_class == ["latency", "throughput", "errors", "prediction", "drift"]


def test_the_first_matching_rule_wins_and_the_class_default_catches_the_rest(policy: Policy) -> None:
    assert policy.route("latency", "latency", "fraud-eu", "canary") is policy.rules[0]
    assert policy.route("latency", "latency", "fraud-eu", "production") is DEFAULT_RULES["latency"], "role does not match"
    assert policy.route("throughput", "errors", "churn", "production") is policy.rules[1]
    assert policy.route("throughput", "throughput_drop", "churn", "production") is DEFAULT_RULES["throughput"]
    assert policy.route("drift", "prediction_drift", "churn", "shadow") is DEFAULT_RULES["drift"]
    assert policy.route("novel-class", "x", "churn", "production") is FALLBACK_RULE


def test_the_defaults_follow_the_mission() -> None:
    route = Policy().route
    for cls in ("latency", "throughput"):
        rule = route(cls, cls, "any", "production")
        assert rule.auto_remediate and not rule.page
        assert [p.name for p in rule.playbooks] == ["rollback", "scale-out"]
        assert [(lvl.after_s, lvl.severity) for lvl in rule.escalation] == [(0, "error"), (60, "critical")]
        assert rule.verify_s == 60
    prediction = route("prediction", "canary_divergence", "any", "production")
    assert (prediction.page, prediction.auto_remediate, prediction.playbooks) == (True, False, [])
    drift = route("drift", "prediction_drift", "any", "production")
    assert (drift.page, drift.auto_remediate, drift.escalation[0].severity) == (False, False, "warning")
    assert "redesign" in drift.note
    assert Policy().guard_rails == GuardRails(cooldown_s=300, max_actions_per_hour=6, max_concurrent=5, storm_models=10,
                                              storm_window_s=60, dry_run=False)


def test_targets_fill_the_template_and_honour_overrides(policy: Policy) -> None:
    assert policy.target("fraud", "v2", "canary") == Target(
        model="fraud", version="v2", role="canary", namespace="serving", deployment="fraud-canary")
    assert policy.target("legacy-ranker", "v9", "production") == Target(
        model="legacy-ranker", version="v9", role="production", namespace="legacy", deployment="ranker")
    assert Policy().target("fraud", "v2", "production").namespace == "models"


@pytest.mark.parametrize(("data", "expected"), [
    ({"rules": [{"match": {"anomaly_class": ["latncy"]}}]},
     "rules.0.match.anomaly_class.0: Input should be 'latency', 'throughput', 'errors', 'prediction' or 'drift'"),
    ({"rules": [{"playbook": [{"name": "restart"}]}]}, "rules.0.playbook: Extra inputs are not permitted"),
    ({"rules": [{"escalation": [{"after_s": 30, "severity": "error"}]}]},
     "rules.0.escalation: Value error, the first escalation level is the first alert: give it after_s: 0 (got 30)"),
    ({"rules": [{"escalation": [{"after_s": 0, "severity": "error"}, {"after_s": 0, "severity": "critical"}]}]},
     "must have strictly increasing after_s, got [0.0, 0.0]"),
    ({"rules": [{"escalation": [{"after_s": 0, "severity": "loud"}]}]}, "rules.0.escalation.0.severity: Input should be"),
    ({"rules": [{"verify_s": 0}]}, "rules.0.verify_s: Input should be greater than 0"),
    ({"targets": {"deployment": "{name}"}}, "targets.deployment: Value error, '{name}' uses ['name']; only {model} and {role}"),
    ({"targets": {"overrides": {"x": {"deployment": "{model"}}}}, "targets.overrides.x.deployment: Value error, '{model' is not a valid"),
    ({"guard_rails": {"max_concurrent": 0}}, "guard_rails.max_concurrent: Input should be greater than or equal to 1"),
    ({"guard_rails": {"cooldown": 10}}, "guard_rails.cooldown: Extra inputs are not permitted"),
])
def test_a_bad_policy_names_the_field(data: dict, expected: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(data, "p.yaml")
    assert str(error.value).startswith("invalid remediation policy (p.yaml):")
    assert expected in str(error.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("rules: [", "is not valid YAML"),
    ("- a\n- b\n", "must hold a mapping at the top level, not list"),
])
def test_a_file_that_is_not_a_policy_says_so(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=expected):
        load_policy(path)


def test_a_missing_file_and_an_empty_one(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_policy(tmp_path / "empty.yaml") == Policy()


class WaitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: int = 1


async def wait(ctx: PlaybookContext, params: WaitParams) -> Outcome:
    return Outcome.skipped("waited")


@pytest.fixture
def playbooks() -> PlaybookRegistry:
    registry = PlaybookRegistry()
    registry.load_entry_points()
    playbook(name="wait", registry=registry)(wait)
    return registry


def test_validate_playbooks_accepts_known_playbooks_with_good_params(policy: Policy, playbooks: PlaybookRegistry) -> None:
    assert policy.validate_playbooks(playbooks) is None  # raises PolicyError otherwise (tests below)
    checked = [(ref.name, playbooks.validate(ref.name, ref.params)) for rule in policy.rules for ref in rule.playbooks]
    assert [name for name, _ in checked] == ["rollback", "restart"]
    assert checked[0][1].recent_s == 600, "the params the playbook will get are the policy's, validated"


@pytest.mark.parametrize(("ref", "expected"), [
    ({"name": "wiat"}, "rules.1.playbooks.0 (wiat): no playbook named 'wiat'; known: "),
    ({"name": "wait", "params": {"second": 2}}, "rules.1.playbooks.0 (wait): invalid params for playbook 'wait': second: Extra"),
    ({"name": "scale-out", "params": {"step": 0}}, "rules.1.playbooks.0 (scale-out): invalid params for playbook 'scale-out': step"),
])
def test_validate_playbooks_names_the_rule_and_the_playbook(playbooks: PlaybookRegistry, ref: dict, expected: str) -> None:
    policy = parse_policy({"rules": [{"playbooks": [{"name": "restart"}]}, {"playbooks": [ref]}]})
    with pytest.raises(PolicyError) as error:
        policy.validate_playbooks(playbooks)
    assert str(error.value).startswith(expected)


def test_the_defaults_need_the_built_ins_installed() -> None:
    with pytest.raises(PolicyError, match="default rule for latency.playbooks.0 \\(rollback\\): no playbook named 'rollback'"):
        Policy().validate_playbooks(PlaybookRegistry())


def test_validate_sinks_names_the_level_with_an_unknown_sink(policy: Policy) -> None:
    policy.validate_sinks(["slack", "pagerduty", "webhook"])
    with pytest.raises(PolicyError, match=r"rules.0.escalation.1.sinks: pagerduty not configured \(configured: slack\)"):
        policy.validate_sinks(["slack"])

"""Each guard rail as behaviour, with the clock passed in: cooldown, hourly cap, max_concurrent, storms."""

from __future__ import annotations

from modelmedic.response.guards import Guards
from modelmedic.response.policy import GuardRails

T = 1_800_000_000_000  # epoch ms
S = 1000


def guards(**rails) -> Guards:
    return Guards(GuardRails(**{"cooldown_s": 0, "max_actions_per_hour": 100, "max_concurrent": 100, **rails}))


def test_cooldown_holds_other_incidents_of_the_model_until_it_passes() -> None:
    g = guards(cooldown_s=300)
    g.acted("fraud", "inc-1", T)
    assert g.refusal("fraud", "inc-2", T + 299 * S) == "fraud was acted on 299s ago (cooldown 300s, 1s left)"
    assert g.refusal("fraud", "inc-2", T + 300 * S) is None
    assert g.refusal("churn", "inc-3", T + 1 * S) is None, "the cooldown is per model"
    assert g.refusal("fraud", "inc-1", T + 1 * S) is None, "its own next playbook comes after its verification window"


def test_cooldown_counts_the_incidents_own_actions_for_a_run_by_hand() -> None:
    g = guards(cooldown_s=3600)
    g.acted("fraud", "inc-1", T)
    assert g.refusal("fraud", "inc-1", T + 60 * S, manual=True).startswith("fraud was acted on 60s ago (cooldown 3600s")
    assert g.refusal("fraud", "inc-1", T + 3600 * S, manual=True) is None


def test_the_hourly_cap_is_a_rolling_hour() -> None:
    g = guards(max_actions_per_hour=2)
    g.acted("fraud", "inc-1", T)
    g.acted("fraud", "inc-1", T + 600 * S)
    refused = "fraud already had 2 actions this hour (max_actions_per_hour=2)"
    assert g.refusal("fraud", "inc-1", T + 601 * S) == refused
    assert g.refusal("fraud", "inc-9", T + 3599 * S) == refused
    assert g.refusal("fraud", "inc-1", T + 3600 * S) is None, "the first action left the hour"
    assert g.refusal("churn", "inc-2", T + 601 * S) is None, "the cap is per model"


def test_an_action_replayed_again_after_a_rebalance_counts_once() -> None:
    g = guards(max_actions_per_hour=2)
    g.acted("fraud", "inc-1", T)
    g.acted("fraud", "inc-1", T)  # the same attempt, read back from the incident again
    assert g.refusal("fraud", "inc-1", T + 1 * S) is None
    g.acted("fraud", "inc-1", T + 2 * S)
    assert g.refusal("fraud", "inc-1", T + 3 * S) == "fraud already had 2 actions this hour (max_actions_per_hour=2)"


def test_max_concurrent_counts_admitted_runs_until_released() -> None:
    g = guards(max_concurrent=2)
    assert g.admit("a", "inc-1", T) is None and g.admit("b", "inc-2", T) is None
    assert g.admit("c", "inc-3", T) == "2 remediations already running (max_concurrent=2)"
    assert g.in_flight == 2, "a refused run holds no slot"
    g.release()
    assert g.admit("c", "inc-3", T) is None
    g.occupy()  # a run resumed after a restart takes its slot without asking
    assert g.in_flight == 3 and g.admit("d", "inc-4", T) is not None

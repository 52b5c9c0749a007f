"""The Kubernetes client's retry policy and error translation, against a fake API call.

The fake stands in for one blocking call of the ``kubernetes`` package (the boundary);
sleeps are recorded instead of slept, so backoff is asserted exactly and takes no time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from modelmedic.errors import KubeError, KubeForbidden, KubeNotFound, KubeUnavailable
from modelmedic.kube import call_with_retries
from modelmedic.retry import RetryPolicy


ATTEMPTS, BASE_S, MAX_DELAY_S = 4, 0.1, 0.5


def api_error(status: int, message: str = "details", headers: dict[str, str] | None = None) -> ApiException:
    error = ApiException(status=status, reason="Reason", body=json.dumps({"kind": "Status", "message": message}))
    error.headers = headers
    return error


class FakeCall:
    """Raises the given errors in order, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def run(call: Callable[[], str], sleeps: Sleeps) -> str:
    policy = RetryPolicy(attempts=ATTEMPTS, base_delay_s=BASE_S, max_delay_s=MAX_DELAY_S, sleep=sleeps, jitter=random.Random(7).random)
    return await call_with_retries("patch deployments/scale ns/model", call, policy)


@pytest.mark.parametrize("transient", [
    api_error(409), api_error(429), api_error(500), api_error(503),
    urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"),
    urllib3.exceptions.MaxRetryError(None, "/apis", "connection refused"),
])
async def test_a_transient_failure_then_success_is_retried(transient: BaseException) -> None:
    call, sleeps = FakeCall(transient), Sleeps()
    assert await run(call, sleeps) == "ok"
    assert call.calls == 2
    assert len(sleeps) == 1 and BASE_S / 2 <= sleeps[0] <= BASE_S


async def test_403_raises_forbidden_at_once_naming_the_call_and_rbac() -> None:
    call, sleeps = FakeCall(api_error(403, 'deployments.apps "model" is forbidden')), Sleeps()
    with pytest.raises(KubeForbidden) as raised:
        await run(call, sleeps)
    assert call.calls == 1 and sleeps == []
    assert "patch deployments/scale ns/model" in str(raised.value)
    assert "deploy/rbac/role.yaml" in str(raised.value)
    assert "is forbidden" in str(raised.value)


@pytest.mark.parametrize(("status", "expected"), [(404, KubeNotFound), (422, KubeError), (400, KubeError), (401, KubeError)])
async def test_other_client_errors_are_not_retried(status: int, expected: type[KubeError]) -> None:
    call, sleeps = FakeCall(api_error(status)), Sleeps()
    with pytest.raises(expected):
        await run(call, sleeps)
    assert call.calls == 1 and sleeps == []


async def test_attempts_are_bounded_and_backoff_grows_to_its_cap() -> None:
    call, sleeps = FakeCall(*[api_error(503, "etcd leader changed")] * 10), Sleeps()
    with pytest.raises(KubeUnavailable) as raised:
        await run(call, sleeps)
    assert call.calls == ATTEMPTS
    assert len(sleeps) == ATTEMPTS - 1
    for attempt, slept in enumerate(sleeps):
        step = min(MAX_DELAY_S, BASE_S * 2**attempt)
        assert step / 2 <= slept <= step
    assert "after 4 attempts" in str(raised.value) and "etcd leader changed" in str(raised.value)


async def test_a_conflict_that_never_clears_says_something_else_writes_the_object() -> None:
    with pytest.raises(KubeUnavailable, match="still conflicted after 4 attempts"):
        await run(FakeCall(*[api_error(409)] * 4), Sleeps())


async def test_retry_after_from_a_throttling_server_is_honoured_up_to_the_cap() -> None:
    sleeps = Sleeps()
    await run(FakeCall(api_error(429, headers={"Retry-After": "0.4"}), api_error(429, headers={"Retry-After": "60"})), sleeps)
    assert sleeps[0] == pytest.approx(0.4)
    assert sleeps[1] == MAX_DELAY_S


async def test_errors_raised_by_the_operation_itself_pass_through_unretried() -> None:
    call = FakeCall(KubeError("no previous revision"))
    with pytest.raises(KubeError, match="no previous revision"):
        await run(call, Sleeps())
    assert call.calls == 1

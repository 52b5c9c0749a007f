"""The reference model server (load/model_server.py), the target ``modelmedic certify`` is tested against:
its examples, its knobs and its deterministic failures. Over real HTTP it runs in tests/integration/test_release.py."""

from __future__ import annotations

import doctest
import hashlib
import json
import subprocess
import sys

import httpx
import pytest

from load import model_server
from load.model_server import ServerConfig, config_from_env, fails, predict


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(model_server, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


def test_injected_errors_are_the_same_requests_on_every_replay_and_about_the_rate() -> None:
    ids = [f"r{i}" for i in range(10_000)]
    first = [fails(i, 0.05) for i in ids]
    assert first == [fails(i, 0.05) for i in ids]
    assert 0.04 < sum(first) / len(ids) < 0.06
    assert not any(fails(i, 0.0) for i in ids) and all(fails(i, 1.0) for i in ids)


def test_a_bad_regressor_is_off_and_wrong_shapes_are_refused() -> None:
    good = ServerConfig(kind="regressor", weights=(1.0, 2.0))
    assert predict(good, [1, 1]) == 3.0
    assert predict(ServerConfig(kind="regressor", weights=(1.0, 2.0), bad=True), [1, 1]) == 13.0
    with pytest.raises(ValueError, match="expected 2 features, got 1"):
        predict(good, [1])


@pytest.mark.parametrize(("env", "message"), [
    ({"MODEL_ERROR_RATE": "1.5"}, "not a fraction"),
    ({"MODEL_LATENCY_MS": "-1"}, "latencies must be >= 0"),
    ({"MODEL_KIND": "ranker"}, "use 'regressor' or 'classifier'"),
])
def test_invalid_knobs_fail_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_env(env)


def test_env_knobs_reach_the_config() -> None:
    config = config_from_env({"MODEL_NAME": "fraud", "MODEL_VERSION": "v2.0.0", "MODEL_FAIL_HEALTH": "true",
                              "MODEL_LATENCY_MS": "7", "MODEL_BAD": "0"})
    assert (config.model, config.version, config.fail_health, config.latency_ms, config.bad) == (
        "fraud", "v2.0.0", True, 7.0, False)


def artifact(tmp_path, content: bytes) -> tuple[str, str]:
    """A file:// artifact holding ``content`` and the digest of ``content``."""
    path = tmp_path / "model.json"
    path.write_bytes(content)
    return f"file://{path}", "sha256:" + hashlib.sha256(content).hexdigest()


async def test_the_server_serves_the_model_in_its_verified_artifact(tmp_path) -> None:
    uri, digest = artifact(tmp_path, json.dumps({"kind": "regressor", "weights": [2.0, 0.0], "bias": 1.0}).encode())
    server = await model_server.start_server(ServerConfig(version="v2.0.0", weights=(1.0,), artifact=uri, digest=digest))
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = (await http.post("/predict", json={"request_id": "r", "features": [3, 9]})).json()
            health = (await http.get("/healthz")).json()
    finally:
        await server.close()
    assert answer["prediction"] == 7.0 and health["artifact_digest"] == digest


async def test_a_tampered_artifact_is_refused_before_anything_listens(tmp_path) -> None:
    uri, digest = artifact(tmp_path, b'{"weights": [1.0]}')
    (tmp_path / "model.json").write_bytes(b'{"weights": [-1.0]}')  # swapped after the registry pinned it
    with pytest.raises(model_server.ArtifactDigestMismatch, match=f"but the registry pinned {digest}: refusing"):
        await model_server.start_server(ServerConfig(artifact=uri, digest=digest))
    with pytest.raises(model_server.ArtifactDigestMismatch, match="no MODEL_DIGEST"):
        await model_server.start_server(ServerConfig(artifact=uri))


def test_the_script_exits_1_naming_both_digests_on_a_tampered_artifact(tmp_path) -> None:
    uri, digest = artifact(tmp_path, b"weights-v2")
    (tmp_path / "model.json").write_bytes(b"weights-v3")
    env = {"MODEL_NAME": "fraud", "MODEL_VERSION": "v2.0.0", "MODEL_ARTIFACT": uri, "MODEL_DIGEST": digest,
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, model_server.__file__, "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    actual = "sha256:" + hashlib.sha256(b"weights-v3").hexdigest()
    assert proc.stderr.strip() == (f"not serving fraud@v2.0.0: {uri} has {actual} but the registry pinned {digest}: "
                                   "refusing to serve it")

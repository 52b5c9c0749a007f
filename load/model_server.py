"""A reference model server: the smallest thing modelmedic can certify, deploy and health-check.

Copy it as the skeleton of a real server. The HTTP contract is what ``modelmedic certify``
replays requests against and what ``modelmedic deploy --health-url`` checks:

    POST /predict  {"request_id": "r1", "features": [0.5, 1.2]}  ->  {"prediction": 1, "version": "v1.0.0"}
    GET  /healthz  ->  200 {"status": "ok", "model": ..., "version": ..., "artifact_digest": ...}   (503 when told to fail)

Before it serves, it fetches its artifact (``MODEL_ARTIFACT``: a ``file://`` or ``http(s)://`` URI,
as ``modelmedic deploy`` sets it from the registry) and checks it against ``MODEL_DIGEST``
(``sha256:<hex>``): on a mismatch it refuses to start (exit 1, saying both digests), so a pod
handed a tampered or stale artifact never answers a request. A JSON artifact
``{"kind", "weights", "bias", "threshold"}`` is the model itself: its fields override the knobs.

The "model" is a linear function of the features: a regressor returns ``w . x + b``, a threshold
classifier returns 1 when ``w . x + b > threshold`` else 0. Behaviour knobs make it a good or a bad
release on purpose: base latency, a deterministic error rate (a request fails when a hash of its id
falls under the rate, so a replay fails the same requests every time), and ``--bad``, which adds
latency and answers wrongly, for tests of the certification gates and of automatic rollback.

    python load/model_server.py --port 8501 --model fraud --version v1.0.0 --kind classifier --weights 1,1
    MODEL_NAME=fraud MODEL_VERSION=v2.0.0 MODEL_BAD=1 python load/model_server.py --port 8502

In-process (tests): ``server = await start_server(ServerConfig(...))``, then ``server.url`` and
``await server.close()``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from aiohttp import web

Kind = Literal["regressor", "classifier"]


@dataclass(frozen=True)
class ServerConfig:
    """What the server predicts and how it behaves; every field has an env var (see :func:`config_from_env`)."""

    model: str = "demo"
    version: str = "v1.0.0"
    kind: Kind = "classifier"
    weights: tuple[float, ...] = (1.0,)
    bias: float = 0.0
    threshold: float = 0.0
    """Classifier only: the score above which the answer is 1."""
    latency_ms: float = 2.0
    """Time every prediction takes (a sleep: stands in for the model's compute)."""
    error_rate: float = 0.0
    """Fraction of requests answered 500, chosen by a hash of the request id (deterministic)."""
    bad: bool = False
    """A broken release: ``bad_latency_ms`` slower and wrong (classifier: flipped, regressor: offset)."""
    bad_latency_ms: float = 200.0
    fail_health: bool = False
    """/healthz answers 503: a server that started but cannot serve (e.g. its artifact did not load)."""
    artifact: str | None = None
    """Where the model's artifact is (``file://``, ``http(s)://``); fetched and verified before serving."""
    digest: str | None = None
    """``sha256:<hex>`` the artifact must have; required with ``artifact``."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate={self.error_rate} is not a fraction in [0, 1]")
        if self.latency_ms < 0 or self.bad_latency_ms < 0:
            raise ValueError("latencies must be >= 0 ms")
        if self.kind not in ("regressor", "classifier"):
            raise ValueError(f"kind={self.kind!r}: use 'regressor' or 'classifier'")


class ArtifactDigestMismatch(RuntimeError):
    """The artifact's bytes are not the ones the registry pinned: the server must not serve them."""


def fetch_artifact(uri: str, timeout_s: float = 30.0) -> bytes:
    """The artifact's bytes from a ``file://`` or ``http(s)://`` URI."""
    if uri.startswith("file://"):
        with open(uri.removeprefix("file://"), "rb") as handle:
            return handle.read()
    if uri.startswith(("http://", "https://")):
        with urllib.request.urlopen(uri, timeout=timeout_s) as response:  # noqa: S310 - schemes checked above
            return response.read()
    raise ValueError(f"artifact URI {uri!r}: the reference server fetches file:// and http(s):// only "
                     "(an init container can fetch anything else into a file:// path, see docs/releases.md)")


def verified(data: bytes, digest: str, uri: str) -> bytes:
    """``data`` when its sha256 is ``digest``; else raise, naming both.

    >>> verified(b"model", "sha256:" + hashlib.sha256(b"model").hexdigest(), "file:///m") == b"model"
    True
    >>> try:
    ...     verified(b"tampered", "sha256:" + hashlib.sha256(b"model").hexdigest(), "file:///m")
    ... except ArtifactDigestMismatch as exc:
    ...     print(str(exc)[:22], "...", str(exc)[-22:])
    file:///m has sha256:d ... refusing to serve it
    """
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ArtifactDigestMismatch(f"{uri} has {actual} but the registry pinned {digest}: refusing to serve it")
    return data


def load_artifact(config: ServerConfig) -> ServerConfig:
    """``config`` with its artifact fetched, verified against its digest, and (a JSON model) applied."""
    if config.artifact is None:
        return config
    if not config.digest:
        raise ArtifactDigestMismatch(f"{config.artifact} comes with no MODEL_DIGEST: refusing to serve an unpinned artifact")
    data = verified(fetch_artifact(config.artifact), config.digest, config.artifact)
    try:
        params = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return config  # an opaque artifact: verified, and the knobs describe the model
    known = {k: v for k, v in params.items() if k in ("kind", "bias", "threshold")} if isinstance(params, dict) else {}
    if isinstance(params, dict) and "weights" in params:
        known["weights"] = tuple(float(w) for w in params["weights"])
    return replace(config, **known)


def predict(config: ServerConfig, features: Sequence[float]) -> float | int:
    """The model: a linear score, thresholded for a classifier; deliberately wrong in bad mode.

    >>> predict(ServerConfig(kind="classifier", weights=(1.0, 1.0)), [0.4, 0.3])
    1
    >>> predict(ServerConfig(kind="classifier", weights=(1.0, 1.0), bad=True), [0.4, 0.3])
    0
    >>> predict(ServerConfig(kind="regressor", weights=(2.0,), bias=1.0), [3.0])
    7.0
    """
    if len(features) != len(config.weights):
        raise ValueError(f"expected {len(config.weights)} features, got {len(features)}")
    score = sum(w * float(x) for w, x in zip(config.weights, features)) + config.bias
    if config.kind == "classifier":
        label = int(score > config.threshold)
        return 1 - label if config.bad else label
    return score + 10.0 if config.bad else score


def fails(request_id: str, error_rate: float) -> bool:
    """Whether this request is one of the ``error_rate`` fraction that fail: same answer on every replay."""
    return zlib.crc32(request_id.encode()) / 2**32 < error_rate


def build_app(config: ServerConfig) -> web.Application:
    """The aiohttp application serving ``config``'s model."""

    async def handle_predict(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            request_id, features = str(body["request_id"]), body["features"]
            prediction = predict(config, features)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}; send {{request_id, features: [numbers]}}"},
                                     status=400)
        await asyncio.sleep((config.latency_ms + (config.bad_latency_ms if config.bad else 0.0)) / 1000)
        if fails(request_id, config.error_rate):
            return web.json_response({"error": "injected failure", "version": config.version}, status=500)
        return web.json_response({"prediction": prediction, "version": config.version, "request_id": request_id})

    async def handle_healthz(request: web.Request) -> web.Response:
        status = 503 if config.fail_health else 200
        return web.json_response({"status": "failing" if config.fail_health else "ok", "model": config.model,
                                  "version": config.version, "artifact_digest": config.digest}, status=status)

    app = web.Application()
    app.router.add_post("/predict", handle_predict)
    app.router.add_get("/healthz", handle_healthz)
    return app


@dataclass
class RunningServer:
    """A server started by :func:`start_server`: its base URL and how to stop it."""

    url: str
    config: ServerConfig
    _runner: web.AppRunner = field(repr=False)

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_server(config: ServerConfig, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``config`` on ``host:port`` in the running loop; port 0 picks a free port (tests).

    The artifact is verified first: :class:`ArtifactDigestMismatch` and nothing listening when it is not the pinned one.
    """
    config = await asyncio.to_thread(load_artifact, config)
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningServer(url=f"http://{bound_host}:{bound_port}", config=config, _runner=runner)


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def config_from_env(env: Mapping[str, str], base: ServerConfig = ServerConfig()) -> ServerConfig:
    """Read MODEL_NAME, MODEL_VERSION (as Kubernetes sets it), MODEL_KIND, MODEL_WEIGHTS (comma-separated),
    MODEL_BIAS, MODEL_THRESHOLD, MODEL_LATENCY_MS, MODEL_ERROR_RATE, MODEL_BAD, MODEL_BAD_LATENCY_MS,
    MODEL_FAIL_HEALTH, MODEL_ARTIFACT and MODEL_DIGEST over ``base``.

    >>> config_from_env({"MODEL_VERSION": "v2.0.0", "MODEL_WEIGHTS": "1,2", "MODEL_BAD": "1"}).weights
    (1.0, 2.0)
    """
    parsers = {
        "MODEL_NAME": ("model", str), "MODEL_VERSION": ("version", str), "MODEL_KIND": ("kind", str),
        "MODEL_WEIGHTS": ("weights", lambda v: tuple(float(w) for w in v.split(","))),
        "MODEL_BIAS": ("bias", float), "MODEL_THRESHOLD": ("threshold", float),
        "MODEL_LATENCY_MS": ("latency_ms", float), "MODEL_ERROR_RATE": ("error_rate", float),
        "MODEL_BAD": ("bad", _truthy), "MODEL_BAD_LATENCY_MS": ("bad_latency_ms", float),
        "MODEL_FAIL_HEALTH": ("fail_health", _truthy),
        "MODEL_ARTIFACT": ("artifact", str), "MODEL_DIGEST": ("digest", str),
    }
    return replace(base, **{name: parse(env[var]) for var, (name, parse) in parsers.items() if var in env})


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; the environment configures the model, ``--port``/``--host`` where it listens."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--model", help="overrides MODEL_NAME")
    parser.add_argument("--version", help="overrides MODEL_VERSION")
    parser.add_argument("--kind", choices=("regressor", "classifier"), help="overrides MODEL_KIND")
    parser.add_argument("--weights", help="comma-separated, overrides MODEL_WEIGHTS")
    parser.add_argument("--bad", action="store_true", help="slower and wrong: a broken release")
    args = parser.parse_args(argv)
    flags = {"MODEL_NAME": args.model, "MODEL_VERSION": args.version, "MODEL_KIND": args.kind,
             "MODEL_WEIGHTS": args.weights, "MODEL_BAD": "1" if args.bad else None}
    config = config_from_env({**os.environ, **{k: v for k, v in flags.items() if v is not None}})
    try:
        config = load_artifact(config)
    except (ArtifactDigestMismatch, OSError, ValueError) as exc:
        print(f"not serving {config.model}@{config.version}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc
    web.run_app(build_app(config), host=args.host, port=args.port, access_log=None,
                print=lambda _: print(f"serving {config.model}@{config.version} on http://{args.host}:{args.port}",
                                      flush=True))  # whoever started it waits for this line


if __name__ == "__main__":
    main()

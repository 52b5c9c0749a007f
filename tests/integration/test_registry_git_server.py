"""The service reads the registry from real git servers on loopback (issue 16 item 6).

Two servers, both git's own: ``git daemon`` (the git:// protocol, anonymous) and ``git
http-backend`` (smart HTTP) behind a loopback HTTP server that demands basic auth, as a hosted
git server does. The service's side is what runs in a pod: settings with ``registry_git`` (what
the Helm chart renders), credentials from a directory laid out like the mounted Secret, the first
clone at start (``modelmedic.app._registry_mirror``) and :func:`keep_fresh` refreshing it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelmedic.app import Service, _registry_mirror
from modelmedic.config import Settings
from modelmedic.errors import RemoteRegistryError
from modelmedic.registry import Registry, keep_fresh

DIGEST = "sha256:" + "0" * 64
USER, PASSWORD = "registry-reader", "pa55-w0rd"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def served(tmp_path: Path) -> tuple[Registry, Path]:
    """A registry people write (``work``) and the bare repository the servers publish (``repos/registry.git``)."""
    reg = Registry.init(tmp_path / "work")
    reg.register_model("fraud", description="Card fraud score", owners=["risk-team"],
                       interface={"input": {"type": "object"}, "output": {"type": "number"}})
    reg.add_version("fraud", "1.0.0", "first", "s3://m/fraud/1", DIGEST)
    bare = tmp_path / "repos" / "registry.git"
    bare.parent.mkdir()
    git(tmp_path, "init", "--quiet", "--bare", str(bare))
    publish(reg, bare)
    return reg, bare


def publish(reg: Registry, bare: Path) -> None:
    git(reg.path, "push", "--quiet", "--force", str(bare), "HEAD:refs/heads/main", "--tags")


@pytest.fixture
def git_daemon(served: tuple[Registry, Path]) -> Iterator[str]:
    """``git daemon --inetd`` per connection on a listening loopback socket: git:// URL of the registry."""
    _, bare = served
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by the teardown
            with conn:
                subprocess.run(["git", "daemon", "--inetd", "--export-all", f"--base-path={bare.parent}"],
                               stdin=conn, stdout=conn, stderr=subprocess.DEVNULL, check=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"git://127.0.0.1:{port}/registry.git"
    listener.close()
    thread.join(timeout=10)


class GitHttpBackend(BaseHTTPRequestHandler):
    """Smart HTTP through ``git http-backend`` (CGI), for one user with basic auth; refuses everyone else."""

    root: Path
    requests_seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._cgi()

    def do_POST(self) -> None:  # noqa: N802
        self._cgi()

    def _cgi(self) -> None:
        self.requests_seen.append(f"{self.command} {self.path} {self.headers.get('Authorization', '-')}")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_USER": USER,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().split("\r\n") if line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def git_http(served: tuple[Registry, Path]) -> Iterator[tuple[str, list[str]]]:
    """Smart HTTP with basic auth on loopback: the registry's URL and the requests the server saw."""
    _, bare = served
    seen: list[str] = []
    handler = type("Handler", (GitHttpBackend,), {"root": bare.parent, "requests_seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/registry.git", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def secret_dir(tmp_path: Path, password: str) -> Path:
    """A directory laid out like the chart's mounted Secret (keys username and password)."""
    secret = tmp_path / "secret"
    secret.mkdir(exist_ok=True)
    (secret / "username").write_text(USER)
    (secret / "password").write_text(password)
    return secret


async def test_the_service_clones_the_registry_over_git_and_keeps_it_fresh(served, git_daemon, tmp_path):
    reg, bare = served
    settings = Settings(registry_git={"url": git_daemon, "refresh_s": 0.05, "checkout_dir": str(tmp_path / "checkout")})
    mirror = _registry_mirror(settings)
    assert mirror is not None
    registry = Registry(mirror.path)
    assert [v.version for v in registry.show("fraud").versions] == ["v1.0.0"]

    reg.add_version("fraud", "1.1.0", "second", "s3://m/fraud/2", DIGEST)
    publish(reg, bare)
    stop = asyncio.Event()
    refresher = asyncio.create_task(keep_fresh(mirror, settings.registry_git.refresh_s, stop))
    try:
        async with asyncio.timeout(30):
            while "v1.1.0" not in {v.version for v in registry.show("fraud").versions}:
                await asyncio.sleep(0.05)  # the refresher swaps the checkout; readers see it on their next read
    finally:
        stop.set()
        await refresher
    assert registry.show("fraud").spec.owners == ("risk-team",)


def test_credentials_come_from_the_secret_and_never_show_in_errors(served, git_http, tmp_path):
    url, seen = git_http
    wrong = Settings(registry_git={"url": url, "checkout_dir": str(tmp_path / "a"),
                                   "credentials_dir": str(secret_dir(tmp_path, "not-the-password"))})
    with pytest.raises(RemoteRegistryError) as refused:
        _registry_mirror(wrong)
    assert "not-the-password" not in str(refused.value) and "check registry_git.url, ref and the credentials" in str(refused.value)

    anonymous = Settings(registry_git={"url": url, "checkout_dir": str(tmp_path / "b")})
    with pytest.raises(RemoteRegistryError):
        _registry_mirror(anonymous)  # and git never waited for a password prompt

    right = Settings(registry_git={"url": url, "checkout_dir": str(tmp_path / "c"),
                                   "credentials_dir": str(secret_dir(tmp_path, PASSWORD))})
    mirror = _registry_mirror(right)
    assert mirror is not None and Registry(mirror.path).stage("fraud", "v1.0.0") is None
    assert any(line.startswith("POST /registry.git/git-upload-pack Basic ") for line in seen), seen
    assert not any("git-receive-pack" in line for line in seen), "the service never pushes"


async def test_the_running_service_reads_owners_from_the_remote_and_follows_a_change(served, git_daemon, settings,
                                                                                     tmp_path):
    """The whole service (real Kafka) configured as the chart configures it: owners for pages come from the
    remote registry, and a change pushed there reaches the running service through its refresh task."""
    reg, bare = served
    remote = {"url": git_daemon, "refresh_s": 0.05, "checkout_dir": str(tmp_path / "checkout")}
    service = Service(settings.model_copy(update={"registry_git": Settings(registry_git=remote).registry_git}))
    assert service.owners("fraud") == ("risk-team",)
    task = asyncio.create_task(service.run())
    try:
        spec = reg.spec("fraud")
        reg.register_model("fraud", description=spec.description, owners=["payments-oncall"], interface=spec.interface,
                           update=True)
        publish(reg, bare)
        async with asyncio.timeout(30):
            while service.owners("fraud") != ("payments-oncall",):
                await asyncio.sleep(0.05)
        assert not task.done(), "the refresh loop runs beside the planes"
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)


async def test_the_service_pushes_usage_stats_to_the_remote_it_reads(served, settings, tmp_path):
    """registry_git.push_stats: the production traffic the service saw on real Kafka ends up as the version's
    stats file in the remote repository (a real ``git push`` over ``file://``: git daemon serves fetches only),
    pushed by the shutdown flush."""
    import json

    from modelmedic.events import InferenceEvent, encode
    from modelmedic.kafka import ensure_topics, producer

    reg, bare = served
    remote = {"url": f"file://{bare}", "refresh_s": 60, "push_stats": True, "checkout_dir": str(tmp_path / "checkout")}
    service = Service(settings.model_copy(update={"registry_git": Settings(registry_git=remote).registry_git}))
    await ensure_topics(settings.kafka)
    task = asyncio.create_task(service.run())
    try:
        p = producer(settings.kafka)
        await p.start()
        try:
            for i in range(300):  # 10 req/s of event time for 30 s: the 1 s windows before the last few close
                event = InferenceEvent("fraud", "v1.0.0", "production", f"r{i}", 1_767_225_600_000 + i * 100, 12.0, True)
                await p.send(settings.kafka.topics.inference, encode(event), key=b"fraud")
            await p.flush()
        finally:
            await p.stop()
        async with asyncio.timeout(60):
            while service.detection.processed < 300:
                await asyncio.sleep(0.05)
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 60)
    clone = tmp_path / "reader"
    git(tmp_path, "clone", "--quiet", "--branch", "main", str(bare), str(clone))
    stats = json.loads((clone / "models" / "fraud" / "versions" / "v1.0.0.stats.json").read_text())
    assert 250 <= stats["requests"] <= 300 and stats["errors"] == 0, stats
    assert stats["latency_p50_ms"] == pytest.approx(12.0, rel=0.02)
    assert not (reg.path / "models" / "fraud" / "versions" / "v1.0.0.stats.json").exists(), "pushed, not written by hand"

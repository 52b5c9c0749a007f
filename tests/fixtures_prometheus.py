"""A real Prometheus for tests (Debian's ``prometheus``, installed by deploy/local/setup.sh), and
the Prometheus Operator's translation of a ServiceMonitor, which the tests cannot run.

:class:`Prometheus` runs on a free loopback port, scraping and evaluating every second.
:func:`servicemonitor_scrape_configs` turns a rendered ServiceMonitor into the scrape jobs the
Operator would generate for it, so a real Prometheus scrapes what the chart asks for: no
Operator (nor its CRDs) runs here, and Debian's Prometheus has no Kubernetes discovery, so the
Services' endpoints are given as the pods' addresses (:class:`FakePod`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.local.procs import free_port  # noqa: E402

T = TypeVar("T")


class Prometheus:
    """Prometheus on a free loopback port with ``scrape_configs`` and ``rule_files``, every 1 s."""

    def __init__(self, workdir: Path, scrape_configs: list[dict], rule_files: list[Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": scrape_configs,
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())

    def query(self, expr: str) -> list[dict]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]

    def rules(self) -> list[dict]:
        """Every loaded rule with its state, health and last evaluation (/api/v1/rules)."""
        return [r for g in self.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]

    async def until(self, what: str, check: Callable[[], T], timeout_s: float = 30.0) -> T:
        """``check()``'s first truthy answer, polled; fails with ``what`` after ``timeout_s`` or if Prometheus exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                result = check()
            except (urllib.error.URLError, ConnectionError):
                result = None
            if result:
                return result
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what} not seen within {timeout_s:.0f}s")

    async def ready(self) -> None:
        """Until /-/ready answers 200 (before, the API answers 503 with a plain-text body)."""
        def answered() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    return response.status == 200
            except urllib.error.HTTPError:
                return False
        await self.until("prometheus ready", answered)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class FakePod:
    """A pod as a Service's endpoints list it: its name, labels and the address of its named port."""

    name: str
    labels: dict[str, str]
    address: str


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selected_services(monitor: dict, manifests: list[dict]) -> list[dict]:
    """The rendered Services the ServiceMonitor selects (its matchLabels and namespaceSelector)."""
    spec = monitor["spec"]
    namespaces = spec.get("namespaceSelector", {}).get("matchNames", [monitor["metadata"]["namespace"]])
    return [doc for doc in manifests if doc["kind"] == "Service" and doc["metadata"]["namespace"] in namespaces
            and _matches(spec["selector"]["matchLabels"], doc["metadata"].get("labels", {}))]


def servicemonitor_scrape_configs(monitor: dict, manifests: list[dict], pods: list[FakePod]) -> list[dict]:
    """The scrape jobs the Prometheus Operator makes of ``monitor``: one per selected Service and
    endpoint, one target per pod behind the Service's port of that name; ``job`` is the Service's
    name unless the endpoint's relabelings set it (only ``targetLabel``/``replacement`` relabelings,
    the kind the chart uses, are translated: anything else fails loudly)."""
    configs = []
    for service in selected_services(monitor, manifests):
        name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
        port_names = {port["name"] for port in service["spec"]["ports"]}
        for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
            assert endpoint["port"] in port_names, f"endpoint port {endpoint['port']!r} is not a port of Service {name}"
            relabel: list[dict[str, Any]] = [{"target_label": "job", "replacement": name}]
            for rule in endpoint.get("relabelings", []):
                assert set(rule) <= {"targetLabel", "replacement"}, f"relabeling {rule} not translated here"
                relabel.append({"target_label": rule["targetLabel"], "replacement": rule["replacement"]})
            configs.append({
                "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/{i}/{name}",
                "metrics_path": endpoint.get("path", "/metrics"),
                "static_configs": [{"targets": [pod.address],
                                    "labels": {"namespace": namespace, "service": name, "pod": pod.name}}
                                   for pod in pods if _matches(service["spec"]["selector"], pod.labels)],
                "relabel_configs": relabel,
            })
    return configs

"""A real Alertmanager on loopback (Debian's ``prometheus-alertmanager``): install, start, stop.

    python deploy/local/alertmanager.py install          # apt-get, when root and missing
    python deploy/local/alertmanager.py start --dir D    # prints the base URL
    python deploy/local/alertmanager.py stop --dir D

Importable too (the test fixtures use :func:`start` / :func:`stop`). Stdlib only, so it
runs before the project's virtual environment exists. No gossip (``--cluster.listen-address=``
empty), state in ``D/data``, log in ``D/alertmanager.log``, pid in ``D/alertmanager.pid``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import CACHE, StackError, free_port, progress, read_pid, report_status, spawn, stop_pid, wait_until  # noqa: E402

BINARY = "prometheus-alertmanager"
PACKAGE = "prometheus-alertmanager"


@dataclass
class Alertmanager:
    """A running Alertmanager: where to reach it and where its files are."""

    url: str
    port: int
    workdir: str
    pid: int

    @property
    def pidfile(self) -> Path:
        return Path(self.workdir) / "alertmanager.pid"


def ensure_installed(*, install: bool = True) -> str:
    """The path of the Alertmanager binary, installing the Debian package when root and allowed.

    Raises :class:`StackError` saying how to install it otherwise.
    """
    path = shutil.which(BINARY)
    if path is not None:
        return path
    if not install or os.geteuid() != 0:
        raise StackError(f"{BINARY} not found: run `apt-get install -y {PACKAGE}` (as root) and try again")
    t0 = time.monotonic()
    progress(f"installing {PACKAGE} with apt-get")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", PACKAGE]):
        result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if result.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
    path = shutil.which(BINARY)
    if path is None:
        raise StackError(f"{PACKAGE} installed but {BINARY} is not on PATH: check `dpkg -L {PACKAGE}`")
    progress(f"{PACKAGE} installed", t0)
    return path


def config_yaml(webhook_url: str | None = None) -> str:
    """A minimal configuration: alerts go nowhere, or to ``webhook_url`` at once, resolves included.

    Written as JSON, which is YAML, so no YAML library is needed.
    """
    route = {"receiver": "default", "group_by": ["incident_id"], "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    receiver: dict = {"name": "default"}
    if webhook_url is not None:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return json.dumps({"route": route, "receivers": [receiver]}, indent=2) + "\n"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(workdir: str | Path, *, webhook_url: str | None = None, config: str | None = None,
          timeout_s: float = 30.0) -> Alertmanager:
    """Start (or find running) the Alertmanager whose files live in ``workdir``; ready when it returns.

    ``config`` (YAML or JSON text) replaces :func:`config_yaml`'s minimal one (a routing tree)."""
    binary = ensure_installed()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state_file = workdir / "alertmanager.json"
    if state_file.exists():
        known = Alertmanager(**json.loads(state_file.read_text()))
        if read_pid(known.pidfile) is not None and _ready(known.url):
            return known
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(config or config_yaml(webhook_url))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "alertmanager.log"
    cmd = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=info",
    ]
    proc = spawn(cmd, log, workdir / "alertmanager.pid")
    wait_until(lambda: proc.poll() is None and _ready(url), timeout_s, f"Alertmanager on {url}", log)
    am = Alertmanager(url, port, str(workdir), proc.pid)
    state_file.write_text(json.dumps(asdict(am)))
    return am


def stop(workdir: str | Path) -> bool:
    """Stop the Alertmanager of ``workdir`` (TERM, then KILL). True if one was running."""
    return stop_pid(Path(workdir) / "alertmanager.pid")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["install", "start", "stop", "status"])
    parser.add_argument("--dir", default=str(CACHE / "run" / "alertmanager"), help="config, data, log and pid file")
    parser.add_argument("--webhook-url", help="forward every alert (and its resolution) to this URL")
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            print(ensure_installed())
        elif args.action == "start":
            t0 = time.monotonic()
            am = start(args.dir, webhook_url=args.webhook_url)
            progress(f"Alertmanager ready at {am.url} (logs in {args.dir})", t0)
            print(am.url)
        elif args.action == "stop":
            print("stopped" if stop(args.dir) else "not running")
        else:
            return report_status(Path(args.dir), "alertmanager.json", "alertmanager.pid", "url")
    except StackError as exc:
        print(f"[modelmedic] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``helm`` binary for checking the chart: built from the Go module proxy once, cached.

helm is not in Debian and no release download site is reachable here, so it is built
with ``go install helm.sh/helm/v3/cmd/helm@<pinned>`` (measured: 2 min 49 s cold on
2 cores, 5 s when the module cache is warm) into ``~/.cache/modelmedic/helm/bin``, with
the ldflags helm's own Makefile sets (its version, and the Kubernetes version that
``helm template``/``helm lint`` assume, which would otherwise be 1.20).

    python deploy/helm/tool.py build     # prints the binary's path; instant when cached

Importable: the tests call :func:`ensure_helm`. Standard library only (runs before the
project's virtual environment exists). A helm already on PATH is used when it is v3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from procs import CACHE, StackError, progress  # noqa: E402

HELM_VERSION = "v3.19.5"
KUBE_MINOR = "34"  # the local control plane's (deploy/local/kube.py: v1.34.3)
HELM_CACHE = CACHE / "helm"
HELM_BIN = HELM_CACHE / "bin" / "helm"
STAMP = HELM_CACHE / "version.json"
CHART = Path(__file__).resolve().parent / "modelmedic"


def _find_go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError("go not found on PATH or at /usr/local/go/bin/go: install Go >= 1.24 to build helm")
    return go


def is_built() -> bool:
    try:
        return json.loads(STAMP.read_text()) == {"helm": HELM_VERSION} and HELM_BIN.is_file()
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def build(force: bool = False) -> Path:
    """Build the pinned helm into the cache unless it is there already; return its path."""
    if is_built() and not force:
        return HELM_BIN
    t0 = time.monotonic()
    go = _find_go()
    HELM_BIN.parent.mkdir(parents=True, exist_ok=True)
    STAMP.unlink(missing_ok=True)
    log = HELM_CACHE / "build.log"
    ldflags = " ".join([
        "-s", "-w",
        f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={KUBE_MINOR}",
    ])
    progress(f"building helm {HELM_VERSION} from the Go module proxy into {HELM_BIN} (cold: about 3 min; log {log})")
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOBIN": str(HELM_BIN.parent)}
    with log.open("w") as out:
        result = subprocess.run(
            [go, "install", "-p", str(os.cpu_count() or 2), "-trimpath", f"-ldflags={ldflags}",
             f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            cwd=HELM_CACHE, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise StackError(f"building helm failed (exit {result.returncode}); log {log}:\n{tail}\n"
                         "Check that the Go module proxy is reachable.")
    STAMP.write_text(json.dumps({"helm": HELM_VERSION}))
    progress(f"helm {HELM_VERSION} ready", t0)
    return HELM_BIN


def ensure_helm() -> str:
    """A helm v3 binary: one on PATH, else the cached build (built now if missing)."""
    found = shutil.which("helm")
    if found:
        version = subprocess.run([found, "version", "--short"], capture_output=True, text=True, check=False).stdout
        if version.startswith("v3."):
            return found
    return str(build())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["build"], ["build", "--force"]):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(build(force="--force" in args))
    except StackError as error:
        print(f"[modelmedic] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local Kubernetes control plane: build, start, stop and check it.

A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with
KWOK simulating nodes and pods, so Deployments roll out, scale and roll back
through the real controllers with no kubelet (docs/kubernetes.md).

    python deploy/local/kube.py build                # binaries into ~/.cache/modelmedic/kube/bin, once
    python deploy/local/kube.py start  [--dir DIR]   # prints the stack (server, kubeconfigs) as JSON
    python deploy/local/kube.py status [--dir DIR]   # exit 0 when it runs and answers /readyz
    python deploy/local/kube.py stop   [--dir DIR]

Importable too: the test fixtures use :func:`start`, :func:`stop`,
:func:`ensure_namespace` and :func:`grant`. Standard library only, so it runs
before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import CACHE, StackError, free_port, progress, read_pid, spawn, stop_pid, wait_until  # noqa: E402

KUBERNETES_VERSION = "v1.34.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
PINNED = {"kubernetes": KUBERNETES_VERSION, "etcd": ETCD_VERSION, "kwok": KWOK_VERSION}

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "deploy" / "local" / "kube"
RBAC_DIR = REPO / "deploy" / "rbac"
KUBE_CACHE = CACHE / "kube"
BIN_DIR = KUBE_CACHE / "bin"
STAGES_FILE = KUBE_CACHE / "kwok-stages.yaml"
STAMP_FILE = KUBE_CACHE / "versions.json"

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = ("etcd", *CONTROL_PLANE, "kwok")
# The stage files KWOK needs since v0.8 ("no stages found" otherwise), relative
# to kustomize/stage/ in its module: nodes turn Ready, pods run and turn Ready.
KWOK_STAGE_GLOBS = ("node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml", "pod/fast/pod-*.yaml")

# Identities in the API server's token file. The service's user name is the one
# its ServiceAccount has in a real cluster, so deploy/rbac binds it unchanged.
ADMIN_USER = "modelmedic-admin"
SERVICE_USER = "system:serviceaccount:modelmedic:modelmedic"
SERVICE_GROUPS = "system:serviceaccounts,system:serviceaccounts:modelmedic"
DEFAULT_MODELS_NAMESPACE = "models"

KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# What a pod spec needs to land on the (tainted) KWOK nodes.
KWOK_POD_PLACEMENT = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": KWOK_ANNOTATION[0], "operator": "Exists", "effect": "NoSchedule"}],
}
NODE_COUNT = 3
NODE_CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "110"}
START_TIMEOUT_S = 60.0


# ---------------------------------------------------------------- build


def find_go() -> str:
    """The go command: on PATH, or where the official tarball installs it."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError(
            "go not found on PATH or at /usr/local/go/bin/go: install Go >= 1.24 "
            "(https://go.dev/dl/) to build the local Kubernetes control plane"
        )
    return go


def is_built() -> bool:
    """True when every binary exists and was built from the versions pinned here."""
    try:
        stamp = json.loads(STAMP_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return stamp == PINNED and STAGES_FILE.is_file() and all((BIN_DIR / name).is_file() for name in BINARIES)


def _log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _run_go(step: str, args: Sequence[str], cwd: Path, env: dict[str, str], log: Path, t0: float) -> None:
    """Run one go command, appending its output to the build log; fail with the log's tail."""
    progress(f"{step}: {' '.join(args[1:])}", t0)
    with log.open("a") as out:
        out.write(f"\n=== {step}: {' '.join(args)} (in {cwd})\n")
        out.flush()
        result = subprocess.run(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StackError(
            f"building {step} failed (exit {result.returncode}); full log in {log}:\n{_log_tail(log)}\n"
            "Check that the Go module proxy is reachable and that ~4 GB of disk are free."
        )
    progress(f"{step}: built", t0)


def _copy_kwok_stages(go: str, env: dict[str, str]) -> None:
    """Concatenate KWOK's shipped stage YAMLs (in the module cache) into the one file --config takes."""
    modcache = subprocess.run([go, "env", "GOMODCACHE"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    stage_root = Path(modcache) / f"sigs.k8s.io/kwok@{KWOK_VERSION}" / "kustomize" / "stage"
    files = [path for pattern in KWOK_STAGE_GLOBS for path in sorted(stage_root.glob(pattern))]
    if len(files) < len(KWOK_STAGE_GLOBS):
        raise StackError(f"KWOK stage files missing under {stage_root}: run `go mod download sigs.k8s.io/kwok@{KWOK_VERSION}`")
    STAGES_FILE.write_text("\n---\n".join(path.read_text().strip() for path in files) + "\n")


def build(force: bool = False) -> Path:
    """Build etcd, the control plane and KWOK into the cache once per pinned version; return the bin dir.

    Cold this takes about 6.5 minutes on 2 cores (docs/kubernetes.md), so the
    result is stamped with the pinned versions and reused by every workdir.
    """
    t0 = time.monotonic()
    if is_built() and not force:
        return BIN_DIR
    go = find_go()
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    STAMP_FILE.unlink(missing_ok=True)
    log = KUBE_CACHE / "build.log"
    log.write_text("")
    flags = ["-p", str(os.cpu_count() or 2), "-buildvcs=false", "-trimpath", "-ldflags=-s -w"]
    progress(f"building {', '.join(BINARIES)} into {BIN_DIR} (cold: about 6.5 min on 2 cores; log {log})")
    _run_go(
        f"kubernetes {KUBERNETES_VERSION}",
        [go, "build", *flags, "-o", f"{BIN_DIR}{os.sep}", *(f"k8s.io/kubernetes/cmd/{name}" for name in CONTROL_PLANE)],
        MODULES_DIR / "kubernetes", env, log, t0,
    )
    _run_go(f"etcd {ETCD_VERSION}", [go, "build", *flags, "-o", str(BIN_DIR / "etcd"), "."], MODULES_DIR / "etcd", env, log, t0)
    _run_go(
        f"kwok {KWOK_VERSION}", [go, "install", *flags, f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
        KUBE_CACHE, {**env, "GOBIN": str(BIN_DIR)}, log, t0,
    )
    _copy_kwok_stages(go, env)
    STAMP_FILE.write_text(json.dumps(PINNED))
    progress(f"control plane binaries ready in {BIN_DIR}", t0)
    return BIN_DIR


# ---------------------------------------------------------------- the running stack


@dataclass(frozen=True)
class KubeStack:
    """A running local control plane: where to reach it, as whom, and its processes."""

    workdir: str
    server: str
    ca_file: str
    admin_kubeconfig: str
    service_kubeconfig: str
    admin_token: str
    pids: dict[str, int]


def _state_file(workdir: Path) -> Path:
    return workdir / "kube-stack.json"


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def api(stack: KubeStack, method: str, path: str, body: str | None = None, content_type: str = "application/json") -> dict:
    """One admin request to the API server; raise StackError with the server's answer on failure."""
    request = urllib.request.Request(
        stack.server + path, method=method, data=body.encode() if body is not None else None,
        headers={"Authorization": f"Bearer {stack.admin_token}", "Content-Type": content_type, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=_ssl_context(stack.ca_file), timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise StackError(f"{method} {path} -> HTTP {error.code}: {error.read().decode(errors='replace')[:500]}") from error


def _readyz(server: str, token: str, ca_file: str) -> bool:
    """True when the API server answers /readyz with 200 over TLS verified against its CA."""
    if not Path(ca_file).exists():
        return False
    request = urllib.request.Request(server + "/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=_ssl_context(ca_file), timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _is_zombie(pid: int) -> bool:
    """A killed component stays a zombie until its parent (or init) reaps it: it is not running."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def status(workdir: str | Path) -> KubeStack | None:
    """The stack running in ``workdir``, or None when any of its processes is gone or it is not ready."""
    try:
        stack = KubeStack(**json.loads(_state_file(Path(workdir)).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
    alive = all(read_pid(Path(workdir) / f"{name}.pid") == pid and not _is_zombie(pid) for name, pid in stack.pids.items())
    return stack if alive and _readyz(stack.server, stack.admin_token, stack.ca_file) else None


def stop(workdir: str | Path) -> bool:
    """Stop every component of ``workdir``'s stack (TERM, then KILL). True if any ran.

    All at once: a component this process did not start is reaped by init, which
    takes seconds here, and the cluster's data is thrown away anyway.
    """
    with ThreadPoolExecutor(max_workers=len(BINARIES)) as pool:
        return any(pool.map(stop_pid, (Path(workdir) / f"{name}.pid" for name in BINARIES)))


def _make_keys(workdir: Path) -> Path:
    """The RSA key the API server signs and verifies ServiceAccount tokens with."""
    key = workdir / "pki" / "sa.key"
    if shutil.which("openssl") is None:
        raise StackError("openssl not found: install it (apt-get install -y openssl) to make the ServiceAccount signing key")
    key.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"openssl genrsa failed: {result.stderr.strip()}")
    return key


def _write_tokens(workdir: Path) -> dict[str, str]:
    """The static token file: an admin in system:masters and the service's own identity."""
    tokens = {ADMIN_USER: secrets.token_hex(24), SERVICE_USER: secrets.token_hex(24)}
    rows = [
        f'{tokens[ADMIN_USER]},{ADMIN_USER},{ADMIN_USER},"system:masters"',
        f'{tokens[SERVICE_USER]},{SERVICE_USER},modelmedic,"{SERVICE_GROUPS}"',
    ]
    path = workdir / "tokens.csv"
    path.write_text("\n".join(rows) + "\n")
    path.chmod(0o600)
    return tokens


def _write_kubeconfig(path: Path, server: str, ca_file: str, user: str, token: str) -> Path:
    """A kubeconfig (JSON is valid YAML) that verifies the server against the local CA."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelmedic-local", "cluster": {"server": server, "certificate-authority": ca_file}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "modelmedic-local", "context": {"cluster": "modelmedic-local", "user": user}}],
        "current-context": "modelmedic-local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _launch(workdir: Path, name: str, args: Sequence[str]) -> subprocess.Popen:
    return spawn([str(BIN_DIR / name), *args], workdir / "logs" / f"{name}.log", workdir / f"{name}.pid")


def _alive_and(proc: subprocess.Popen, name: str, log: Path, check: Callable[[], bool]) -> Callable[[], bool]:
    """Wrap a readiness check so a component that exits fails the start at once, with its log."""

    def checked() -> bool:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with {proc.returncode} while starting; last lines of {log}:\n{_log_tail(log, 20)}")
        return check()

    return checked


def _etcd_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return json.loads(response.read()).get("health") == "true"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def _start_etcd(workdir: Path) -> tuple[subprocess.Popen, str]:
    client, peer = free_port(), free_port()
    data = workdir / "etcd-data"
    shutil.rmtree(data, ignore_errors=True)
    proc = _launch(workdir, "etcd", [
        "--name=local", f"--data-dir={data}", "--log-level=warn",
        f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=local=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync",  # a throwaway test cluster: durability is not worth the disk latency
    ])
    log = workdir / "logs" / "etcd.log"
    wait_until(_alive_and(proc, "etcd", log, lambda: _etcd_healthy(client)), START_TIMEOUT_S, "etcd", log)
    return proc, f"http://127.0.0.1:{client}"


def _start_apiserver(workdir: Path, etcd_url: str, sa_key: Path, admin_token: str) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    cert_dir = workdir / "pki"
    ca_file = cert_dir / "apiserver.crt"  # self-signed by the API server at first start; it is its own CA
    proc = _launch(workdir, "kube-apiserver", [
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={cert_dir}",
        f"--token-auth-file={workdir / 'tokens.csv'}", "--authorization-mode=Node,RBAC",
        f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--endpoint-reconciler-type=none",  # the default Service would point at loopback, which Endpoints reject
    ])
    server = f"https://127.0.0.1:{port}"
    log = workdir / "logs" / "kube-apiserver.log"
    wait_until(_alive_and(proc, "kube-apiserver", log, lambda: _readyz(server, admin_token, str(ca_file))), START_TIMEOUT_S, "kube-apiserver /readyz", log)
    return proc, server, str(ca_file)


def _node(index: int) -> dict:
    """A KWOK-managed Node with capacity, tainted so only pods meant for KWOK land on it."""
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        "spec": {"taints": [{"key": KWOK_ANNOTATION[0], "value": KWOK_ANNOTATION[1], "effect": "NoSchedule"}]},
        "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
    }


def _nodes_schedulable(stack: KubeStack) -> bool:
    """All KWOK nodes Ready and free of the not-ready taint (lifted by the node-lifecycle controller).

    A slow answer (a loaded machine) only means "not yet"; an HTTP error still fails the start.
    """
    try:
        nodes = api(stack, "GET", "/api/v1/nodes?labelSelector=type%3Dkwok").get("items", [])
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return False

    def schedulable(node: dict) -> bool:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
        return ready and not any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", []))

    return len(nodes) == NODE_COUNT and all(schedulable(node) for node in nodes)


def _apply(stack: KubeStack, path: str, document: str) -> dict:
    """Server-side apply of one YAML or JSON document: creates or updates, so start can be repeated."""
    return api(stack, "PATCH", f"{path}?fieldManager=modelmedic-local&force=true", document, "application/apply-patch+yaml")


# Where each kind our manifests use lives in the API (cluster-scoped kinds have no {namespace}).
_RESOURCE_PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}",
}


def _top_level(document: str, key: str, indent: str = "") -> str | None:
    match = re.search(rf"^{indent}{key}:[ \t]*(\S+)[ \t]*$", document, re.MULTILINE)
    return match.group(1) if match else None


def _metadata_block(document: str) -> str:
    """The indented lines under the top-level ``metadata:`` key, up to the next top-level key."""
    match = re.search(r"^metadata:[ \t]*\n((?:[ \t]+.*(?:\n|$)|[ \t]*\n)*)", document, re.MULTILINE)
    return match.group(1) if match else ""


def apply_manifest(stack: KubeStack, manifest: Path, namespace: str | None = None) -> None:
    """Apply a multi-document manifest as the admin; ``namespace`` fills documents that name none.

    Only the kinds in _RESOURCE_PATHS are supported: this is for deploy/rbac, and
    the stdlib has no YAML parser, so kind/name/namespace are read from their
    conventional top-level lines and the API server parses the rest.
    """
    for document in re.split(r"^---[ \t]*$", manifest.read_text(), flags=re.MULTILINE):
        kind = _top_level(document, "kind")
        if kind is None:
            continue
        if kind not in _RESOURCE_PATHS:
            raise StackError(f"{manifest}: kind {kind} is not supported by deploy/local/kube.py apply_manifest")
        metadata = _metadata_block(document)
        name = _top_level(metadata, "name", "  ")
        target = _top_level(metadata, "namespace", "  ") or namespace
        if name is None or ("{namespace}" in _RESOURCE_PATHS[kind] and target is None):
            raise StackError(f"{manifest}: a {kind} needs metadata.name and a namespace (in the file or passed in)")
        _apply(stack, _RESOURCE_PATHS[kind].format(name=name, namespace=target), document)


def ensure_namespace(stack: KubeStack, name: str) -> None:
    """Create the namespace if it is missing."""
    _apply(stack, f"/api/v1/namespaces/{name}", json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))


def grant(stack: KubeStack, namespace: str) -> None:
    """Let the modelmedic identity manage the model Deployments of ``namespace`` (deploy/rbac/role.yaml)."""
    ensure_namespace(stack, namespace)
    apply_manifest(stack, RBAC_DIR / "role.yaml", namespace)


def _start_workers(workdir: Path, admin_kubeconfig: Path, sa_key: Path, ca_file: str) -> dict[str, subprocess.Popen]:
    """The controller-manager, scheduler and KWOK, all acting as the admin."""
    common = [f"--kubeconfig={admin_kubeconfig}", "--secure-port=0", "--leader-elect=false"]
    return {
        "kube-controller-manager": _launch(workdir, "kube-controller-manager", [
            *common, f"--service-account-private-key-file={sa_key}", "--use-service-account-credentials=true",
            f"--root-ca-file={ca_file}",
            # node-lifecycle stays on: it lifts the not-ready taint every new node gets
            "--controllers=*,-nodeipam,-cloud-node-lifecycle",
        ]),
        "kube-scheduler": _launch(workdir, "kube-scheduler", common),
        "kwok": _launch(workdir, "kwok", [
            f"--kubeconfig={admin_kubeconfig}", f"--config={STAGES_FILE}", "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
        ]),
    }


def _start_fresh(workdir: Path, timeout_s: float) -> KubeStack:
    t0 = time.monotonic()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    sa_key = _make_keys(workdir)
    tokens = _write_tokens(workdir)
    etcd, etcd_url = _start_etcd(workdir)
    apiserver, server, ca_file = _start_apiserver(workdir, etcd_url, sa_key, tokens[ADMIN_USER])
    progress(f"kube-apiserver ready at {server}", t0)
    admin_kubeconfig = _write_kubeconfig(workdir / "admin.kubeconfig", server, ca_file, ADMIN_USER, tokens[ADMIN_USER])
    service_kubeconfig = _write_kubeconfig(workdir / "modelmedic.kubeconfig", server, ca_file, SERVICE_USER, tokens[SERVICE_USER])
    procs = {"etcd": etcd, "kube-apiserver": apiserver, **_start_workers(workdir, admin_kubeconfig, sa_key, ca_file)}
    stack = KubeStack(
        workdir=str(workdir), server=server, ca_file=ca_file, admin_kubeconfig=str(admin_kubeconfig),
        service_kubeconfig=str(service_kubeconfig), admin_token=tokens[ADMIN_USER],
        pids={name: proc.pid for name, proc in procs.items()},
    )
    for index in range(NODE_COUNT):
        _apply(stack, f"/api/v1/nodes/kwok-node-{index}", json.dumps(_node(index)))
    checks = [_alive_and(proc, name, workdir / "logs" / f"{name}.log", lambda: True) for name, proc in procs.items()]
    wait_until(
        lambda: all(check() for check in checks) and _nodes_schedulable(stack),
        timeout_s, f"{NODE_COUNT} KWOK nodes Ready", workdir / "logs" / "kwok.log",
    )
    apply_manifest(stack, RBAC_DIR / "serviceaccount.yaml")
    grant(stack, DEFAULT_MODELS_NAMESPACE)
    _state_file(workdir).write_text(json.dumps(asdict(stack), indent=2))
    progress(f"Kubernetes control plane ready ({NODE_COUNT} KWOK nodes, RBAC applied)", t0)
    return stack


def start(workdir: str | Path, timeout_s: float = START_TIMEOUT_S) -> KubeStack:
    """Start the control plane whose files live in ``workdir``, or return the one already running there.

    A stack found half-running (a crash, a killed process) is stopped and started
    fresh: its etcd data is discarded, this is a test cluster. A start that fails
    stops what it started before raising.
    """
    workdir = Path(workdir).resolve()
    running = status(workdir)
    if running is not None:
        return running
    build()
    stop(workdir)
    try:
        return _start_fresh(workdir, timeout_s)
    except BaseException:
        stop(workdir)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build | start | stop | status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "start", "stop", "status"))
    parser.add_argument("--dir", default=str(KUBE_CACHE / "run"), help="etcd data, keys, kubeconfigs, logs and pid files")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            print(build())
        elif args.action == "start":
            print(json.dumps(asdict(start(args.dir)), indent=2))
        elif args.action == "stop":
            print("stopped" if stop(args.dir) else "not running")
        else:
            stack = status(args.dir)
            print(json.dumps(asdict(stack), indent=2) if stack else "not running")
            return 0 if stack else 1
    except StackError as error:
        print(f"[modelmedic] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the model registry at fleet scale: 1,000 models x 10 versions, ~45,000 GTO tags.

Builds the registry in one ``git fast-import`` stream (seconds, not the minutes 10,000 CLI calls
would take), then times the interactive reads through the Python API and through the CLI:

    .venv/bin/python load/bench_registry.py [--models 1000] [--versions 10] [--keep DIR]

Every version gets its own commit (GTO resolves a stage tag to the version tag on the same commit),
a certification report, a registration tag with notes, and stage tags: candidate, certified; the
last three versions rotate through canary and stable and the newest is canary, as a busy fleet
would look.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from modelmedic.registry import Registry

_IDENT = "bench <bench@localhost>"
_DIGEST = "sha256:" + "ab" * 32
_INTERFACE_YAML = (
    "interface:\n  input:\n    type: object\n    properties:\n      amount: {type: number}\n"
    "    required: [amount]\n  output:\n    type: number\n"
)
_CERT = (
    '{"latency_p50_ms": 12.0, "latency_p95_ms": 30.0, "latency_p99_ms": 55.0, '
    '"throughput_rps": 400.0, "error_rate": 0.001, "quality": {"auc": 0.91}}\n'
)


def _blob(path: str, text: str) -> str:
    return f"M 100644 inline {path}\n" + _data(text)


def _data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def _stages(v: int, versions: int) -> list[str]:
    """A busy model's lifecycle: all certified, the last three rotate through canary and stable.

    Ends with the second newest stable, the third newest the previous stable, the newest the canary.
    """
    stages = ["candidate", "certified"]
    if versions - 3 <= v < versions:
        stages += ["canary", "stable"]
    if v == versions:
        stages.append("canary")
    return stages


def _stream(models: int, versions: int) -> Iterator[str]:
    """fast-import commands: one commit with every model.yaml, then a commit and tags per version."""
    clock = 1_700_000_000
    yield f"commit refs/heads/main\nmark :1\ncommitter {_IDENT} {clock} +0000\n" + _data("Bench registry")
    yield _blob("registry.yaml", "format: 1\n")
    for m in range(models):
        name = f"model-{m:04d}"
        yield _blob(f"models/{name}/model.yaml", f"description: Bench model {m}\nowners: [team-{m % 40}]\n"
                    f"{_INTERFACE_YAML}languages: [python]\nruntime: onnxruntime\n")
    mark = 1
    for m in range(models):
        name = f"model-{m:04d}"
        counter = 0
        for v in range(1, versions + 1):
            version = f"v1.{v}.0"
            mark += 1
            clock += 1
            yield f"commit refs/heads/main\nmark :{mark}\ncommitter {_IDENT} {clock} +0000\n"
            yield _data(f"Register {name} {version}") + f"from :{mark - 1}\n"
            yield _blob(f"models/{name}/versions/{version}.yaml",
                        f"model: {name}\nversion: {version}\nartifact_uri: s3://bench/{name}/{version}/model.onnx\n"
                        f"digest: '{_DIGEST}'\n")
            yield _blob(f"models/{name}/versions/{version}.cert.json", _CERT)
            stages = _stages(v, versions)
            yield f"tag {name}@{version}\nfrom :{mark}\ntagger {_IDENT} {clock} +0000\n"
            yield _data(f"Release notes for {name} {version}")
            for stage in stages:
                counter += 1
                yield f"tag {name}#{stage}#{counter}\nfrom :{mark}\ntagger {_IDENT} {clock} +0000\n"
                yield _data(f"Assigning stage {stage} to artifact {name} version {version}")


def build(path: Path, models: int, versions: int) -> None:
    """Create the registry at ``path`` (git init, fast-import, pack refs, check out)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    for chunk in _stream(models, versions):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "pack-refs", "--all"], cwd=path, check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=path, check=True)


def _cpu_s() -> float:
    """CPU seconds of this process plus its finished children (git, CLI runs): barely moved by other load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _time_ms(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """Median and max wall time and median CPU time, in ms, over ``runs`` calls (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _cpu_s()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((_cpu_s() - start_cpu) * 1000)
    return statistics.median(wall), max(wall), statistics.median(cpu)


def _python(*args: str) -> Callable[[], object]:
    """A fresh interpreter as a user's shell starts one, with bytecode cached (as an installed wheel has it).

    The cache goes to a temporary prefix, so the source tree stays clean even under
    ``PYTHONDONTWRITEBYTECODE`` (which would otherwise recompile every module on every run).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "modelmedic-bench-pycache")
    return lambda: subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)


# The registry commands alone, without the other command modules `modelmedic` loads at start:
# separates this module's cost from theirs (a module importing numpy/scipy at the top costs every command).
_REGISTRY_ONLY = (
    "import argparse, sys; from modelmedic.cli import registry; "
    "parser = argparse.ArgumentParser(prog='modelmedic'); "
    "registry_commands.add_commands(parser.add_subparsers(required=True)); "
    "args = parser.parse_args(); sys.exit(args.func(args))"
)


def _cli(path: Path, *args: str, registry_only: bool = False) -> Callable[[], object]:
    entry = ("-c", _REGISTRY_ONLY) if registry_only else ("-m", "modelmedic")
    return _python(*entry, "registry", *args, "--registry", str(path))


def _report(label: str, fn: Callable[[], object], runs: int) -> None:
    wall, worst, cpu = _time_ms(fn, runs)
    print(f"{label:32} {wall:15.1f} {worst:12.1f} {cpu:14.1f}")


def _bench(path: Path, models: int, runs: int) -> None:
    reg = Registry(path)
    model = f"model-{models // 2:04d}"
    reads = [
        ("api show", lambda: reg.show(model)),
        ("api stable_version", lambda: reg.stable_version(model)),
        ("api previous_stable_version", lambda: reg.previous_stable_version(model)),
        ("api stable_versions", lambda: reg.stable_versions(model)),
        ("api certified_baseline", lambda: reg.certified_baseline(model, "v1.9.0")),
        ("api history", lambda: reg.history(model)),
        ("api list_models (cached)", reg.list_models),
        ("api list_models (refresh)", lambda: reg.list_models(refresh=True)),
        ("cli baseline: python -c pass", _python("-c", "pass")),
        ("cli baseline: modelmedic --help", _python("-m", "modelmedic", "--help")),
        ("cli show", _cli(path, "show", model)),
        ("cli stable", _cli(path, "stable", model)),
        ("cli list", _cli(path, "list")),
        ("cli list --json", _cli(path, "list", "--json")),
        ("registry-only cli show", _cli(path, "show", model, registry_only=True)),
        ("registry-only cli stable", _cli(path, "stable", model, registry_only=True)),
        ("registry-only cli list", _cli(path, "list", registry_only=True)),
    ]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'operation':32} {'wall median ms':>15} {'wall max ms':>12} {'cpu median ms':>14}")
    for label, fn in reads:
        _report(label, fn, runs)

    written = f"model-{models - 1:04d}"  # writes go to another model, so a kept registry reads the same again
    patches = itertools.count(len(reg.show(written).versions))
    added: list[str] = []

    def add_version() -> None:
        added.append(reg.add_version(written, f"2.0.{next(patches)}", "bench", "s3://bench/x", _DIGEST).version)

    _report("api add_version", add_version, min(runs, 10))
    _report("api promote (candidate)", lambda: reg.promote(written, added.pop(), "candidate"), min(runs, 10))
    _report("api add_version + list_models", lambda: (add_version(), reg.list_models()), min(runs, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", help="build in DIR/registry and keep it; reused if it exists")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or tmp) / "registry"
        if not path.exists():
            start = time.perf_counter()
            build(path, args.models, args.versions)
            print(f"built {args.models} models x {args.versions} versions in {time.perf_counter() - start:.1f} s")
        tags = subprocess.run(["git", "tag"], cwd=path, capture_output=True, text=True, check=True).stdout.count("\n")
        print(f"{path}: {tags} tags")
        _bench(path, args.models, args.runs)


if __name__ == "__main__":
    main()

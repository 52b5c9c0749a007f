"""The container image's conventions, read from deploy/container/Containerfile (building it takes
minutes and root, so CI does not: deploy/container/build.sh does, docs/operations.md has its run).

A standard multi-stage file any OCI builder reads; a public default base; a runtime stage with
nothing from the build context but the virtual environment; a numeric non-root user; OCI labels
that agree with pyproject.toml; runtime dependencies only, each one imported by the product; of
scipy, only the subpackages importing the product loads.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = (ROOT / "deploy" / "container" / "Containerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Distribution name -> the module the product imports, where the two differ.
IMPORT_NAMES = {"pyyaml": "yaml", "prometheus-client": "prometheus_client", "pydantic-settings": "pydantic_settings"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in CONTAINERFILE.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_multi_stage_from_a_public_base_that_build_sh_replaces():
    build, runtime = stages()
    base = next(args for op, args in instructions() if op == "ARG" and args.startswith("BASE="))
    assert base == "BASE=docker.io/library/python:3.11-slim-bookworm", "a public image any builder can pull"
    assert build[0] == ("FROM", "${BASE} AS build") and runtime[0] == ("FROM", "${BASE}")
    script = (ROOT / "deploy" / "container" / "build.sh").read_text()
    assert '--build-arg "BASE=$base"' in script and ".wheelhouse" in script, "the offline build: local base, wheelhouse"


def test_the_runtime_stage_takes_only_the_virtual_environment():
    _, runtime = stages()
    copies = [args for op, args in runtime if op in {"COPY", "ADD"}]
    assert copies == ["--from=build /opt/modelmedic /opt/modelmedic"]


def test_non_root_numeric_user_and_oci_labels():
    _, runtime = stages()
    (user,) = [args for op, args in runtime if op == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid >= 1000 and gid >= 1000
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', " ".join(a for op, a in runtime if op == "LABEL")))
    assert {"title", "description", "version", "revision", "created", "licenses", "source"} <= {k.rsplit(".", 1)[1] for k in labels}
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.description"] == PYPROJECT["project"]["description"]
    version = next(args for op, args in runtime if op == "ARG" and args.startswith("VERSION="))
    assert version == f"VERSION={PYPROJECT['project']['version']}"


def test_runtime_dependencies_only_and_each_one_imported_by_the_product():
    """The image installs ``modelmedic`` without extras; every dependency it then carries is one the
    service, the detectors or the playbooks import (a dependency nothing imports is a defect)."""
    assert re.search(r"--find-links /src/\.wheelhouse modelmedic;", CONTAINERFILE)
    assert "modelmedic[" not in CONTAINERFILE
    sources = "\n".join(path.read_text() for folder in ("service", "detectors", "remediations")
                        for path in (ROOT / folder).rglob("*.py"))
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(from|import) {module}\b", sources, re.MULTILINE), f"{name}: nothing imports {module}"
    assert not any(r.startswith("matplotlib") for r in PYPROJECT["project"]["dependencies"]), "the report extra's"


def test_the_build_context_leaves_out_the_local_environment_but_not_the_wheelhouse():
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert {".git", ".venv", "native/target", "dist"} <= set(ignored)
    assert not [line for line in ignored if "wheelhouse" in line]


def test_a_policy_naming_a_missing_plugin_says_how_to_add_it_to_the_image():
    """The start fails (exit 3, the pod's termination message) with a pointer to docs/operations.md
    'Playbook plugins', whose derived image is the 5-line Containerfile the issue asks for."""
    from modelmedic.remediations.api import PlaybookRegistry, UnknownPlaybookError

    try:
        PlaybookRegistry().get("drain-traffic")
    except UnknownPlaybookError as error:
        message = str(error)
    assert "docs/operations.md 'Playbook plugins'" in message and "pip-installs the package" in message
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "\n### Playbook plugins\n" in guide
    derived = re.search(r"```Containerfile\n(.*?)```", guide, re.DOTALL).group(1).splitlines()
    assert len(derived) <= 5 and derived[0].startswith("FROM ") and any("pip install" in line for line in derived)
    _, runtime = stages()
    (user,) = [args for op, args in runtime if op == "USER"]
    assert derived[-1] == f"USER {user}", "the derived image runs as the chart's uid again"


def scipy_keep_list() -> set[str]:
    """The names directly under scipy/ that the build stage keeps (``scipy_keep``), the rest deleted."""
    (keep,) = re.findall(r'scipy_keep="([^"]*)"', CONTAINERFILE)
    return set(keep.split())


def test_the_scipy_the_image_keeps_is_all_the_product_loads():
    """deploy/container/import_check.py (the build stage's check) imports every module of the product
    in a fresh interpreter and loads the playbooks; every scipy subpackage or module that loaded must
    be on the keep-list, or the image would fail to import it (an ``import scipy.stats`` fails here)."""
    check = ROOT / "deploy" / "container" / "import_check.py"
    done = subprocess.run([sys.executable, str(check)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "special" in loaded, f"the detectors' scipy.special did not load: {loaded}"
    assert loaded <= scipy_keep_list(), (
        f"importing the product loads scipy.{', scipy.'.join(sorted(loaded - scipy_keep_list()))}, which the "
        "Containerfile deletes: use scipy.special, or add it to scipy_keep (and the image grows)"
    )
    assert "/src/deploy/container/import_check.py" in CONTAINERFILE, "the build stage runs the same check"

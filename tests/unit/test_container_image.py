"""The container image's conventions, read from deploy/container/Containerfile (building it takes
minutes and root, so CI does not: deploy/container/build.sh does, docs/operations.md has its run).

A standard multi-stage file any OCI builder reads; a public default base; a runtime stage with
nothing from the build context but the virtual environment; a numeric non-root user; OCI labels
that agree with pyproject.toml; runtime dependencies only, each one imported by the product, and
no test-only one (scipy) loaded by importing the product; extension modules stripped, auditwheel's
vendored libraries not.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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
    args = [args for op, args in instructions() if op == "ARG"]
    assert "BASE=docker.io/library/python:3.11-slim-bookworm" in args, "a public image any builder can pull"
    assert "BUILD_BASE=${BASE}" in args, "the build stage's base is the runtime's unless a builder passes one"
    assert build[0] == ("FROM", "${BUILD_BASE} AS build") and runtime[0] == ("FROM", "${BASE}")
    script = (ROOT / "deploy" / "container" / "build.sh").read_text()
    assert '--build-arg "BASE=$base"' in script and ".wheelhouse" in script, "the offline build: local base, wheelhouse"
    assert '--build-arg "BUILD_BASE=$build_base"' in script, "the offline build's strip comes with its build base"


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


def import_check():
    path = ROOT / "deploy" / "container" / "import_check.py"
    spec = importlib.util.spec_from_file_location("import_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importing_the_product_loads_no_test_only_dependency():
    """deploy/container/import_check.py (the build stage's check) imports every module of the product
    in a fresh interpreter and loads the playbooks: scipy, a test dependency here, must not load (the
    image has none; a ``from scipy.special import erf`` in a detector fails this test)."""
    check = ROOT / "deploy" / "container" / "import_check.py"
    done = subprocess.run([sys.executable, str(check)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"modelmedic", "numpy", "kubernetes"} <= loaded, loaded
    assert "scipy" not in loaded, "importing the product loads scipy, which the image does not have"
    assert not any(r.startswith("scipy") for r in PYPROJECT["project"]["dependencies"])
    assert any(r.startswith("scipy") for r in PYPROJECT["project"]["optional-dependencies"]["test"])
    assert '/src/deploy/container/import_check.py --shared-objects "$site"' in CONTAINERFILE, "the build stage runs it"


def test_the_build_strips_what_it_then_loads_and_leaves_vendored_libraries_alone(tmp_path):
    """strip corrupts auditwheel's vendored libraries (numpy.libs' OpenBLAS then fails to map: "ELF
    load command address/offset not page-aligned"), so the strip and the check after it both leave
    out ``*.libs/``; a shared object that no longer maps fails the check, naming it."""
    assert "-name '*.so*' -type f -not -path '*.libs/*' -exec strip --strip-unneeded {} +" in CONTAINERFILE
    check = import_check()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "numpy.libs").mkdir()
    (tmp_path / "numpy.libs" / "libopenblas.so").write_bytes(b"vendored")
    broken = tmp_path / "pkg" / "_ext.cpython-311-x86_64-linux-gnu.so"
    broken.write_bytes(b"\x7fELF not really")
    assert check.stripped_objects(tmp_path) == [broken]
    with pytest.raises(SystemExit, match="_ext.cpython-311-x86_64-linux-gnu.so no longer loads"):
        check.load_shared_objects(tmp_path)
    import msgspec._core  # a plain extension module with no vendored libraries

    broken.write_bytes(Path(msgspec._core.__file__).read_bytes())
    assert check.load_shared_objects(tmp_path) == 1

"""The import contracts of pyproject.toml's ``[tool.importlinter]``, checked by import-linter itself.

import-linter (through grimp) finds a package's modules by walking the one folder its name
resolves to. ``modelmedic`` spans three (service/, detectors/, remediations/, joined by
setuptools' ``package-dir``), so service/ holds two links, ``service/detectors`` and
``service/remediations``, and plain ``lint-imports`` from the repository root sees the whole
package. The seeded violations run on a copy of the tree (links followed), never on the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` with the repository's contracts, as a developer would from ``cwd``."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--config", str(PYPROJECT), "--no-cache", "--no-logo"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_package(dest: Path) -> Path:
    """A copy of ``modelmedic`` in ``dest/modelmedic`` (the links followed), for seeding violations."""
    shutil.copytree(ROOT / "service", dest / "modelmedic", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return dest


def test_plain_lint_imports_from_the_repository_root_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    contracts = len(tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {contracts} kept, 0 broken." in result.stdout
    assert contracts >= 5


def test_a_plane_importing_another_breaks_the_contracts(tmp_path: Path) -> None:
    """The check can fail: one forbidden import in the copy and lint-imports names the contract and the line."""
    tree = copy_of_the_package(tmp_path)
    (tree / "modelmedic" / "release" / "shortcut.py").write_text("from modelmedic.detection import plane\n")
    result = lint_imports(tree, pythonpath=tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The planes are independent of each other BROKEN" in result.stdout
    assert "modelmedic.release.shortcut -> modelmedic.detection.plane (l.1)" in result.stdout


def test_detectors_importing_an_io_library_breaks_the_contracts(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    (tree / "modelmedic" / "detectors" / "fetch.py").write_text("import httpx\n")
    result = lint_imports(tree, pythonpath=tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "modelmedic.detectors.fetch -> httpx (l.1)" in result.stdout

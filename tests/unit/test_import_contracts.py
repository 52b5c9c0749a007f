"""The import contracts of pyproject.toml's ``[tool.importlinter]``, checked by import-linter itself.

import-linter (through grimp) finds a package's modules by walking the one folder its name resolves
to, and ``modelmedic`` spans three (service/, detectors/, remediations/, joined by setuptools'
``package-dir``). So the check copies the three into one ``modelmedic`` folder, as the installed
wheel has them, and runs ``lint-imports`` on that copy with the repository's configuration.
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


def assemble_package(dest: Path) -> Path:
    """Copy every module of ``modelmedic`` into ``dest/modelmedic``, following pyproject's ``package-dir``."""
    package_dir: dict[str, str] = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in package_dir.items():
        target = dest.joinpath(*package.split("."))
        for source in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in source.parts:
                copy = target / source.relative_to(ROOT / folder)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` with the repository's contracts on the package assembled in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_code_keeps_every_import_contract(tmp_path: Path) -> None:
    result = lint_imports(assemble_package(tmp_path))
    contracts = len(tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {contracts} kept, 0 broken." in result.stdout
    assert contracts >= 5


def test_a_plane_importing_another_breaks_the_contracts(tmp_path: Path) -> None:
    """The check can fail: one forbidden import in the copy and lint-imports names the contract and the line."""
    tree = assemble_package(tmp_path)
    (tree / "modelmedic" / "release" / "shortcut.py").write_text("from modelmedic.detection import plane\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The planes are independent of each other BROKEN" in result.stdout
    assert "modelmedic.release.shortcut -> modelmedic.detection.plane (l.1)" in result.stdout


def test_detectors_importing_an_io_library_breaks_the_contracts(tmp_path: Path) -> None:
    tree = assemble_package(tmp_path)
    (tree / "modelmedic" / "detectors" / "fetch.py").write_text("import httpx\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "modelmedic.detectors.fetch -> httpx (l.1)" in result.stdout

"""Import every module of modelmedic and load its playbook plugins, then print the top-level
modules that got loaded; with ``--shared-objects DIR``, first load every shared object under DIR
that the build stripped.

The Containerfile's build stage runs this after deleting what nothing imports (bytecode, test
suites) and stripping the extension modules: a deletion that breaks an import, or a strip that
breaks a library (as it does auditwheel's vendored ones), fails the build there, including an
import only one command makes (``modelmedic run --replay`` loads modelmedic.detection.replay, each
``modelmedic.cli`` command module its own) and an extension no import loads.
tests/unit/test_container_image.py runs it against the project's environment and checks that no
test-only dependency (scipy) is among the modules it prints: an import of one fails a unit test
before it fails an image build.

``modelmedic.testing`` (the test harness: pytest fixtures, fakes) and ``__main__`` modules (which
run the CLI when imported) are not part of what the service imports, so they are skipped.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import pkgutil
import sys
from pathlib import Path


def product_modules() -> list[str]:
    """Every importable module of the modelmedic package, the harness and ``__main__`` left out."""
    import modelmedic

    return [
        module.name
        for module in pkgutil.walk_packages(modelmedic.__path__, "modelmedic.")
        if not module.name.startswith("modelmedic.testing") and not module.name.endswith(".__main__")
    ]


def stripped_objects(site: Path) -> list[Path]:
    """The shared objects the Containerfile strips: all under ``site`` but auditwheel's ``*.libs/``."""
    return sorted(path for path in site.rglob("*.so*")
                  if path.is_file() and not any(part.endswith(".libs") for part in path.parts))


def load_shared_objects(site: Path) -> int:
    """dlopen every stripped shared object (a corrupted one fails to map); how many were loaded."""
    objects = stripped_objects(site)
    for path in objects:
        try:
            ctypes.CDLL(str(path))
        except OSError as error:
            raise SystemExit(f"{path} no longer loads after strip ({error}): leave it out of the strip") from error
    return len(objects)


def loaded_top_level() -> list[str]:
    """The top-level packages and modules in sys.modules (``scipy`` for any ``scipy.*``)."""
    return sorted({name.split(".")[0] for name in sys.modules})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-objects", type=Path, metavar="DIR", help="site-packages whose stripped objects to load")
    args = parser.parse_args(argv)
    if args.shared_objects is not None and not load_shared_objects(args.shared_objects):
        raise SystemExit(f"no shared objects under {args.shared_objects}: is it the virtual environment's site-packages?")
    for name in product_modules():
        importlib.import_module(name)
    from modelmedic.remediations import default_registry

    default_registry.load_entry_points()
    if default_registry.broken:
        raise SystemExit(f"playbook plugins failed to load: {default_registry.broken}")
    print(" ".join(loaded_top_level()))


if __name__ == "__main__":
    main()

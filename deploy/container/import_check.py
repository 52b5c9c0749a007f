"""Import every module of modelmedic and load its playbook plugins, then print the scipy modules
that got loaded.

The Containerfile's build stage runs this after deleting what nothing imports (bytecode, test
suites, most of scipy): a deletion that breaks an import fails the build there, including an import
only one command makes (``modelmedic run --replay`` loads modelmedic.detection.replay, each
``modelmedic.cli`` command module its own). tests/unit/test_container_image.py runs it against the
project's environment and compares the scipy modules it prints with the Containerfile's keep-list,
so an import of another scipy subpackage fails a unit test before it fails an image build.

``modelmedic.testing`` (the test harness: pytest fixtures, fakes) and ``__main__`` modules (which
run the CLI when imported) are not part of what the service imports, so they are skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys


def product_modules() -> list[str]:
    """Every importable module of the modelmedic package, the harness and ``__main__`` left out."""
    import modelmedic

    return [
        module.name
        for module in pkgutil.walk_packages(modelmedic.__path__, "modelmedic.")
        if not module.name.startswith("modelmedic.testing") and not module.name.endswith(".__main__")
    ]


def loaded_scipy_modules() -> list[str]:
    """The names directly under ``scipy`` that are in sys.modules (subpackages and top-level modules)."""
    return sorted({name.split(".")[1] for name in sys.modules if name.startswith("scipy.")})


def main() -> None:
    for name in product_modules():
        importlib.import_module(name)
    from modelmedic.remediations import default_registry

    default_registry.load_entry_points()
    if default_registry.broken:
        raise SystemExit(f"playbook plugins failed to load: {default_registry.broken}")
    print(" ".join(loaded_scipy_modules()))


if __name__ == "__main__":
    main()

"""Every docstring example in the package runs, through the installed ``modelmedic`` names.

(pytest's own ``--doctest-modules`` would import ``service/metrics.py`` a second time under
another module name and register every Prometheus metric twice.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
from _pytest.doctest import _get_checker  # pytest's checker: understands the NUMBER flag

import modelmedic
import modelmedic.detectors
import modelmedic.remediations

# The subpackages live in their own folders (detectors/, remediations/), so walk each.
MODULES = sorted(
    m.name
    for package in (modelmedic, modelmedic.detectors, modelmedic.remediations)
    for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if not m.name.endswith("__main__")
)
FLAGS = doctest.register_optionflag("NUMBER") | doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_the_package_has_modules_to_check():
    assert {"modelmedic.detectors.base", "modelmedic.detectors.rates", "modelmedic.detection.windows"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(checker=_get_checker(), optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (see the output above)"

"""matplotlib is the optional ``report`` extra: without it ``certify --plot`` fails at once, saying what to install."""

from __future__ import annotations

import sys

import pytest

from modelmedic.cli import main
from modelmedic.release.report import PlotUnavailableError, plot_ladder, require_plotting


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib as absent as in the container image: importlib finds no spec for it."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_the_chart_names_the_extra_when_matplotlib_is_missing(no_matplotlib) -> None:
    with pytest.raises(PlotUnavailableError, match=r"pip install 'modelmedic\[report\]'"):
        require_plotting()
    with pytest.raises(PlotUnavailableError):
        plot_ladder({"ladder": [], "policy": {}})


def test_certify_with_plot_fails_before_it_reads_or_sends_anything(no_matplotlib, tmp_path, capsys) -> None:
    """The requests file does not exist: had the certification started, the error would be about it."""
    code = main(["certify", "fraud", "1.0.0", "--registry", str(tmp_path / "registry"), "--endpoint", "http://127.0.0.1:9",
                 "--requests", str(tmp_path / "missing.jsonl"), "--plot", str(tmp_path / "ladder.png")])
    assert code == 1
    assert "modelmedic[report]" in capsys.readouterr().err
    assert not (tmp_path / "ladder.png").exists()


def test_with_matplotlib_installed_nothing_is_refused() -> None:
    require_plotting()

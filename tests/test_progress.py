"""Progress bars appear only for runs that last more than a couple of seconds."""

import time

import pymlm._progress as progress
from pymlm.inference._parallel import run_replicates


def _quick(payload, rng, i):
    return i


def _slow(payload, rng, i):
    time.sleep(payload)
    return i


def test_a_short_run_prints_no_bar(capsys):
    assert run_replicates(_quick, None, 50, seed=1, progress=True) == list(range(50))
    assert capsys.readouterr().err == ""


def test_a_run_longer_than_the_delay_shows_its_bar(capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.05)
    run_replicates(_slow, 0.1, 3, seed=1, progress=True, desc="refits")
    assert "refits" in capsys.readouterr().err


def test_progress_false_hides_even_a_long_run(capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    run_replicates(_slow, 0.05, 2, seed=1, progress=False, desc="refits")
    assert capsys.readouterr().err == ""


def test_the_default_delay_is_a_couple_of_seconds():
    assert 1.0 <= progress.DELAY_SECONDS <= 5.0


def test_progress_false_does_not_import_the_notebook_bar(monkeypatch):
    # tqdm.auto warns on import in a kernel without ipywidgets; a hidden bar must not import it
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # any import of it now fails
    with progress.progress_bar(3, "replicates", enabled=False) as bar:
        bar.update(3)
    assert bar.disable
    assert run_replicates(_quick, None, 5, seed=1, progress=False) == list(range(5))

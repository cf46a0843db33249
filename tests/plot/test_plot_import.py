"""matplotlib is optional: importing pymlm never loads it, the data steps do not need it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pymlm as ml

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def test_matplotlib_is_imported_only_to_draw():
    # one interpreter (importing pymlm takes seconds): first nothing loads matplotlib, then,
    # with matplotlib made unimportable, the data steps work and drawing says how to install it
    out = _run(
        "import sys\n"
        "import pymlm as ml\n"
        "m = ml.lmer('Yield ~ 1 + (1 | Batch)', ml.datasets.load('Dyestuff'))\n"
        "p = m.plot\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'matplotlib'))\n"
        "sys.modules['matplotlib'] = None\n"
        "print(len(m.plot.caterpillar_frame()))\n"
        "try:\n"
        "    m.plot.caterpillar()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[]",
        "6",
        "pymlm's plots need matplotlib: pip install 'pymlm[plot]'",
    ]


def test_public_surface():
    names = set(ml.plot.__all__)
    assert ml.plot is sys.modules["pymlm.plot"] and "plot" in ml.__all__
    for name in names:
        assert hasattr(ml.plot, name), name
    # every plot has its data twin
    plots = {
        "caterpillar",
        "ranef_qq",
        "residuals_fitted",
        "residuals_qq",
        "shrinkage",
        "zeta",
        "profile_density",
        "boot_density",
        "intervals",
        "smooths",
        "gam_check",
        "vis",
    }
    assert plots <= names
    assert {f"{p}_frame" for p in plots} <= names
    assert ml.plot.OKABE_ITO == (
        "#E69F00",
        "#56B4E9",
        "#009E73",
        "#F0E442",
        "#0072B2",
        "#D55E00",
        "#CC79A7",
        "#000000",
    )


def test_accessors(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    m = ml.lmer("Yield ~ 1 + (1 | Batch)", ml.datasets.load("Dyestuff"))
    assert isinstance(m.plot, ml.plot.LmerPlots)
    assert "caterpillar" in repr(m.plot)
    ax = m.plot()  # lme4's plot(m): residuals against fitted values
    assert ax.get_xlabel() == "fitted values"
    with pytest.raises(ml.OptionError, match=r"ax must be a matplotlib Axes; got str"):
        m.plot.caterpillar(ax="left")

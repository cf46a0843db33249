"""``pymlm federated demo`` through the command line."""

import re

from pymlm.cli import main


def test_federated_demo_over_site_processes(capsys):
    assert main(["federated", "demo", "--sites", "3", "--transport", "processes"]) == 0
    out = capsys.readouterr().out
    d_beta = float(re.search(r"max \|dbeta\|/SE = (\S+),", out).group(1))
    d_theta = float(re.search(r"max \|dtheta\| = (\S+),", out).group(1))
    assert d_beta <= 1e-8 and d_theta <= 1e-7
    assert 5 < int(re.search(r"rounds: (\d+)", out).group(1)) <= 60
    assert "over 3 sites (processes)" in out and "bytes as doubles" in out


def test_federated_demo_refuses_too_many_sites(capsys):
    assert main(["federated", "demo", "--sites", "9", "--transport", "processes"]) == 2
    assert "--sites must be between 2 and 6" in capsys.readouterr().err

"""Test configuration: hypothesis settings shared by the property tests.

pytest puts this folder on ``sys.path``, so tests import the shared helpers
(``_designs``) directly.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "pymlm", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("pymlm")


# ---------------------------------------------------------------- reference fits, once per session
import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The loopback Flower federation runs last and is started at collection, in the background."""
    flower = [it for it in items if it.nodeid.endswith(
        "test_flower.py::test_flower_loopback_federation_equals_the_pooled_fit")]
    if flower:
        for it in flower:
            items.remove(it)
            items.append(it)
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parent / "federated"))
        import _flower_run

        _flower_run.start()

#: the lme4 teaching fits many test modules share: name -> (formula, bundled data set)
REFERENCE_MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    "pastes": ("strength ~ 1 + (1 | batch/cask)", "Pastes"),
    "dyestuff": ("Yield ~ 1 + (1 | Batch)", "Dyestuff"),
}


@pytest.fixture(scope="session")
def reference_fits():
    """``reference_fits(name, REML=True)``: the fit of a :data:`REFERENCE_MODELS` entry, computed
    once per test session (results are read-only, so the modules can share them)."""
    import pymlm as ml

    cache = {}

    def get(name: str, REML: bool = True):
        key = (name, bool(REML))
        if key not in cache:
            formula, data = REFERENCE_MODELS[name]
            cache[key] = ml.lmer(formula, ml.datasets.load(data), REML=REML)
        return cache[key]

    return get

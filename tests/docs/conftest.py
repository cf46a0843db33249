"""Fixtures of the site checks: the site is built once per session (see ``_docsite``)."""

from __future__ import annotations

import pytest
from _docsite import Site, build_site


@pytest.fixture(scope="session")
def site() -> Site:
    try:
        return build_site()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)

"""Test configuration: hypothesis settings shared by the property tests.

pytest puts this folder on ``sys.path``, so tests import the shared helpers
(``_designs``) directly.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "pymlm", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("pymlm")

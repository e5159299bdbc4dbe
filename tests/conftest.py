"""Shared test settings: bounded hypothesis profiles so the suite's time is predictable.

HYPOTHESIS_PROFILE=ci (the default) runs a fixed, derandomised number of examples;
HYPOTHESIS_PROFILE=dev explores more.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

"""Shared test settings.

Hypothesis: bounded profiles so the suite's time is predictable. HYPOTHESIS_PROFILE=ci
(the default) runs a fixed, derandomised number of examples; HYPOTHESIS_PROFILE=dev explores more.

Devices: MINIGEN_DEVICE=cuda runs the suite with tensors, models and gradient checks on the
GPU. Tests marked ``gpu`` need CuPy and a CUDA device and are skipped (with the reason) without
them; tests marked ``cpu_only`` make sense on the CPU backend alone and are skipped under cuda.
MINIGEN_FAKE_CUPY=1 stands tests/fake_cupy.py in for CuPy for the whole run: with
MINIGEN_DEVICE=cuda it is a CPU-only dry run of the GPU suite (gpu tests included).
The ``fake_cupy`` fixture does the same for one test.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

from minigen import backend

settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA device")
    config.addinivalue_line("markers", "cpu_only: meaningful on the NumPy backend only")
    if os.environ.get("MINIGEN_FAKE_CUPY") == "1":
        import fake_cupy
        fake_cupy.install()


def _cuda_missing_reason():
    try:
        backend.import_cupy()
    except RuntimeError as e:
        return str(e)
    return None


def pytest_collection_modifyitems(config, items):
    device = backend.default_device()
    missing = _cuda_missing_reason() if any("gpu" in i.keywords for i in items) or device == "cuda" else None
    if device == "cuda" and missing:
        # ``missing`` already says that device 'cuda' was requested and what is absent.
        raise pytest.UsageError(f"{missing} (set by MINIGEN_DEVICE=cuda; unset it to test on the CPU)")
    for item in items:
        if "gpu" in item.keywords and missing:
            item.add_marker(pytest.mark.skip(reason=f"GPU test skipped: {missing}"))
        if "cpu_only" in item.keywords and device == "cuda":
            item.add_marker(pytest.mark.skip(reason="checks NumPy-backend behaviour only"))


@pytest.fixture
def fake_cupy(monkeypatch):
    """The fake CuPy of tests/fake_cupy.py in place of CuPy for this test: 'cuda' without a GPU."""
    import fake_cupy
    return fake_cupy.install(monkeypatch)


@pytest.fixture
def xp():
    """The array module of the device under test (numpy, or cupy under MINIGEN_DEVICE=cuda)."""
    return backend.array_module_for(backend.default_device())

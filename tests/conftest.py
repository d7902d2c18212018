"""Shared fixtures: the ``backend`` fixture runs a test on every array backend present.

``cuda`` cases carry the ``gpu`` marker and skip cleanly where CuPy or a device is missing.
"""

import numpy as np
import pytest

from gpugrad import backend as _backend

HAS_GPU = _backend.cuda_available()

requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")

BACKENDS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, requires_gpu]),
]


@pytest.fixture(params=BACKENDS)
def device(request):
    """'cpu' or 'cuda' (the latter skipped without a GPU)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(pytest.mark.skip(reason="needs CuPy and a CUDA device"))

"""Per-step overhead on the CPU: W1 (linreg, N=100) and W3 (50-round tanh∘sigmoid chain),
gpugrad beside plain NumPy (hand gradients), PyTorch and HIPS autograd, grouped per workload.

    pytest bench/bench_overhead.py --benchmark-only

Each backend first runs the whole workload once and must agree with the NumPy run.
"""

from __future__ import annotations

import pytest

from bench.conftest import assert_agrees, case_or_skip
from bench.workloads import WORKLOADS

W1_BACKENDS = ["gpugrad", "numpy", "torch", "autograd"]
W3_BACKENDS = ["gpugrad", "numpy", "torch", "autograd"]


def _bench(benchmark, workload, backend, size):
    case = case_or_skip(workload, backend, "cpu", size)
    res = assert_agrees(case, WORKLOADS[workload].steps)
    benchmark.extra_info.update({k: v[-1] if isinstance(v, list) else v for k, v in res.items()})
    benchmark(case.step)


@pytest.mark.benchmark(group="W1 linreg N=100, cpu: one GD step")
@pytest.mark.parametrize("backend", W1_BACKENDS)
def test_w1_linreg(benchmark, backend):
    _bench(benchmark, "W1", backend, 100)


@pytest.mark.benchmark(group="W3 chain len=1000, cpu: one forward+backward of 50 rounds")
@pytest.mark.parametrize("backend", W3_BACKENDS)
def test_w3_chain(benchmark, backend):
    _bench(benchmark, "W3", backend, 1000)

"""gpugrad on W1-W3, on the CPU and (where present) the GPU, for regression tracking.

    pytest bench --benchmark-only
    pytest bench/bench_workloads.py --benchmark-only --benchmark-autosave   # then --benchmark-compare

Before timing, each case runs (part of) its workload and must agree with the NumPy run.
"""

from __future__ import annotations

import pytest

from bench.conftest import assert_agrees, case_or_skip

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]
CHECK_STEPS = {"W1": 1000, "W2": 10, "W3": 1}


def _bench(benchmark, workload, device, size):
    case = case_or_skip(workload, "gpugrad", device, size)
    assert_agrees(case, CHECK_STEPS[workload])
    benchmark(case.step)
    case.sync()


@pytest.mark.benchmark(group="gpugrad W1 linreg: one GD step")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [100, 10**6], ids=lambda n: f"N={n}")
def test_w1_linreg(benchmark, device, size):
    if size > 100 and device == "cpu":
        pytest.skip("N=10^6 is a GPU size")
    _bench(benchmark, "W1", device, size)


@pytest.mark.benchmark(group="gpugrad W2 mlp: one SGD step")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [64, 1024, 16384], ids=lambda n: f"B={n}")
def test_w2_mlp(benchmark, device, size):
    if size > 1024 and device == "cpu":
        pytest.skip("B=16384 is a GPU size here")
    _bench(benchmark, "W2", device, size)


@pytest.mark.benchmark(group="gpugrad W3 chain: one forward+backward of 50 rounds")
@pytest.mark.parametrize("device", DEVICES)
def test_w3_chain(benchmark, device):
    _bench(benchmark, "W3", device, 1000)

"""pytest setup for the benchmark suites.

``python -m pytest`` from the repository root collects only ``tests/`` (``testpaths``); the
``bench_*.py`` files here are collected when ``bench`` or one of them is named on the command
line: ``pytest bench --benchmark-only``.
"""

from __future__ import annotations

import functools

import pytest

from bench.report import compare
from bench.workloads import Unavailable, make_case


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` (files named explicitly are collected by pytest itself)."""
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def case_or_skip(workload: str, backend: str, device: str, size: int):
    """A ready workload case, or a skip when the backend or the device is not there."""
    try:
        return make_case(workload, backend, device, size)
    except Unavailable as e:
        pytest.skip(str(e))


def full_run(case, steps: int) -> dict:
    """Run ``steps`` steps from the initial weights; the case is reset afterwards."""
    case.reset()
    for _ in range(steps):
        case.step()
    case.sync()
    res = case.result()
    case.reset()
    return res


@functools.cache
def _numpy_result(workload: str, size: int, steps: int) -> dict:
    return full_run(make_case(workload, "numpy", "cpu", size), steps)


def assert_agrees(case, steps: int) -> dict:
    """Run ``case`` for ``steps`` steps and check it against the hand-written NumPy run."""
    got = full_run(case, steps)
    why = compare(case.workload, _numpy_result(case.workload, case.size, steps), got)
    assert why is None, f"{case.backend}:{case.device} computes something else than NumPy: {why}"
    return got

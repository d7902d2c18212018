"""Benchmarks for gpugrad against plain NumPy, PyTorch, JAX and HIPS autograd.

``python -m bench --help`` runs the side-by-side comparison; ``pytest bench --benchmark-only``
runs the pytest-benchmark suites. See ``bench/README.md``.
"""

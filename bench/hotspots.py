"""cProfile of one workload on one backend: where the time per step goes.

    python -m bench.hotspots W1                      # gpugrad, cpu, the workload's full run
    python -m bench.hotspots W2 --size 1024 --steps 20 --top 30
    python -m bench.hotspots W3 --backend torch
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import WORKLOADS, make_case  # noqa: E402


def profile(workload, backend="gpugrad", device="cpu", size=None, steps=None, top=25) -> str:
    wl = WORKLOADS[workload]
    size = size or wl.sizes[0]
    steps = steps or wl.steps
    case = make_case(workload, backend, device, size)
    for _ in range(min(steps, 3)):  # warm-up: caches, compiles
        case.step()
    case.reset()
    case.sync()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        case.step()
    case.sync()
    prof.disable()
    wall = time.perf_counter() - t0
    out = io.StringIO()
    out.write(f"{workload} {wl.name} {wl.size_name}={size} on {backend}:{device}, {steps} {wl.unit}s, "
              f"{wall / steps * 1e6:.1f} µs/{wl.unit} under the profiler\n")
    for key in ("cumulative", "tottime"):
        out.write(f"\n-- top {top} by {key} --\n")
        stats = pstats.Stats(prof, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return out.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--backend", default="gpugrad")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    print(profile(a.workload.upper(), a.backend, a.device, a.size, a.steps, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a compiled step's time goes: array calls vs the replay around them.

    python bench/jit_profile.py            # W1, W2 at B=64 and 4096, W3 on the CPU

For each workload it times (1) the whole compiled call, (2) the generated replay function alone,
and (3) the array calls inside it, by re-running the replay's source with a clock read around each
line (the clock's own cost, measured on empty lines, is taken off). The rest of (2) is the replay
loop (locals, argument handling, Variable reads and writes); (1) − (2) is the call wrapper
(signature check, output Tensors).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.workloads import make_case  # noqa: E402


def _timed_source(src: str) -> str:
    """The replay's source with every array call wrapped by clock reads into ``_acc``."""
    out = []
    for line in src.splitlines():
        body = line.lstrip()
        indent = line[: len(line) - len(body)]
        plain = (
            indent in ("    ", "        ") and body
            and not body.startswith(("if ", "return", "try:", "finally:", "_old"))
            and ".data = " not in body and "._version" not in body and not body.endswith(".data")
            and ".grad" not in body and not body.startswith("_seterr")
        )
        if plain:
            out.append(f"{indent}_t0 = _pc()")
            out.append(line)
            out.append(f"{indent}_acc[0] += _pc() - _t0; _acc[1] += 1")
        else:
            out.append(line.replace("def _replay(", "def _timed(", 1))
    return "\n".join(out) + "\n"


def _clock_cost(n=200_000) -> float:
    pc = time.perf_counter
    acc = [0.0, 0]
    for _ in range(n):
        t0 = pc()
        acc[0] += pc() - t0
        acc[1] += 1
    return acc[0] / n  # what one (empty) measured line reads


def profile(case, steps: int) -> dict:
    case.step()  # trace
    case.step()
    prog = next(iter(case._jitted._cache.values()))[0]
    glb = dict(prog.replay.__globals__)
    acc = [0.0, 0]
    glb["_acc"], glb["_pc"] = acc, time.perf_counter
    exec(compile(_timed_source(prog.source), "<timed replay>", "exec"), glb)  # noqa: S102
    timed = glb["_timed"]
    args = case.jit_args()
    arrays = [a.data for a in args]

    def per(fn):
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            best = min(best, (time.perf_counter() - t) / steps)
        return best

    whole = per(lambda: case._jitted(*args))
    replay = per(lambda: prog.replay(*arrays))
    acc[0], acc[1] = 0.0, 0
    per_timed = per(lambda: timed(*arrays))
    calls = acc[1] / (5 * steps)
    clock = _clock_cost()
    in_calls = acc[0] / (5 * steps) - calls * clock
    return {"whole_s": whole, "replay_s": replay, "array_calls_s": in_calls, "calls": calls,
            "loop_s": replay - in_calls, "wrapper_s": whole - replay, "timed_run_s": per_timed}


def main():
    rows = []
    for key, size, steps in (("W1", 100, 2000), ("W2", 64, 200), ("W2", 4096, 10), ("W3", 1000, 100)):
        case = make_case(key, "gpugrad-jit", "cpu", size)
        hand = make_case(key, "numpy", "cpu", size)
        p = profile(case, steps)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(steps):
                hand.step()
            best = min(best, (time.perf_counter() - t) / steps)
        p["numpy_s"] = best
        rows.append((key, size, p))
        us = {k: v * 1e6 for k, v in p.items() if k.endswith("_s")}
        print(f"{key} size={size}: compiled {us['whole_s']:.1f} µs = array calls {us['array_calls_s']:.1f} "
              f"({p['calls']:.0f} calls) + replay loop {us['loop_s']:.1f} + call wrapper {us['wrapper_s']:.1f}; "
              f"hand NumPy {us['numpy_s']:.1f} µs ({p['whole_s'] / p['numpy_s']:.2f}x)")
    return rows


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

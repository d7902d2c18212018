"""Side-by-side benchmark runner: gpugrad against its peers, in one process, on one machine.

    python -m bench --device cpu --out bench/results --time-budget 840
    python bench/run.py --device cuda --workloads W2,W4 --quick

For every workload, size and backend it warms up, times blocks of steps (device synchronized
around each block), and keeps the median and spread over at least five blocks. It prints one
line per measurement to stderr while it runs, then a table; it writes a JSON record, the table as
text, and PNG plots for W2 (time per step vs batch size; GPU speedup over CPU when both ran).

Every backend's final loss (W1, W2) or output and gradient (W3) is checked against the plain
NumPy run: a mismatch is marked in the table and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.workloads import (  # noqa: E402
    BACKENDS,
    WORKLOADS,
    Unavailable,
    is_out_of_memory,
    make_case,
)

MIN_REPEATS = 5
MAX_REPEATS = 10
WARMUP = {"W1": 20, "W2": 2, "W3": 2}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- options --------------------------------------------------------------------------------------


def _parse_overrides(items, what, conv):
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        key = key.strip().upper()
        if not sep or key not in WORKLOADS:
            raise SystemExit(f"--{what}: expected W=VALUE with W one of W1, W2, W3; got {item!r}")
        out[key] = conv(val)
    return out


def _sizes(val: str) -> tuple:
    return tuple(int(float(v)) for v in val.split(",") if v.strip())


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time gpugrad and its peers (NumPy, PyTorch, JAX, HIPS autograd) on the same workloads.",
    )
    p.add_argument("--device", default=None,
                   help="cpu, cuda, or cpu,cuda (default: both when a GPU is usable, else cpu)")
    p.add_argument("--workloads", default="W1,W2,W3,W4", help="comma list of W1,W2,W3,W4 (default: all)")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma list of {', '.join(BACKENDS)} (default: all; missing ones are skipped)")
    p.add_argument("--quick", action="store_true", help="small sizes and few steps (a few seconds)")
    p.add_argument("--out", default="bench/results", help="folder for the JSON record, table and plots")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="seconds for the whole run; each measurement gets a fair share of what is left, "
                        "runs fewer steps when it must, and a backend whose W2 sweep would not fit stops")
    p.add_argument("--steps", action="append", metavar="W=N",
                   help="override the steps of a workload, e.g. --steps W1=20 (repeatable)")
    p.add_argument("--sizes", action="append", metavar="W=A,B",
                   help="override the sizes of a workload, e.g. --sizes W2=64,256 (repeatable)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--tag", default=None, help="file name stem (default: DEVICE-DATE)")
    args = p.parse_args(argv)
    args.steps = _parse_overrides(args.steps, "steps", int)
    args.sizes = _parse_overrides(args.sizes, "sizes", _sizes)
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in WORKLOADS and w != "W4":
            p.error(f"unknown workload {w!r}")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in args.backends:
        if b not in BACKENDS:
            p.error(f"unknown backend {b!r}; known: {', '.join(BACKENDS)}")
    return args


def resolve_devices(spec: str | None) -> list[str]:
    import gpugrad as gg

    gpu = gg.cuda.is_available()
    if spec is None:
        return ["cpu", "cuda"] if gpu else ["cpu"]
    devs = []
    for d in spec.split(","):
        d = d.strip().lower()
        if d in ("gpu", "cuda:0"):
            d = "cuda"
        if d not in ("cpu", "cuda"):
            raise SystemExit(f"--device: expected cpu, cuda or cpu,cuda; got {spec!r}")
        if d == "cuda" and not gpu:
            raise SystemExit("--device cuda: no usable GPU here (CuPy missing or no CUDA device answers)")
        if d not in devs:
            devs.append(d)
    return devs


def plan(args, devices) -> list[tuple]:
    """(workload, size, steps, device, backend) in run order: W1, W3, then W2 by growing batch."""
    items = []
    gpu = "cuda" in devices
    for key in ("W1", "W3", "W2"):
        if key not in args.workloads:
            continue
        wl = WORKLOADS[key]
        sizes = wl.quick_sizes if args.quick else (wl.gpu_sizes if gpu else wl.sizes)
        sizes = args.sizes.get(key, sizes)
        steps = args.steps.get(key, wl.quick_steps if args.quick else wl.steps)
        for size in sizes:
            for dev in devices:
                for b in args.backends:
                    if dev in BACKENDS[b]:
                        items.append((key, size, steps, dev, b))
    return items


# -- timing ---------------------------------------------------------------------------------------


class OverBudget(Exception):
    pass


def _blocks(n: int) -> list[int]:
    r = min(n, MAX_REPEATS)
    return [n // r + (1 if i < n % r else 0) for i in range(r)]


def _timed(case, k: int) -> float:
    """Seconds per step over ``k`` steps, the device synchronized before and after."""
    case.sync()
    t0 = time.perf_counter()
    for _ in range(k):
        case.step()
    case.sync()
    return (time.perf_counter() - t0) / k


def measure(case, steps: int, warmup: int, allowance: float | None) -> dict:
    """Warm up, then time ``steps`` steps (fewer if they would not fit ``allowance`` seconds)."""
    t0 = time.perf_counter()
    least = min(MIN_REPEATS, steps)
    warm = []
    for _ in range(warmup):
        warm.append(_timed(case, 1))
        if allowance is not None and warm[-1] * least > allowance:  # even the fewest steps would not fit
            raise OverBudget(f"time budget: a warm-up step took {report.fmt_time(warm[-1])}, "
                             f"{allowance:.0f} s left for this measurement")
    est = statistics.mean(warm[len(warm) // 2:])  # the steady half: compiles and caches are done
    warm_s = time.perf_counter() - t0
    n = steps
    if allowance is not None and est * steps > allowance:
        n = int(allowance / est) if est > 0 else steps
        if n < least:
            raise OverBudget(f"time budget: about {report.fmt_time(est)}/step, "
                             f"{allowance:.0f} s left for this measurement")
    case.reset()
    gc.collect()
    times = []
    for k in _blocks(n):
        times.append(_timed(case, k))
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {
        "status": "ok",
        "median_s": statistics.median(times),
        "q25_s": q[0],
        "q75_s": q[2],
        "iqr_s": q[2] - q[0],
        "min_s": min(times),
        "max_s": max(times),
        "mean_s": statistics.fmean(times),
        "repeats": len(times),
        "steps_per_repeat": _blocks(n),
        "times_s": times,
        "steps_run": n,
        "steps_planned": steps,
        "warmup_steps": warmup,
        "warmup_s": warm_s,
        "result": case.result(),
    }


def _free_device_memory():
    gc.collect()
    mods = sys.modules
    try:
        if "cupy" in mods:
            mods["cupy"].get_default_memory_pool().free_all_blocks()
        if "torch" in mods and mods["torch"].cuda.is_available():
            mods["torch"].cuda.empty_cache()
    except Exception:
        pass


def run_plan(items, budget: float | None, t_start: float) -> list[dict]:
    rows = []
    unavailable: dict[tuple, str] = {}
    stopped: dict[tuple, str] = {}
    last_ok: dict[tuple, tuple] = {}  # (workload, backend, device) -> (size, median seconds per step)
    for i, (key, size, steps, dev, b) in enumerate(items):
        wl = WORKLOADS[key]
        row = {"workload": key, "name": wl.name, "size": size, "size_label": f"{wl.size_name}={size:,}",
               "unit": wl.unit, "backend": b, "device": dev}
        rows.append(row)
        tag = f"[{i + 1:>3}/{len(items)}] {key} {row['size_label']:<10} {b + ':' + dev:<14}"
        if (b, dev) in unavailable:
            row.update(status="unavailable", reason=unavailable[(b, dev)])
            continue
        if (key, b, dev) in stopped:
            row.update(status="skipped", reason=stopped[(key, b, dev)])
            log(f"{tag} skipped: {row['reason']}")
            continue
        allowance = None
        if budget is not None:
            left = budget - (time.perf_counter() - t_start)
            allowance = max(0.0, left) / (len(items) - i)
            prev = last_ok.get((key, b, dev))
            if prev is not None:  # time per step grows about linearly with the size
                guess = prev[1] * size / prev[0]
                if guess * min(MIN_REPEATS, steps) > allowance:
                    why = (f"time budget: about {report.fmt_time(guess)}/step expected from "
                           f"{wl.size_name}={prev[0]:,}, {allowance:.0f} s left for this measurement")
                    row.update(status="budget", reason=why)
                    stopped[(key, b, dev)] = f"sweep stopped at {wl.size_name}={size:,} (time budget)"
                    log(f"{tag} budget: {why}")
                    continue
        case = None
        try:
            case = make_case(key, b, dev, size)
            row.update(measure(case, steps, min(WARMUP[key], steps), allowance))
        except Unavailable as e:
            unavailable[(b, dev)] = str(e)
            row.update(status="unavailable", reason=str(e))
            log(f"{tag} not available: {e}")
            continue
        except OverBudget as e:
            row.update(status="budget", reason=str(e))
            stopped[(key, b, dev)] = f"sweep stopped at {wl.size_name}={size:,} (time budget)"
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a failing backend must not end the run
            oom = is_out_of_memory(e)
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            row.update(status="oom" if oom else "error", reason=msg)
            if not oom:
                row["traceback"] = traceback.format_exc(limit=6)
            why = "out of memory" if oom else "error"
            stopped[(key, b, dev)] = f"sweep stopped at {wl.size_name}={size:,} ({why})"
        finally:
            del case
            if dev != "cpu":
                _free_device_memory()
        if row["status"] == "ok":
            last_ok[(key, b, dev)] = (size, row["median_s"])
            res = row["result"]
            loss = res.get("loss")
            what = f"loss {loss[-1]:.6g}" if loss else f"sum {res.get('out_sum', float('nan')):.6g}"
            med, iqr = report.fmt_time(row["median_s"]), report.fmt_time(row["iqr_s"])
            reps = f"{row['repeats']} reps, {row['steps_run']} steps"
            log(f"{tag} {med:>10}/{wl.unit} (IQR {iqr}, {reps}) {what}")
        else:
            log(f"{tag} {row['status']}: {row['reason']}")
    return rows


# -- W4: the kernel benchmarks ---------------------------------------------------------------------


def run_kernels(quick: bool) -> dict:
    """Call ``bench/bench_kernels.py`` when it is there (GPU only); never fails the run."""
    import importlib

    if not Path(__file__).with_name("bench_kernels.py").exists():
        return {"status": "skipped", "reason": "bench/bench_kernels.py is not there"}
    try:
        mod = importlib.import_module("bench.bench_kernels")
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "reason": f"import bench.bench_kernels: {type(e).__name__}: {e}"}
    return call_kernel_module(mod, quick)


def call_kernel_module(mod, quick: bool) -> dict:
    """``mod.run``/``run_all``/``bench_all`` if there is one, else each argument-free ``bench_*``
    function; ``quick`` and ``device`` are passed to those that take them."""
    import inspect

    offered = {"quick": quick, "device": "cuda"}

    def call(fn):
        sig = inspect.signature(fn)
        kw = {k: v for k, v in offered.items() if k in sig.parameters}
        required = [p for p in sig.parameters.values()
                    if p.default is p.empty and p.name not in kw
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if required:
            return None, False
        return fn(**kw), True

    out = {"status": "ok", "results": {}}
    try:
        for name in ("run", "run_all", "bench_all"):
            fn = getattr(mod, name, None)
            if callable(fn):
                res, done = call(fn)
                if done:
                    out["results"][name] = res
                    return out
        for name, fn in sorted(vars(mod).items()):
            if name.startswith("bench_") and inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                t0 = time.perf_counter()
                res, done = call(fn)
                if done:
                    out["results"][name] = {"result": res, "wall_s": time.perf_counter() - t0}
                    log(f"W4 {name}: done in {time.perf_counter() - t0:.1f} s")
    except Exception as e:  # noqa: BLE001
        out.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6))
    if not out["results"] and out["status"] == "ok":
        out.update(status="skipped",
                   reason="bench_kernels has no run()/run_all() nor argument-free bench_* functions")
    return out


# -- main -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    devices = resolve_devices(args.device)
    if "cuda" in devices:
        # JAX would otherwise take most of the GPU's memory for itself at import
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    items = plan(args, devices)
    load_start = report.load_average()
    if load_start and load_start[0] > (os.cpu_count() or 1):
        log(f"bench: the machine is busy (load average {load_start[0]:.1f} on {os.cpu_count()} CPUs): "
            "timings will be noisy")
    t_start = time.perf_counter()
    log(f"bench: {len(items)} measurements on {', '.join(devices)}"
        + (f", time budget {args.time_budget:.0f} s" if args.time_budget else ""))
    rows = run_plan(items, args.time_budget, t_start)
    kernels = None
    if "W4" in args.workloads:
        if "cuda" in devices:
            log("W4: kernel benchmarks")
            kernels = run_kernels(args.quick)
        else:
            kernels = {"status": "skipped", "reason": "W4 runs on the GPU only"}
        if kernels["status"] != "ok":
            log(f"W4 {kernels['status']}: {kernels.get('reason', '')}")

    problems = report.check_agreement(rows)
    report.add_ratios(rows)
    targets = report.targets(rows)
    record = report.make_record(args, devices, rows, kernels, targets, problems,
                                time.perf_counter() - t_start, argv, load_start)
    table = report.table(rows, targets, problems, kernels)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.tag or f"{'+'.join(devices)}-{record['date'][:10]}"
    paths = report.write(record, table, out, stem, plots=not args.no_plots)
    for path in paths:
        log(f"wrote {path}")
    if problems:
        log(f"{len(problems)} result(s) disagree with the reference: see the table")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

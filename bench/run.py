"""Side-by-side benchmark runner: gpugrad against its peers, in one process, on one machine.

    python -m bench --device cpu --out bench/results --time-budget 840
    python bench/run.py --device cuda --workloads W2,W4 --quick

For every workload and size it warms up each backend, then times blocks of steps (device
synchronized around each block) round-robin over the backends, and keeps each one's median and
spread over at least five blocks. It prints one
line per measurement to stderr while it runs, then a table; it writes a JSON record, the table as
text, and PNG plots for W2 (time per step vs batch size; GPU speedup over CPU when both ran).

Every backend's final loss (W1, W2) or output and gradient (W3) is checked against the plain
NumPy run: a mismatch is marked in the table and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(n: int) -> None:
    """Limit NumPy's BLAS, PyTorch and XLA to ``n`` threads. BLAS reads this when NumPy is first
    imported, so ``--threads`` is applied before this module imports NumPy."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()


def _threads_from_argv(argv) -> int | None:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return None


if "numpy" not in sys.modules and (_early := _threads_from_argv(sys.argv[1:])) is not None:
    set_threads(_early)

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
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for BLAS, PyTorch and XLA (default: theirs); 1 gives steadier "
                        "numbers on a busy machine")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--tag", default=None, help="file name stem (default: DEVICE-DATE)")
    args = p.parse_args(argv)
    args.steps = _parse_overrides(args.steps, "steps", int)
    if any(n < 1 for n in args.steps.values()):
        p.error("--steps: a workload needs at least one step")
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


def _stats(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {
        "median_s": statistics.median(times),
        "q25_s": q[0],
        "q75_s": q[2],
        "iqr_s": q[2] - q[0],
        "min_s": min(times),
        "max_s": max(times),
        "mean_s": statistics.fmean(times),
        "repeats": len(times),
        "times_s": times,
    }


def key_size(slots) -> str:
    row = slots[0]["row"]
    return f"{row['workload']} {row['size_label']}"


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


class Runner:
    """Runs the plan one (workload, size) group at a time.

    Within a group every backend is warmed up first; then the timed blocks go round-robin over the
    backends (block 1 of each, block 2 of each, ...), so that a change in the machine's load falls on
    all of them alike instead of on whichever ran during it.
    """

    def __init__(self, items, budget: float | None):
        self.items = items
        self.budget = budget
        self.t_start = time.perf_counter()
        self.unavailable: dict[tuple, str] = {}  # (backend, device) -> why
        self.stopped: dict[tuple, str] = {}  # (workload, backend, device) -> why the sweep ended
        self.last_ok: dict[tuple, tuple] = {}  # (workload, backend, device) -> (size, median s/step)
        self.rows: list[dict] = []

    def run(self) -> list[dict]:
        i = 0
        while i < len(self.items):
            key, size = self.items[i][:2]
            j = i
            while j < len(self.items) and self.items[j][:2] == (key, size):
                j += 1
            self._group(i, j)
            i = j
        return self.rows

    def _allowance(self, index: int) -> float | None:
        """Seconds this measurement may take: a fair share of what is left of the budget."""
        if self.budget is None:
            return None
        left = self.budget - (time.perf_counter() - self.t_start)
        return max(0.0, left) / (len(self.items) - index)

    def _over_budget(self) -> bool:
        return self.budget is not None and time.perf_counter() - self.t_start > self.budget

    def _fail(self, slot: dict, e: BaseException) -> None:
        row, (key, b, dev) = slot["row"], slot["id"]
        wl = WORKLOADS[key]
        if isinstance(e, OverBudget):
            row.update(status="budget", reason=str(e))
            why = "time budget"
        else:
            oom = is_out_of_memory(e)
            row.update(status="oom" if oom else "error",
                       reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            if not oom:
                row["traceback"] = traceback.format_exc(limit=6)
            why = "out of memory" if oom else "error"
        self.stopped[(key, b, dev)] = f"sweep stopped at {wl.size_name}={row['size']:,} ({why})"
        slot["case"] = None
        log(f"{slot['tag']} {row['status']}: {row['reason']}")

    def _prepare(self, index: int) -> dict | None:
        """Make and warm up one case; None when it is skipped, unavailable or failed."""
        key, size, steps, dev, b = self.items[index]
        wl = WORKLOADS[key]
        row = {"workload": key, "name": wl.name, "size": size, "size_label": f"{wl.size_name}={size:,}",
               "unit": wl.unit, "backend": b, "device": dev}
        self.rows.append(row)
        slot = {"row": row, "id": (key, b, dev), "case": None, "steps": steps,
                "tag": f"[{index + 1:>3}/{len(self.items)}] {key} {row['size_label']:<10} {b + ':' + dev:<14}"}
        if (b, dev) in self.unavailable:
            row.update(status="unavailable", reason=self.unavailable[(b, dev)])
            return None
        if (key, b, dev) in self.stopped:
            row.update(status="skipped", reason=self.stopped[(key, b, dev)])
            log(f"{slot['tag']} skipped: {row['reason']}")
            return None
        allowance = slot["allowance"] = self._allowance(index)
        least = min(MIN_REPEATS, steps)
        prev = self.last_ok.get((key, b, dev))
        if allowance is not None and prev is not None:  # time per step grows about linearly with size
            guess = prev[1] * size / prev[0]
            if guess * least > allowance:
                self._fail(slot, OverBudget(
                    f"time budget: about {report.fmt_time(guess)}/step expected from {wl.size_name}={prev[0]:,}, "
                    f"{allowance:.0f} s left for this measurement"))
                return None
        try:
            case = slot["case"] = make_case(key, b, dev, size)
            t0 = time.perf_counter()
            warm = []
            nwarm = min(WARMUP[key], steps)
            for _ in range(nwarm):
                warm.append(_timed(case, 1))
                # the first step may compile (jax.jit, NVRTC): judge from the second one on
                if allowance is not None and len(warm) >= min(2, nwarm) and warm[-1] * least > allowance:
                    raise OverBudget(f"time budget: a warm-up step took {report.fmt_time(warm[-1])}, "
                                     f"{allowance:.0f} s left for this measurement")
            row["warmup_steps"] = len(warm)
            row["warmup_s"] = time.perf_counter() - t0
            est = statistics.mean(warm[len(warm) // 2:]) if warm else 0.0  # the steady half
            n = steps
            if allowance is not None and est * steps > allowance:
                n = int(allowance / est)
                if n < least:
                    raise OverBudget(f"time budget: about {report.fmt_time(est)}/step, "
                                     f"{allowance:.0f} s left for this measurement")
            slot["blocks"] = _blocks(n)
            slot["times"] = []
            row.update(steps_run=n, steps_planned=steps, steps_per_repeat=slot["blocks"])
            case.reset()
            return slot
        except Unavailable as e:
            self.unavailable[(b, dev)] = str(e)
            row.update(status="unavailable", reason=str(e))
            log(f"{slot['tag']} not available: {e}")
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a failing backend must not end the run
            self._fail(slot, e)
        return None

    def _group(self, first: int, stop: int) -> None:
        slots = [s for s in (self._prepare(i) for i in range(first, stop)) if s is not None]
        gc.collect()
        rounds = max((len(s["blocks"]) for s in slots), default=0)
        for r in range(rounds):
            if r >= MIN_REPEATS and self._over_budget():
                log(f"bench: time budget spent: {key_size(slots)} stops after {r} blocks of each backend")
                break
            for s in slots:
                if s["case"] is None or r >= len(s["blocks"]):
                    continue
                try:
                    s["times"].append(_timed(s["case"], s["blocks"][r]))
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # noqa: BLE001
                    self._fail(s, e)
        for s in slots:
            case, row = s["case"], s["row"]
            if case is None:
                continue
            done = s["blocks"][: len(s["times"])]
            row.update(steps_run=sum(done), steps_per_repeat=done)
            try:
                row.update(status="ok", **_stats(s["times"]), result=case.result())
            except Exception as e:  # noqa: BLE001
                self._fail(s, e)
                continue
            key, b, dev = s["id"]
            self.last_ok[(key, b, dev)] = (row["size"], row["median_s"])
            res = row["result"]
            loss = res.get("loss")
            what = f"loss {loss[-1]:.6g}" if loss else f"sum {res.get('out_sum', float('nan')):.6g}"
            med, iqr = report.fmt_time(row["median_s"]), report.fmt_time(row["iqr_s"])
            reps = f"{row['repeats']} reps, {row['steps_run']} steps"
            log(f"{s['tag']} {med:>10}/{row['unit']} (IQR {iqr}, {reps}) {what}")
        gpu = any(s["id"][2] != "cpu" for s in slots)
        for s in slots:
            s["case"] = None
        if gpu:
            _free_device_memory()


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
        with contextlib.redirect_stdout(sys.stderr):  # its progress joins ours; stdout keeps the table
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
    if args.threads is not None and os.environ.get("OMP_NUM_THREADS") != str(args.threads):
        set_threads(args.threads)  # called with argv after NumPy was imported: BLAS keeps its own
        log("bench: --threads came after NumPy's import: it applies to PyTorch and JAX, not NumPy's BLAS")
    devices = resolve_devices(args.device)
    if "cuda" in devices:
        # JAX would otherwise take most of the GPU's memory for itself at import
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    items = plan(args, devices)
    load_start = report.load_average()
    if load_start and load_start[0] > (os.cpu_count() or 1):
        log(f"bench: the machine is busy (load average {load_start[0]:.1f} on {os.cpu_count()} CPUs): "
            "timings will be noisy")
    runner = Runner(items, args.time_budget)
    t_start = runner.t_start
    log(f"bench: {len(items)} measurements on {', '.join(devices)}"
        + (f", time budget {args.time_budget:.0f} s" if args.time_budget else ""))
    rows = runner.run()
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
    from gpugrad import backend  # noqa: PLC0415

    if "cuda" in devices and backend.simulated():  # launches and bytes per step, labelled a simulation
        from bench import sim_counts  # noqa: PLC0415

        paths += sim_counts.write(out, stem)
    for path in paths:
        log(f"wrote {path}")
    if problems:
        log(f"{len(problems)} result(s) disagree with the reference: see the table")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

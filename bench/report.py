"""What the runner makes of its measurements: the agreement check, ratios, targets, the table,
the JSON record and the plots."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from bench.workloads import BACKEND_NOTES, WORKLOADS

# CPU targets: (workload, backend, peer, limit): the backend's median time per step over the
# peer's must be at most ``limit``
TARGETS = (
    ("W1", "gpugrad", "torch", 0.5), ("W2", "gpugrad", "numpy", 1.1), ("W3", "gpugrad", "autograd", 0.7),
    ("W1", "gpugrad-jit", "numpy", 1.5), ("W1", "gpugrad-jit", "torch", 0.2),
    ("W2", "gpugrad-jit", "numpy", 1.05), ("W3", "gpugrad-jit", "numpy", 1.3),
)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "GPUGRAD_KERNELS")
REFERENCE_ORDER = ("numpy", "gpugrad", "gpugrad-jit", "torch", "autograd", "jax", "jax-jit")


def fmt_time(s) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


# -- results must agree ---------------------------------------------------------------------------


def _close(a, b, atol, rtol) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= atol + rtol * abs(a)


def compare(key, ref, got) -> str | None:
    """None when ``got`` agrees with ``ref``, else what differs."""
    if key == "W3":
        if not _close(ref["out_sum"], got["out_sum"], 1e-3, 1e-4):
            return f"output sum {got['out_sum']:.7g} vs {ref['out_sum']:.7g}"
        # float32 gradients this deep are subnormal (~1e-41): some backends flush them to zero
        if not _close(ref["grad_sum"], got["grad_sum"], 1e-35, 1e-2):
            return f"gradient sum {got['grad_sum']:.4g} vs {ref['grad_sum']:.4g}"
        return None
    la, lb = ref["loss"], got["loss"]
    k = min(len(la), len(lb)) - 1
    if k < 0:
        return "no loss recorded"
    rtol = 1e-3 if key == "W1" else 1e-2
    if not _close(la[k], lb[k], 1e-3, rtol):
        return f"loss after {k + 1} steps {lb[k]:.6g} vs {la[k]:.6g}"
    if key == "W1" and len(la) == len(lb):
        for p in ("kernel", "bias"):
            if not _close(ref[p], got[p], 1e-3, 0.0):
                return f"{p} {got[p]:.6g} vs {ref[p]:.6g}"
    return None


def check_agreement(rows) -> list[str]:
    """Compare every measured backend with a reference run of the same workload and size."""
    groups = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            groups[(r["workload"], r["size"])].append(r)
    problems = []
    for (key, _size), grp in groups.items():
        ref = min(grp, key=lambda r: (REFERENCE_ORDER.index(r["backend"]), r["device"] != "cpu"))
        ref["check"] = "reference"
        for r in grp:
            if r is ref:
                continue
            why = compare(key, ref["result"], r["result"])
            r["check"] = "ok" if why is None else f"MISMATCH: {why}"
            if why is not None:
                problems.append(f"{key} {r['size_label']} {r['backend']}:{r['device']} vs "
                                f"{ref['backend']}:{ref['device']}: {why}")
    return problems


# -- ratios and targets ---------------------------------------------------------------------------


def add_ratios(rows) -> None:
    """``vs_gpugrad``: gpugrad's time over this row's, same device (below 1: gpugrad is faster).
    ``gpu_speedup`` (cuda rows): the same backend's CPU time over its GPU time."""
    ok = {(r["workload"], r["size"], r["backend"], r["device"]): r for r in rows if r["status"] == "ok"}
    for (key, size, b, dev), r in ok.items():
        gg = ok.get((key, size, "gpugrad", dev))
        if gg is not None:
            r["vs_gpugrad"] = gg["median_s"] / r["median_s"]
        hand = ok.get((key, size, "numpy", "cpu"))
        if hand is not None and dev == "cpu":
            r["vs_numpy"] = r["median_s"] / hand["median_s"]
        if dev != "cpu":
            cpu = ok.get((key, size, b, "cpu"))
            if cpu is not None:
                r["gpu_speedup"] = cpu["median_s"] / r["median_s"]


def targets(rows) -> list[dict]:
    ok = {(r["workload"], r["size"], r["backend"]): r
          for r in rows if r["status"] == "ok" and r["device"] == "cpu"}
    out = []
    for key, backend, peer, limit in TARGETS:
        for (k, size, b), r in ok.items():
            if k != key or b != peer or (key, size, backend) not in ok:
                continue
            ratio = ok[(key, size, backend)]["median_s"] / r["median_s"]
            out.append({"workload": key, "size": size, "size_label": r["size_label"], "backend": backend,
                        "peer": peer, "device": "cpu", "ratio": ratio, "target": limit, "met": ratio <= limit})
    return out


# -- the table ------------------------------------------------------------------------------------


def table(rows, tgts, problems, kernels) -> str:
    head = ("workload", "size", "backend", "dev", "median", "IQR", "reps×steps", "gg/this", "/numpy", "GPU×",
            "check")
    lines = []
    missing = {}
    for r in rows:
        if r["status"] == "unavailable":
            missing[f"{r['backend']}:{r['device']}"] = r["reason"]
            continue
        wl = f"{r['workload']} {r['name']}"
        name = r["backend"]
        if r["status"] != "ok":
            lines.append((wl, r["size_label"], name, r["device"], r["status"], "-", "-", "-", "-", "-",
                          r.get("reason", "")))
            continue
        per = r["steps_per_repeat"]
        each = per[0] if len(set(per)) == 1 else f"~{r['steps_run'] // r['repeats']}"
        reps = f"{r['repeats']}×{each}"
        lines.append((
            wl, r["size_label"], name, r["device"],
            f"{fmt_time(r['median_s'])}/{r['unit']}", fmt_time(r["iqr_s"]), reps,
            f"{r['vs_gpugrad']:.2f}" if "vs_gpugrad" in r else "-",
            f"{r['vs_numpy']:.2f}" if "vs_numpy" in r else "-",
            f"{r['gpu_speedup']:.1f}" if "gpu_speedup" in r else "-",
            r.get("check", "-"),
        ))
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    sep = "  "

    def fmt(row):
        return sep.join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    out = [fmt(head), sep.join("-" * w for w in widths)]
    prev = None
    for row in lines:
        if prev is not None and row[:2] != prev:
            out.append("")
        out.append(fmt(row))
        prev = row[:2]
    out.append("")
    out.append("gg/this: gpugrad's median time over this backend's on the same device "
               "(below 1: gpugrad is faster);")
    out.append("/numpy: this backend's time over hand-written NumPy's (CPU); "
               "GPU×: this backend's CPU time over its GPU time;")
    out.append("IQR: interquartile range of the repeats.")
    if tgts:
        out.append("")
        out.append("CPU targets (backend time / peer time):")
        for t in tgts:
            verdict = "met" if t["met"] else "MISSED"
            out.append(f"  {t['workload']} {t['size_label']:<10} {t['backend']:<12} vs {t['peer']:<8} "
                       f"{t['ratio']:6.2f}  (target <= {t['target']})  {verdict}")
    if kernels is not None:
        out.append("")
        why = f" ({kernels['reason']})" if kernels.get("reason") else ""
        out.append(f"W4 kernels: {kernels['status']}{why}")
        out.extend(_kernel_lines(kernels.get("results") or {}))
    if missing:
        out.append("")
        out.append("not measured: " + "; ".join(f"{k} ({v})" for k, v in missing.items()))
    if problems:
        out.append("")
        out.append("RESULTS DISAGREE:")
        out.extend(f"  {p}" for p in problems)
    return "\n".join(out)


def _kernel_lines(results: dict, limit: int = 160) -> list[str]:
    """What bench_kernels returned, one line per record (its format is its own)."""
    lines = []
    for name, res in results.items():
        if isinstance(res, dict) and set(res) == {"result", "wall_s"}:
            res = res["result"]
        if isinstance(res, dict) and isinstance(res.get("rows"), list):  # {"rows": [...], ...}
            head = {k: v for k, v in res.items() if isinstance(v, (int, float, str)) and k != "rows"}
            if head:
                lines.append(f"  {name}: " + ", ".join(f"{k}={_short(v)}" for k, v in head.items())[:limit])
            res = res["rows"]
        items = res if isinstance(res, list) else [res]
        for item in items:
            if isinstance(item, dict):
                text = ", ".join(f"{k}={_short(v)}" for k, v in item.items() if not isinstance(v, (list, dict)))
            else:
                text = _short(item)
            lines.append(f"  {name}: {text}"[:limit])
    return lines


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# -- the JSON record --------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(cmd) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except Exception:
        return None


def machine_info() -> dict:
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpu_usable"] = len(os.sched_getaffinity(0))
    info["thread_env"] = {k: os.environ[k] for k in THREAD_ENV if k in os.environ}
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    import gpugrad as gg

    if gg.cuda.is_available():
        import cupy

        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        name = props["name"]
        info["gpu"] = {
            "name": name.decode() if isinstance(name, bytes) else name,
            "count": rt.getDeviceCount(),
            "memory_bytes": int(props.get("totalGlobalMem", 0)),
            "cuda_driver_api": _cuda_version(rt.driverGetVersion()),
            "cuda_runtime": _cuda_version(rt.runtimeGetVersion()),
        }
        smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        if smi:
            info["gpu"]["driver"] = smi.splitlines()[0]
    return info


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def versions() -> dict:
    import gpugrad

    out = {"gpugrad": gpugrad.__version__}
    for dist in ("numpy", "cupy-cuda13x", "cupy-cuda12x", "torch", "jax", "jaxlib", "autograd", "matplotlib",
                 "pytest-benchmark"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    here = Path(__file__).resolve().parent.parent
    commit = _run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"])
    if commit:
        dirty = _run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no",
                      "gpugrad", "kernels"])
        out["git"] = commit + ("+changes" if dirty else "")
    return out


def load_average() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def make_record(args, devices, rows, kernels, tgts, problems, wall_s, argv, load_start=None) -> dict:
    machine = machine_info()
    machine["load_average_start"] = load_start
    machine["load_average_end"] = load_average()
    return {
        "schema": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)],
        "devices": devices,
        "options": {"quick": args.quick, "time_budget_s": args.time_budget, "threads": args.threads,
                    "workloads": args.workloads,
                    "backends": args.backends, "steps": args.steps, "sizes": args.sizes},
        "wall_s": wall_s,
        "machine": machine,
        "versions": versions(),
        "workloads": {k: {"name": w.name, "description": w.description, "unit": w.unit, "steps": w.steps}
                      for k, w in WORKLOADS.items()},
        "backends": BACKEND_NOTES,
        "measurements": [_slim(r) for r in rows],
        "targets": tgts,
        "kernels": kernels,
        "problems": problems,
    }


def _slim(r: dict) -> dict:
    """A row for the record: the loss trajectory is cut to its first and last values."""
    r = dict(r)
    res = r.get("result")
    if res and "loss" in res:
        res = dict(res)
        loss = res.pop("loss")
        res["loss_first"] = loss[0] if loss else None
        res["loss_final"] = loss[-1] if loss else None
        r["result"] = res
    return r


# -- files ------------------------------------------------------------------------------------------


def write(record, table_text, out: Path, stem: str, plots: bool = True) -> list[Path]:
    paths = [out / f"{stem}.json", out / f"{stem}.txt"]
    paths[0].write_text(json.dumps(record, indent=1, default=str) + "\n")
    paths[1].write_text(table_text + "\n")
    if plots:
        paths += plot_w2(record["measurements"], out, stem)
        for key in ("W1", "W3"):
            paths += plot_bars(record["measurements"], key, out, stem)
    return paths


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    return plt


def plot_bars(rows, key: str, out: Path, stem: str) -> list[Path]:
    """W1 / W3: median time per step of each backend (log scale), with its ratio to hand NumPy."""
    sel = [r for r in rows if r["workload"] == key and r["status"] == "ok"]
    plt = _pyplot()
    if not sel or plt is None:
        return []
    made = []
    for size in sorted({r["size"] for r in sel}):
        grp = sorted((r for r in sel if r["size"] == size), key=lambda r: r["median_s"])
        labels = [f"{r['backend']} ({r['device']})" for r in grp]
        t = [r["median_s"] * 1e6 for r in grp]
        lo = [(r["median_s"] - r["q25_s"]) * 1e6 for r in grp]
        hi = [(r["q75_s"] - r["median_s"]) * 1e6 for r in grp]
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(grp) + 1.5))
        colors = ["tab:red" if r["backend"].startswith("gpugrad") else "tab:blue" for r in grp]
        ax.barh(labels, t, xerr=[lo, hi], color=colors, capsize=2)
        for i, r in enumerate(grp):
            if "vs_numpy" in r:
                ax.text(t[i], i, f"  {r['vs_numpy']:.2f}× numpy", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"median time per {grp[0]['unit']} (µs), log scale")
        ax.set_title(f"{key} {grp[0]['name']} {grp[0]['size_label']}: time per {grp[0]['unit']}")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        fig.tight_layout()
        p = out / f"{stem}-{key.lower()}-time{'' if len(made) == 0 else f'-{size}'}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.append(p)
    return made


def plot_w2(rows, out: Path, stem: str) -> list[Path]:
    """Time per step vs batch size (log-log), and GPU speedup vs batch size where both ran."""
    w2 = [r for r in rows if r["workload"] == "W2" and r["status"] == "ok"]
    if not w2:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return []
    series = defaultdict(list)
    speed = defaultdict(list)
    for r in sorted(w2, key=lambda r: r["size"]):
        series[f"{r['backend']} ({r['device']})"].append((r["size"], r["median_s"], r["q25_s"], r["q75_s"]))
        if "gpu_speedup" in r:
            speed[r["backend"]].append((r["size"], r["gpu_speedup"]))
    made = []
    hand = {r["size"]: r["median_s"] for r in w2 if r["backend"] == "numpy" and r["device"] == "cpu"}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for label, pts in series.items():
        b, t, lo, hi = zip(*pts, strict=True)
        err = [[m - q for m, q in zip(t, lo, strict=True)], [q - m for m, q in zip(t, hi, strict=True)]]
        style = "--" if "cuda" in label else "-"
        line = ax.errorbar(b, t, yerr=err, marker="o", capsize=2, label=label, linestyle=style)
        rel = [(x, m / hand[x]) for x, m in zip(b, t, strict=True) if x in hand]
        if rel:
            ax2.plot(*zip(*rel, strict=True), marker="o", linestyle=style, color=line[0].get_color(), label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylabel("median time per step (s)")
    ax.set_title("W2 mlp 784-256-10: time per SGD step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax2.axhline(1.0, color="grey", linewidth=0.8)
    ax2.axhline(1.05, color="tab:red", linewidth=0.8, linestyle=":")
    ax2.set_yscale("log")
    ax2.set_ylim(0.5, 4.0)  # the gaps that matter are near 1; slower peers run off the top
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel("time / hand-written NumPy's")
    ax2.set_title("each backend's time over hand-written NumPy's (dotted: 1.05)")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    p = out / f"{stem}-w2-time.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    made.append(p)
    if speed:
        fig, ax = plt.subplots(figsize=(7, 5))
        for b, pts in speed.items():
            x, s = zip(*pts, strict=True)
            ax.plot(x, s, marker="o", label=b)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_ylabel("GPU speedup over CPU (CPU time / GPU time)")
        ax.set_title("W2 mlp: GPU speedup over CPU")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / f"{stem}-w2-speedup.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.append(p)
    return made

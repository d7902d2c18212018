"""One bounded check on a GPU machine: ``python -m bench.gpu_check [--smoke]`` (or ``bench/gpu_check.sh``).

Steps, each in its own process under a time limit (seconds; the whole run stays within ``--budget``,
345 s by default, so that it ends inside 6 minutes with a cold compile cache):

====== ===== ================================================================================
env      20  device name, nvidia-smi driver version, CUDA runtime, package versions, date, git
smoke    90  every kernel-backed op once against float64 NumPy on a few shapes (NaN rows too),
             one bandwidth row (softmax [4096, 32768]) and the device copy rate
kernels  40  ``pytest -m gpu tests/test_kernels_gpu.py``: the kernels against references, first
tests    60  ``pytest -m gpu tests``, the rest of the GPU tests, once
bench    70  ``bench/bench_kernels.py`` once, full sizes: bytes/element, GB/s, % of copy, targets
w2       40  W2 (the MLP step) at B = 16384: gpugrad CUDA vs gpugrad CPU vs PyTorch CUDA eager
w2_jit   25  W2 at B = 64: eager vs ``gg.jit`` (CUDA graph) vs PyTorch CUDA eager, when gg.jit exists
====== ===== ================================================================================

``--smoke`` runs env and smoke only. Output goes straight into ``$OUT`` when it is set, else
``bench/results/``; the run writes at most 8 files there (:data:`MAX_FILES`), named ``<tag>.*``:

- ``<tag>.json``: the record, rewritten after every step and by the steps themselves as they
  measure, so a run stopped at any point leaves what it had;
- ``<tag>.log``: every step's output, as it comes;
- ``<tag>-pytest.log``: the GPU tests' output (both test steps);
- ``<tag>-kernels.xml`` and ``<tag>-pytest.xml``: the JUnit reports of the kernel tests and of the rest;
- ``<tag>-summary.txt``: the one-screen summary printed last.

``--cpu-dry-run`` goes through the same steps on the CPU with tiny sizes and a few fast tests,
which is how CI checks the harness without a GPU. Exit status: 0 when every step passed (or was
skipped because what it measures is absent), 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gpu_steps  # noqa: E402
from bench.gpu_steps import Writer, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_FILES = 8
BUDGET_S = 345.0
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class Step:
    name: str
    timeout_s: float  # on a GPU
    dry_timeout_s: float  # --cpu-dry-run
    smoke: bool = False  # part of --smoke
    what: str = ""


STEPS = (
    Step("env", 20, 20, True, "environment"),
    Step("smoke", 90, 40, True, "ops vs float64 reference, one bandwidth row, copy rate"),
    Step("kernels", 40, 20, False, "pytest -m gpu, the kernel tests"),
    Step("tests", 60, 40, False, "pytest -m gpu, the rest"),
    Step("bench", 70, 40, False, "kernel benchmarks"),
    Step("w2", 40, 30, False, "W2 B=16384 GPU vs CPU vs torch"),
    Step("w2_jit", 25, 30, False, "W2 B=64 eager vs gg.jit vs torch"),
)
STEP_NAMES = tuple(s.name for s in STEPS)
#: the kernel tests run first, in a step of their own, so that a slow run of the others never hides them
KERNEL_TESTS = "tests/test_kernels_gpu.py"
GPU_TEST_ARGS = ("-m", "gpu", "tests", f"--ignore={KERNEL_TESTS}")
GPU_KERNEL_TEST_ARGS = ("-m", "gpu", KERNEL_TESTS)
#: pytest steps: their JUnit report (a Files attribute)
PYTEST_STEPS = {"kernels": "kernels_xml", "tests": "pytest_xml"}
#: the dry run's few fast tests (pytest's heavier plugins off, to keep it short)
DRY_KERNEL_TEST_ARGS = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "tests/test_gpu_check.py",
                        "-k", "junit_summary")
DRY_TEST_ARGS = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "tests/test_gpu_check.py",
                 "-k", "junit_summary or files_are_at_most")


class Files:
    """The files of one run: every name is fixed up front, and there are at most MAX_FILES of them."""

    def __init__(self, out: Path, tag: str) -> None:
        self.out = out
        self.record = out / f"{tag}.json"
        self.log = out / f"{tag}.log"
        self.pytest_log = out / f"{tag}-pytest.log"
        self.pytest_xml = out / f"{tag}-pytest.xml"
        self.kernels_xml = out / f"{tag}-kernels.xml"
        self.summary = out / f"{tag}-summary.txt"
        # the record's rewrite goes through <tag>.json.tmp, which exists only for a moment
        self.all = [self.record, self.log, self.pytest_log, self.pytest_xml, self.kernels_xml, self.summary,
                    self.record.with_name(self.record.name + ".tmp")]
        assert len(self.all) <= MAX_FILES

    def written(self) -> list[str]:
        return [p.name for p in self.all if p.exists()]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Interrupted(Exception):
    """SIGTERM/SIGINT reached the check (an outer time limit, say)."""


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


# ------------------------------------------------------------------------------------ processes


def run_bounded(cmd: list[str], timeout_s: float, sinks: list[Any]) -> tuple[int | None, bool]:
    """Run ``cmd`` in its own process group, copying its output line by line to ``sinks`` (files,
    flushed at once); kill the group at ``timeout_s``. Returns (exit status or None, timed out)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True, errors="replace")

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            for sink in sinks:
                sink.write(line)
                sink.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=max(0.1, timeout_s))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        reader.join(timeout=KILL_GRACE_S)
    return proc.returncode, timed_out


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGINT to the step's process group (pytest then still writes its report), SIGTERM and
    SIGKILL after grace periods."""
    for sig, wait in ((signal.SIGINT, KILL_GRACE_S), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------------------- pytest


def junit_summary(xml_path: Path) -> dict[str, Any]:
    """Counts, time and the first failures of a JUnit XML report ({} when there is none)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        return {"note": f"no JUnit report ({type(exc).__name__})"}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out: dict[str, Any] = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    out["time_s"] = round(sum(float(s.get("time", 0.0)) for s in suites), 2)
    out["passed"] = out["tests"] - out["failures"] - out["errors"] - out["skipped"]
    failed = []
    for case in root.iter("testcase"):
        for bad in [*case.findall("failure"), *case.findall("error")]:
            failed.append({"test": f"{case.get('classname')}::{case.get('name')}",
                           "message": (bad.get("message") or "")[:300]})
    out["failed"] = failed[:30]
    out["failed_total"] = len(failed)
    return out


def _tail(path: Path, n: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="env and smoke steps only (<= 90 s)")
    p.add_argument("--cpu-dry-run", action="store_true", help="the same steps on the CPU, tiny sizes (for CI)")
    p.add_argument("--out", type=Path, help="output folder (default: $OUT, else bench/results)")
    p.add_argument("--tag", help="file name stem (default gpu-check-<UTC date and time>)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for the whole run (default {BUDGET_S:g})")
    p.add_argument("--steps", help=f"comma-separated subset of {','.join(STEP_NAMES)}")
    p.add_argument("--timeout", action="append", default=[], metavar="STEP=S", help="a step's own time limit")
    p.add_argument("--w2-batch", type=int, help="W2 batch (default 16384; 64 in the dry run)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per kernel benchmark row")
    # internal: run one step in this process
    p.add_argument("--step", choices=STEP_NAMES, help=argparse.SUPPRESS)
    p.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    # for testing the harness: make a step hang or fail
    p.add_argument("--fault", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = "cpu" if args.cpu_dry_run else "cuda"
    return args


def _faults(args: argparse.Namespace) -> dict[str, str]:
    return dict(f.split("=", 1) for f in args.fault)


def child_main(args: argparse.Namespace) -> int:
    """Run one step in this process, writing into the record."""
    w = Writer(args.record, args.step)
    fault = _faults(args).get(args.step)
    if fault == "hang":
        print(f"{args.step}: hanging on purpose", flush=True)
        w.update(partial="written before hanging")
        time.sleep(3600)
    if fault == "fail":
        raise RuntimeError(f"{args.step}: failing on purpose")
    dry = args.device == "cpu"
    if args.step == "env":
        return gpu_steps.step_env(w, args.device)
    if args.step == "smoke":
        return gpu_steps.step_smoke(w, args.device)
    if args.step == "bench":
        return gpu_steps.step_bench(w, args.device, "tiny" if dry else "full", 3 if dry else args.repeats)
    budget = 0.3 if dry else 4.0  # seconds of timed blocks per backend (twice that on the CPU)
    if args.step == "w2":
        return gpu_steps.step_w2(w, args.device, args.w2_batch or (64 if dry else 16384), budget)
    return gpu_steps.step_w2_jit(w, args.device, args.w2_batch or 64, budget)


def step_command(args: argparse.Namespace, step: Step, files: Files) -> list[str]:
    if step.name in PYTEST_STEPS:
        if args.cpu_dry_run:
            targets = DRY_TEST_ARGS if step.name == "tests" else DRY_KERNEL_TEST_ARGS
        else:
            targets = GPU_TEST_ARGS if step.name == "tests" else GPU_KERNEL_TEST_ARGS
        xml = getattr(files, PYTEST_STEPS[step.name])
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=8",
                f"--junitxml={xml}", "-o", "junit_family=xunit2", *targets]
    cmd = [sys.executable, "-m", "bench.gpu_check", "--step", step.name, "--record", str(files.record),
           "--repeats", str(args.repeats)]
    if args.cpu_dry_run:
        cmd.append("--cpu-dry-run")
    if args.w2_batch:
        cmd += ["--w2-batch", str(args.w2_batch)]
    for f in args.fault:
        cmd += ["--fault", f]
    return cmd


def run_step(args: argparse.Namespace, step: Step, files: Files, timeout_s: float, log: Any) -> dict[str, Any]:
    """Run one step; returns its status fields (the step itself may have added ``data``)."""
    banner = f"\n== {step.name}: {step.what} (limit {timeout_s:.0f} s) {_now()}\n"
    log.write(banner)
    log.flush()
    sys.stdout.write(banner)
    t0 = time.perf_counter()
    if step.name in PYTEST_STEPS:
        with open(files.pytest_log, "a") as plog:
            rc, timed_out = run_bounded(step_command(args, step, files), timeout_s, [plog, sys.stdout])
    else:
        rc, timed_out = run_bounded(step_command(args, step, files), timeout_s, [log, sys.stdout])
    fields: dict[str, Any] = {"wall_s": round(time.perf_counter() - t0, 2), "returncode": rc}
    if timed_out:
        fields["status"] = "timeout"
    else:
        fields["status"] = "ok" if rc == 0 else "failed"
    if step.name in PYTEST_STEPS:
        fields["pytest"] = junit_summary(getattr(files, PYTEST_STEPS[step.name]))
        if timed_out or "note" in fields["pytest"]:
            fields["pytest"]["log_tail"] = _tail(files.pytest_log)
        log.write(f"pytest: {json.dumps({k: v for k, v in fields['pytest'].items() if k != 'failed'})}\n")
    log.write(f"== {step.name}: {fields['status']} in {fields['wall_s']} s (exit {rc})\n")
    log.flush()
    return fields


def new_record(args: argparse.Namespace, steps: list[Step], limits: dict[str, float], argv: list[str]) -> dict:
    return {
        "schema": 1,
        "kind": "gpu-check",
        "mode": "cpu-dry-run" if args.cpu_dry_run else ("smoke" if args.smoke else "full"),
        "command": ["python", "-m", "bench.gpu_check", *argv],
        "started": _now(),
        "finished": None,
        "budget_s": args.budget,
        "environment": {},
        "steps": {s.name: {"status": "pending", "timeout_s": limits[s.name]} for s in steps},
        "files": [],
        "summary": [],
    }


def _edit(path: Path, fn: Any) -> dict:
    record = json.loads(path.read_text())
    fn(record)
    write_json(path, record)
    return record


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.step:
        return child_main(args)
    out = args.out or Path(os.environ.get("OUT") or ROOT / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or f"gpu-check-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    files = Files(out, tag)
    wanted = set(args.steps.split(",")) if args.steps else set(STEP_NAMES)
    unknown = wanted - set(STEP_NAMES)
    if unknown:
        print(f"unknown steps {sorted(unknown)}; choose from {STEP_NAMES}", file=sys.stderr)
        return 2
    steps = [s for s in STEPS if s.name in wanted and (s.smoke or not args.smoke)]
    limits = {s.name: float(s.dry_timeout_s if args.cpu_dry_run else s.timeout_s) for s in steps}
    for item in args.timeout:
        name, _, value = item.partition("=")
        if name not in limits:
            print(f"--timeout {item}: no step {name!r} in this run", file=sys.stderr)
            return 2
        limits[name] = float(value)
    write_json(files.record, new_record(args, steps, limits, argv))
    signal.signal(signal.SIGTERM, _on_signal)
    t_start = time.perf_counter()
    interrupted = None
    with open(files.log, "a") as log:
        for step in steps:
            left = args.budget - (time.perf_counter() - t_start)
            if interrupted or left < 3:
                why = f"interrupted ({interrupted})" if interrupted else "the run's time budget is spent"
                _edit(files.record, lambda r, n=step.name, w=why: r["steps"][n].update(status="not run", note=w))
                continue
            limit = min(limits[step.name], left)
            _edit(files.record, lambda r, n=step.name, t=limit: r["steps"][n].update(
                status="running", started=_now(), timeout_s=round(t, 1)))
            try:
                fields = run_step(args, step, files, limit, log)
            except (Interrupted, KeyboardInterrupt) as exc:
                interrupted = str(exc) or type(exc).__name__
                fields = {"status": "interrupted", "note": interrupted}
            data = json.loads(files.record.read_text())["steps"].get(step.name, {}).get("data", {})
            if fields["status"] == "ok" and "skipped" in data:
                fields["status"] = "skipped"
            _edit(files.record, lambda r, n=step.name, f=fields: r["steps"][n].update(f))
    record = json.loads(files.record.read_text())
    summary = summarize(record, files)
    files.summary.write_text("\n".join(summary) + "\n")
    record = _edit(files.record, lambda r: r.update(finished=_now(), summary=summary, files=files.written(),
                                                    wall_s=round(time.perf_counter() - t_start, 1)))
    print("\n" + "\n".join(summary))
    bad = [n for n, s in record["steps"].items() if s.get("status") not in ("ok", "skipped")]
    return 1 if bad else 0


# --------------------------------------------------------------------------------------- summary


def _step_line(name: str, s: dict[str, Any]) -> str:
    d = s.get("data", {})
    if name == "env":
        return ""
    if name == "smoke":
        bw = d.get("bandwidth") or {}
        first = ", ".join(f"{k} {v:.1f} s" for k, v in (d.get("first_call_s") or {}).items())
        text = f"checks {d.get('passed', '?')}/{len(d.get('checks', []))} ok; copy {d.get('copy_gbps', '?')} GB/s"
        if bw.get("gbps") is not None:
            text += f"; softmax {bw['impl']} {bw['gbps']:.0f} GB/s ({100 * (bw.get('frac_of_copy') or 0):.0f}%)"
        return text + (f"; first calls {first}" if first else "")
    if name in PYTEST_STEPS:
        p = s.get("pytest", {})
        if "tests" not in p:
            return p.get("note", "")
        text = f"{p['passed']} passed, {p['failures'] + p['errors']} failed, {p['skipped']} skipped in {p['time_s']} s"
        return text + "".join(f"\n      FAIL {f['test']}" for f in p.get("failed", [])[:3])
    if name == "bench":
        rows = d.get("rows", [])
        judged = [r for r in rows if r.get("target_status")]
        met = sum(r["target_status"] == "met" for r in judged)
        errors = sum(bool(r.get("error")) for r in rows)
        return f"{len(rows)} rows, copy {d.get('copy_gbps', '?')} GB/s, targets met {met}/{len(judged)}" + (
            f", {errors} rows with errors" if errors else "")
    if "skipped" in d:
        return str(d["skipped"])
    cases = d.get("cases", {})
    parts = [f"{k} {v['median_ms']:.3g} ms" if "median_ms" in v else f"{k} {str(next(iter(v.values())))[:60]}"
             for k, v in cases.items()]
    text = f"B={d.get('batch')}: " + ", ".join(parts)
    graph = d.get("cuda_graph")
    if graph is not None:
        text += f"; CUDA graph {'used' if graph.get('used') else 'NOT used'}"
    for key, label in (("gpu_over_cpu", "GPU/CPU"), ("vs_torch", "vs torch"), ("jit_over_eager", "jit/eager"),
                       ("jit_vs_torch", "jit vs torch")):
        if d.get(key) is not None:
            tgt = d.get(f"{key}_target")
            text += f"; {label} {d[key]:.3g}" + (f" ({tgt[0]}: {tgt[1]})" if tgt else "")
    return text


def summarize(record: dict[str, Any], files: Files) -> list[str]:
    """At most ~30 lines: the machine, one line per step, the target rows of the benchmark."""
    env = record.get("environment") or {}
    pk = env.get("packages") or {}
    cupy = pk.get("cupy-cuda13x") or pk.get("cupy-cuda12x")
    lines = [
        f"GPU check ({record['mode']}) {record['started']} git {env.get('git')}",
        f"device {env.get('device')}; driver {env.get('driver_version')}; CUDA runtime {env.get('cuda_runtime')}; "
        f"cupy {cupy}; numpy {pk.get('numpy')}; torch {pk.get('torch')}",
        f"{'step':7s} {'status':11s} {'wall/limit s':>13s}  result",
    ]
    for name, s in record["steps"].items():
        wall = s.get("wall_s")
        timing = f"{wall if wall is not None else '-'}/{s.get('timeout_s', '-')}"
        text = s.get("note") or _step_line(name, s)
        lines.append(f"{name:7s} {s.get('status', '?'):11s} {timing:>13s}  {text}")
    rows = [r for r in record["steps"].get("bench", {}).get("data", {}).get("rows", []) if r.get("target")]
    if rows:
        from bench.bench_kernels import HEADER, format_row  # noqa: PLC0415

        lines += ["kernel rows with targets:", HEADER] + [format_row(r) for r in rows if r["impl"] != "torch"]
    names = sorted({*files.written(), files.summary.name} - {files.record.name + ".tmp"})
    lines.append(f"files in {files.out}: {', '.join(names)} (at most {MAX_FILES})")
    return lines


if __name__ == "__main__":
    sys.exit(main())

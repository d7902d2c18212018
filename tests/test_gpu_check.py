"""The GPU check's harness without a GPU: its CPU dry run writes the record as it goes, bounds every
step in time, survives a hanging step and an interruption, and leaves at most 8 files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import bench_kernels as BK
from bench import gpu_check as GC
from bench import gpu_env
from bench import gpu_steps as GS

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "GPUGRAD_DEVICE": "cpu"}
ENV.pop("OUT", None)


def _check_files(out: Path, tag: str) -> list[str]:
    names = sorted(p.name for p in out.iterdir())
    assert len(names) <= GC.MAX_FILES, names
    assert all(n.startswith(tag) for n in names), names
    assert not any(n.endswith(".tmp") for n in names), names
    return names


def test_dry_run_with_a_hanging_step(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench.gpu_check", "--cpu-dry-run", "--out", str(out), "--tag", "t",
           "--fault", "bench=hang", "--timeout", "bench=2"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the bench step timed out

    rec = json.loads((out / "t.json").read_text())
    assert rec["mode"] == "cpu-dry-run" and rec["finished"] and rec["wall_s"] < wall + 1
    env = rec["environment"]
    for key in ("date", "git", "python", "packages", "driver_version", "device"):
        assert key in env, key
    assert env["packages"]["numpy"] == np.__version__ and env["device"] == "cpu"
    steps = rec["steps"]
    assert list(steps) == list(GC.STEP_NAMES)
    assert {n: s["status"] for n, s in steps.items()} == {
        "env": "ok", "smoke": "ok", "kernels": "ok", "tests": "ok", "bench": "timeout", "w2": "ok",
        "w2_jit": steps["w2_jit"]["status"]}
    assert steps["w2_jit"]["status"] in ("ok", "skipped")
    # the hanging step's own write, made before it hung, is kept
    assert steps["bench"]["data"]["partial"] == "written before hanging"
    assert 2 <= steps["bench"]["wall_s"] < 2 + 3 * GC.KILL_GRACE_S
    smoke = steps["smoke"]["data"]
    assert smoke["failures"] == 0 and smoke["passed"] == len(GS.smoke_plan())
    assert smoke["copy_gbps"] > 0 and smoke["bandwidth"]["gbps"] > 0
    pyt = steps["tests"]["pytest"]
    assert pyt["passed"] > 0 and pyt["failures"] == 0
    assert steps["kernels"]["pytest"]["passed"] > 0 and list(steps).index("kernels") < list(steps).index("tests")
    w2 = steps["w2"]["data"]
    assert w2["batch"] == 64
    assert all(c["agrees"] for c in w2["cases"].values()), w2
    assert w2["cases"]["gpugrad cpu"]["median_ms"] > 0

    summary = (out / "t-summary.txt").read_text().splitlines()
    assert summary == rec["summary"] and len(summary) <= 40
    assert proc.stdout.rstrip().endswith(summary[-1])
    assert any(line.startswith("bench   timeout") for line in summary), summary
    log = (out / "t.log").read_text()
    assert "== bench: timeout" in log and "hanging on purpose" in log
    names = _check_files(out, "t")
    assert rec["files"] == [n for n in rec["files"] if n in names]


def test_interrupted_run_leaves_record_and_summary(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench.gpu_check", "--cpu-dry-run", "--smoke", "--out", str(out), "--tag", "s",
           "--fault", "smoke=hang"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                rec = json.loads((out / "s.json").read_text())
                if rec["steps"]["smoke"].get("data", {}).get("partial"):
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the smoke step never started")
        proc.send_signal(signal.SIGTERM)  # as an outer time limit would
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout
    rec = json.loads((out / "s.json").read_text())
    assert list(rec["steps"]) == ["env", "smoke"]  # --smoke runs these only
    assert rec["steps"]["env"]["status"] == "ok"
    assert rec["steps"]["smoke"]["status"] == "interrupted"
    assert rec["summary"] and (out / "s-summary.txt").exists()
    _check_files(out, "s")


def _gone(pid: int, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_run_bounded_kills_the_group(tmp_path):
    log = tmp_path / "log"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('up', p.pid, flush=True); time.sleep(60)")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc, timed_out = GC.run_bounded([sys.executable, "-c", code], 1.0, [f])
    assert timed_out and rc is not None and rc != 0
    assert time.perf_counter() - t0 < 1 + 3 * GC.KILL_GRACE_S
    first = log.read_text().splitlines()[0].split()
    assert first[0] == "up" and _gone(int(first[1]))  # the step's own child was stopped too
    with open(log, "w") as f:
        assert GC.run_bounded([sys.executable, "-c", "raise SystemExit(3)"], 30, [f]) == (3, False)


def test_junit_summary(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1" time="1.5">'
        '<testcase classname="tests.a" name="ok"/><testcase classname="tests.a" name="bad">'
        '<failure message="assert 1 == 2"/></testcase><testcase classname="tests.a" name="s"><skipped/></testcase>'
        '<testcase classname="tests.b" name="ok2"/></testsuite></testsuites>'
    )
    s = GC.junit_summary(xml)
    assert (s["tests"], s["passed"], s["failures"], s["skipped"], s["time_s"]) == (4, 2, 1, 1, 1.5)
    assert s["failed"] == [{"test": "tests.a::bad", "message": "assert 1 == 2"}]
    assert "note" in GC.junit_summary(tmp_path / "missing.xml")


def test_files_are_at_most_eight(tmp_path):
    files = GC.Files(tmp_path, "x")
    assert len(files.all) <= GC.MAX_FILES and len({p.name for p in files.all}) == len(files.all)


# ------------------------------------------------------------------------------------ the bench rows


@pytest.mark.parametrize(
    "op, shape, per_elem, per_row",
    [("sigmoid", (2**28,), 20, 0), ("softmax", (4096, 32768), 20, 0), ("cross_entropy", (8, 50257), 12, 32),
     ("cross_entropy_dense", (4096, 32768), 20, 16), ("mse", (3, 5), 20, 8)],
)
def test_traffic(op, shape, per_elem, per_row):
    t = BK.TRAFFIC[op]
    rows = shape[0] if len(shape) > 1 else 0
    assert t.bytes(shape, 4) == math.prod(shape) * per_elem + rows * per_row
    fwd, bwd = t.split(shape, 4)
    assert fwd + bwd == t.bytes(shape, 4) and fwd < bwd
    assert f"= {per_elem} B/elem" in t.formula(4)
    assert t.bytes(shape, 8) > t.bytes(shape, 4)


def test_targets():
    row = {"op": "cross_entropy", "shape": [4096, 32768], "impl": "kernels", "frac_of_copy": 0.9, "vs_torch": 0.7}
    assert BK.assess(row) == "met"
    assert BK.assess({**row, "vs_torch": 0.9}) == "missed"
    assert BK.assess({**row, "frac_of_copy": 0.8}) == "missed"
    assert BK.assess({**row, "vs_torch": None}) == "missed"
    assert BK.assess({**row, "impl": "torch"}) is None
    assert BK.assess({**row, "shape": [8, 50257]}) is None  # measured, no target
    act = {"op": "relu", "shape": [2**28], "impl": "gpugrad", "frac_of_copy": 0.89}
    assert BK.assess(act) == "missed" and BK.assess({**act, "frac_of_copy": 0.9}) == "met"
    assert BK.target_for("softmax", BK.BIG).min_frac_of_copy == 0.85


def test_bench_rows_on_cpu():
    res = BK.run(ops=("softmax", "cross_entropy"), device="cpu", repeats=2, warmup=1)
    rows = res["rows"]
    assert {(r["op"], r["impl"]) for r in rows} == {(o, i) for o in ("softmax", "cross_entropy")
                                                    for i in ("gpugrad", "composed")}
    for r in rows:
        assert r["error"] is None, r
        assert r["gbps"] > 0 and r["frac_of_copy"] > 0 and r["fwd_ms"] > 0 and len(r["fwd_runs_ms"]) == 2, r
        assert r["bytes_per_elem"] == pytest.approx(BK.TRAFFIC[r["op"]].bytes(tuple(r["shape"]), 4)
                                                    / math.prod(r["shape"]))
        assert BK.format_row(r).startswith(r["op"])
    assert "B/elem" in BK.format_table(res)


def test_input_sets_rotate_past_l2():
    t = BK.TRAFFIC["cross_entropy"]
    assert BK.input_sets((4096, 32768), t, 50 << 20) == 1
    assert BK.input_sets((8, 50257), t, 50 << 20) > 1
    assert BK.input_sets((8, 50257), t, 0) == 1


# ----------------------------------------------------------------------------------- the smoke checks


def test_rel_err_catches_mismatches():
    ref = np.array([1.0, np.nan, 3.0, np.inf])
    assert GS.rel_err(ref.copy(), ref) == 0
    assert GS.rel_err(np.array([1.0, 2.0, 3.0, np.inf]), ref) == math.inf  # NaN lost
    assert GS.rel_err(np.array([1.0, np.nan, 3.0, -np.inf]), ref) == math.inf  # wrong infinity
    assert GS.rel_err(np.array([1.0, np.nan, np.inf, np.inf]), ref) == math.inf  # an extra infinity
    assert GS.rel_err(np.array([1.0, np.nan, 3.1, np.inf]), ref) == pytest.approx(0.1 / math.sqrt(10))
    assert GS.rel_err(np.zeros(3), np.zeros(4)) == math.inf


def test_smoke_check_fails_on_a_wrong_op(monkeypatch):
    ok = GS.check_op("softmax", (3, 33), "float32", "cpu")
    assert ok["ok"] and ok["fwd"] < 1e-6
    import gpugrad as gg

    real = GS._gg_op
    monkeypatch.setattr(GS, "_gg_op", lambda n: (lambda x: gg.softmax(x * 1.0001)) if n == "softmax" else real(n))
    bad = GS.check_op("softmax", (3, 33), "float32", "cpu")
    assert not bad["ok"]


def test_driver_version_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in *driver_version*) echo "NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB" ;;\n'
        "*) echo 'Field is not a valid field to query.' >&2; exit 2 ;; esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    smi = gpu_env.nvidia_smi()
    assert smi == {"name": "NVIDIA H100 80GB HBM3", "driver_version": "580.159.04", "memory.total": "81559 MiB"}
    env = gpu_env.environment(gpu=False)
    assert env["driver_version"] == "580.159.04" and env["device"] == "NVIDIA H100 80GB HBM3"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert gpu_env.nvidia_smi() is None

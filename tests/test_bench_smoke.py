"""The benchmark runner end to end on tiny sizes: it measures, checks and writes its record."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runner_quick(tmp_path):
    out = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "bench", "--device", "cpu", "--quick", "--workloads", "W1,W2,W3,W4",
        "--backends", "gpugrad,numpy", "--steps", "W1=20", "--steps", "W2=3", "--steps", "W3=2",
        "--sizes", "W2=64", "--out", str(out), "--tag", "smoke",
    ]
    env = {**os.environ, "GPUGRAD_DEVICE": "cpu"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    table = (out / "smoke.txt").read_text()
    assert table.strip() == proc.stdout.strip()
    for key in ("W1 linreg", "W2 mlp", "W3 chain"):
        assert any(line.startswith(key) and " gpugrad " in line for line in table.splitlines()), table
    assert "[  1/6] W1" in proc.stderr  # one progress line per measurement

    record = json.loads((out / "smoke.json").read_text())
    assert record["devices"] == ["cpu"]
    assert record["machine"]["cpu_count"] >= 1 and record["machine"]["hostname"]
    assert record["versions"]["numpy"] and record["problems"] == []
    rows = {(m["workload"], m["backend"]): m for m in record["measurements"]}
    for key, steps in (("W1", 20), ("W2", 3), ("W3", 2)):
        gg = rows[(key, "gpugrad")]
        assert gg["status"] == "ok" and gg["steps_run"] == steps
        assert gg["median_s"] > 0 and gg["min_s"] <= gg["median_s"] <= gg["max_s"]
        assert gg["check"] == "ok" and rows[(key, "numpy")]["check"] == "reference"
    assert abs(rows[("W1", "gpugrad")]["vs_gpugrad"] - 1.0) < 1e-12
    assert record["kernels"]["status"] == "skipped"

    has_mpl = importlib.util.find_spec("matplotlib") is not None
    assert (out / "smoke-w2-time.png").exists() == has_mpl

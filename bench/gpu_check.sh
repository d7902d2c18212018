#!/usr/bin/env bash
# One call on a GPU machine: the GPU test suite, the kernel benchmarks and, when present, the
# project benchmarks. Results go to bench/results/ (and are copied to $OUT when it is set):
#   pytest-gpu-<date>.log / .xml / .json   the suite's output, JUnit XML and a JSON summary
#   gpu-<date>.json                         bench/bench_kernels.py
#   environment-<date>.txt                  nvidia-smi, Python and package versions
# Extra arguments for bench_kernels.py may be given in $BENCH_ARGS (e.g. "--quick").
# Exit status: non-zero when any step fails.
set -u -o pipefail

cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
results="bench/results"
mkdir -p "$results"
status=0

{
    echo "date: $stamp"
    nvidia-smi 2>&1 || echo "nvidia-smi not available"
    "$PY" - <<'EOF'
import platform, sys
print("python", sys.version.replace("\n", " "), platform.platform())
for name in ("numpy", "cupy", "torch", "pytest"):
    try:
        mod = __import__(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(name, "unavailable:", exc)
EOF
} > "$results/environment-$stamp.txt" 2>&1
cat "$results/environment-$stamp.txt"

echo "== GPU test suite"
"$PY" -m pytest -m gpu -q tests --junitxml="$results/pytest-gpu-$stamp.xml" 2>&1 | tee "$results/pytest-gpu-$stamp.log"
pytest_rc=${PIPESTATUS[0]}
[ "$pytest_rc" -eq 0 ] || status=1

"$PY" - "$results/pytest-gpu-$stamp.xml" "$results/pytest-gpu-$stamp.json" "$pytest_rc" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET

xml_path, json_path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
summary = {"returncode": rc, "tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time_s": 0.0, "failed": []}
try:
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for s in suites:
        for key in ("tests", "failures", "errors", "skipped"):
            summary[key] += int(s.get(key, 0))
        summary["time_s"] += float(s.get("time", 0.0))
    for case in root.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            summary["failed"].append({
                "test": f"{case.get('classname')}::{case.get('name')}",
                "message": (bad.get("message") or "")[:2000],
            })
except Exception as exc:  # no XML: pytest could not start
    summary["note"] = f"no JUnit XML ({exc})"
summary["passed"] = summary["tests"] - summary["failures"] - summary["errors"] - summary["skipped"]
with open(json_path, "w") as f:
    json.dump(summary, f, indent=1)
print("pytest summary:", {k: v for k, v in summary.items() if k != "failed"})
EOF

echo "== kernel benchmarks"
# shellcheck disable=SC2086
"$PY" bench/bench_kernels.py --out "$results/gpu-$stamp.json" ${BENCH_ARGS:-} || status=1

if [ -f bench/__main__.py ]; then
    echo "== project benchmarks"
    "$PY" -m bench --device cuda --quick --out "$results" || status=1
else
    echo "== project benchmarks: bench/__main__.py not present, skipped"
fi

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/results"
    cp -r "$results/." "$OUT/results/"
    echo "copied $results to $OUT/results"
fi
exit "$status"

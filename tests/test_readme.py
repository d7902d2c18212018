"""The README stays honest: its tour runs, its benchmark table agrees with the record it names
(target, measured ratio, met or not), its layout lists every module, and its test command is
the one CI runs."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_tour_runs():
    block = re.search(r"```python\n(.*?)```", _section("A tour"), re.S).group(1)
    exec(compile(block, "README tour", "exec"), {})


def test_benchmark_table_matches_its_record():
    text = _section("Benchmarks")
    record = re.search(r"`(bench/results/[^`]+\.json)`", text).group(1)
    data = json.loads((ROOT / record).read_text())
    command = re.search(r"```bash\n(.*?)\n```", text, re.S).group(1).strip()
    assert command.split() == data["command"], "the README's command is not the one the record was made by"
    rows = {}
    for row in text.splitlines():
        if row.startswith("| W"):
            cells = [c.strip() for c in row.strip("|").split("|")]
            size = int(re.search(r"= (\d+)", cells[0]).group(1))
            rows[(cells[0][:2], size)] = (row, cells)
    targets = data["targets"]
    assert len(rows) == len(targets), "one table row per target"
    for t in targets:
        row, cells = rows[(t["workload"], t["size"])]
        assert float(cells[-2]) == pytest.approx(t["ratio"], abs=0.006), row
        assert cells[-1] == ("yes" if t["met"] else "no"), row
        assert f"{t['target']:g}×" in cells[-3], row
    met = sum(t["met"] for t in targets)
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight"]
    assert f"{words[met]} of the {words[len(targets)]} targets were met" in text


def test_layout_lists_every_module():
    layout = _section("Layout")
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "gpugrad").rglob("*.py"))
        if p.name != "__init__.py" and p.name not in layout
    ]
    assert not missing, f"README's layout does not mention: {missing}"


def test_test_command_is_what_ci_runs():
    m = re.search(r'^pip install "\.\[test,dev\]" && python -m pytest -q', README, re.M)
    assert m, "README lost its one-line test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install ".[test,dev]" && python -m pytest -q\n' in ci

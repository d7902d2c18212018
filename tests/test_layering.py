"""The module layering: tensor.py and graph.py import no op module and no front end, and no
import circle among gpugrad's modules is longer than two modules (imports inside functions count).

The simulated CUDA device's stand-in for CuPy (``gpugrad.testing.simulated_cuda``) is left out: its
modules mirror CuPy's own layout, ``cupy`` and ``cupy.cuda`` importing each other as CuPy's do."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "gpugrad"
MIRRORS_CUPY = ROOT / "testing" / "simulated_cuda"


def _imports() -> dict:
    mods = {}
    for p in ROOT.rglob("*.py"):
        if MIRRORS_CUPY in p.parents:
            continue
        parts = ("gpugrad",) + p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    edges = {name: set() for name in mods}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                for t in subs or [target]:
                    if t in mods and t != name:
                        edges[name].add(t)
    assert "gpugrad.ops.math" in edges and len(edges) > 30
    return edges


def _components(edges: dict) -> list:
    """Strongly connected components (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_tensor_and_graph_import_no_op_module_and_no_front_end():
    edges = _imports()
    assert edges["gpugrad.tensor"] <= {"gpugrad.backend"}
    # the graph's compiled loops (gpugrad.native) sit below it, beside the backend
    assert edges["gpugrad.graph"] <= {"gpugrad.tensor", "gpugrad.native"}
    assert edges["gpugrad.native"] <= {"gpugrad.native.build"}
    assert not edges["gpugrad.native.build"]


def test_no_import_circle_is_longer_than_two_modules():
    long = [sorted(c) for c in _components(_imports()) if len(c) > 2]
    assert not long, f"import circles of more than two modules: {long}"


def test_the_check_sees_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(c) for c in _components(edges) if len(c) > 2] == [["a", "b", "c"]]

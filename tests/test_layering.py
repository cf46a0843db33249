"""The import graph of pymlm runs one way, down the pipeline (STYLE.md, "Layout").

Every ``import`` and ``from ... import`` of a pymlm module, at module level or
inside a function, is read with :mod:`ast`; each module belongs to a stage, and
a module may import only from its own stage or from earlier ones. The graph of
modules must have no circle either (a lazy import inside a function counts).
"""

import ast
import pathlib
from collections import defaultdict

import pymlm

ROOT = pathlib.Path(pymlm.__file__).resolve().parent

# the stage order: base utilities, then the pipeline, then the public API
STAGES = [
    {"errors", "_validation", "_progress", "datasets"},
    {"sources"},
    {"formula"},
    {"smooth"},
    {"design"},
    {"crossprod"},
    {"linalg"},
    {"fit"},
    {"inference"},
    {"federated"},
    {"plot"},
    {"results"},
    {"api", "cli", "pymlm"},
]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}

def _module_name(path: pathlib.Path) -> str:
    parts = ["pymlm", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the pymlm modules it imports (``from pkg import name`` counts as ``pkg.name``
    when that is a module, else as ``pkg``)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    targets.append(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t.split(".")[0] == "pymlm" and t in modules and t != name:
                    graph[name].add(t)
    return graph


def stage(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "pymlm"
    if key == "_api":
        key = "api"
    assert key in RANK, f"module {module} belongs to no stage; add it to STAGES"
    return RANK[key]


def test_every_module_has_a_stage():
    for module in import_graph():
        stage(module)


def test_no_import_points_up_the_pipeline():
    upward = sorted((a, b) for a, targets in import_graph().items() for b in targets
                    if stage(b) > stage(a))
    assert upward == []


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_module_graph_has_no_circle():
    # a package's __init__ re-exporting its own modules is not a circle between stages
    graph = {a: {b for b in bs if not (a.startswith(b + ".") or b.startswith(a + "."))}
             for a, bs in import_graph().items()}
    assert _cycles(graph) == []


def test_the_checks_see_a_planted_circle():
    graph = {"pymlm.results.lmer": {"pymlm._api"}, "pymlm._api": {"pymlm.results.lmer"}}
    assert _cycles(graph) == [["pymlm._api", "pymlm.results.lmer"]]
    assert stage("pymlm._api") > stage("pymlm.results.lmer") > stage("pymlm.inference.blb")

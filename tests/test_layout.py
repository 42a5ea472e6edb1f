"""The shape of the code: no import cycles in sac_ivr, and one registry of features.

Every import counts, wherever it is written: at the top, in a function, or under
``if TYPE_CHECKING`` (a function-local import that hides a cycle is still one).
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

from sac_ivr.features import FEATURES

PACKAGE = Path(__file__).resolve().parent.parent / "sac_ivr"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the sac_ivr modules it imports (any import statement anywhere)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in modules else source)
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "sac_ivr.features" in graph and graph["sac_ivr.cli"]  # the walk found them
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_function_local_import() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    local = ast.parse("def f():\n    from sac_ivr import cli\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(local))


FEATURE_PACKAGES = {
    "agi",
    "audit",
    "auth",
    "calls",
    "history",
    "lifecycle",
    "notifications",
    "panels",
    "protocols",
    "reports",
    "retention",
    "sounds",
}


def test_the_bottom_layer_imports_no_feature() -> None:
    """asterisk/, config, db and the Feature shape know no feature (import-linter's
    layers contract says the same for every layer; this keeps it in plain pytest)."""
    graph = import_graph()
    features = {m for m in graph if m.split(".")[1:2] and m.split(".")[1] in FEATURE_PACKAGES}
    bottom = [
        m
        for m in graph
        if m in {"sac_ivr.config", "sac_ivr.feature", "sac_ivr.cli_args"}
        or m.startswith("sac_ivr.asterisk")
        or (m.startswith("sac_ivr.db") and m != "sac_ivr.db.migrations.env")
    ]
    assert "sac_ivr.asterisk.fastagi" in bottom
    for module in bottom:
        assert not graph[module] & features, f"{module} imports {graph[module] & features}"


def _declared_dependencies() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.glob("*/feature.py"):
        module = importlib.import_module(f"sac_ivr.{path.parent.name}.feature")
        found |= {(path.parent.name, other) for other in module.FEATURE.depends_on}
    return found


def test_the_independence_contract_is_what_the_features_declare() -> None:
    """pyproject.toml's import-linter contract lets a feature import another only
    where its feature.py declares it (``depends_on``), and nowhere else."""
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (independence,) = [c for c in contracts if c["type"] == "independence"]
    assert set(independence["modules"]) == {f"sac_ivr.{p}" for p in FEATURE_PACKAGES}
    allowed = set()
    for line in independence["ignore_imports"]:
        source, target = (side.strip() for side in line.split("->"))
        if source.startswith("sac_ivr.core"):
            continue  # the core's typed fields, listed apart
        a, b = source.split(".")[1], target.split(".")[1]
        assert (source, target) == (f"sac_ivr.{a}.**", f"sac_ivr.{b}.**"), line
        allowed.add((a, b))
    declared = _declared_dependencies()
    assert declared and allowed == declared
    for a, b in declared:
        assert a in FEATURE_PACKAGES and b in FEATURE_PACKAGES and a != b


def test_every_feature_package_declares_itself_once_in_features() -> None:
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    declared = {p.parent.name for p in PACKAGE.glob("*/feature.py")}
    assert declared == FEATURE_PACKAGES
    assert len(FEATURES) == len(declared)
    modules = {f.http.__module__.rsplit(".", 1)[0] for f in FEATURES if f.http is not None} | {
        f.tables.__name__.rsplit(".", 1)[0] for f in FEATURES if f.tables is not None
    }
    assert modules <= {f"sac_ivr.{name}" for name in FEATURE_PACKAGES}


def test_every_hook_used_is_offered_by_one_feature() -> None:
    offered = [hook for f in FEATURES for hook in f.offers]
    assert len(offered) == len(set(offered))
    for feature in FEATURES:
        assert set(feature.uses) <= set(offered), feature.name
        if feature.uses:
            assert feature.wire is not None, feature.name

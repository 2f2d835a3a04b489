"""The layout's promises, read from the source: imports flow one way, product code never
imports a benchmark, an evaluation or a simulator, and a gateway runs on the gateway extra."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Lower rank = lower layer. A module may import its own package or a strictly lower layer.
RANKS = {
    "broker_config": 0,
    "floorwalker": 1,
    "edge_agent": 2,
    "recommender": 2,
    "presence": 3,
    "handheld": 3,
    "integrations": 3,
    "simulators": 4,
    "bench": 5,
    "floorwalker.cli": 6,
}
#: The one arrow up the graph: the wire's errors are the base's error tree.
ALLOWED_UP = {("broker_config", "floorwalker.errors")}
PRODUCT = ("broker_config", "floorwalker", "edge_agent", "recommender", "presence", "handheld")

#: Third-party top-level modules of the base install and of the `gateway` extra (pyproject).
CORE_MODULES = {"paho", "pydantic", "pydantic_core", "typer", "yaml", "numpy", "rich", "cryptography"}
GATEWAY_MODULES = CORE_MODULES | {"onnxruntime", "cv2", "bleak", "scipy"}


def package_of(module: str) -> str:
    if module == "floorwalker.cli" or module.startswith(("floorwalker.cli.", "floorwalker.__main__")):
        return "floorwalker.cli"
    return module.split(".")[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    out = {}
    for top in (
        "broker_config",
        "floorwalker",
        "edge_agent",
        "recommender",
        "presence",
        "handheld",
        "integrations",
        "simulators",
    ):
        for path in (REPO / top).rglob("*.py"):
            out[module_name(path)] = path
    for path in (REPO / "bench").rglob("*.py"):
        out[module_name(path)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, *, module_level_only: bool = False) -> Iterator[str]:
    """Absolute names imported at run time (``if TYPE_CHECKING:`` blocks left out)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if module_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        stack.extend(ast.iter_child_nodes(node))


MODULES = source_modules()


def test_the_walk_sees_every_package_and_reads_imports_inside_functions() -> None:
    assert {package_of(m) for m in MODULES} == set(RANKS)
    tree = ast.parse("def f():\n    import recommender.engine\nif TYPE_CHECKING:\n    import bench.e2e\n")
    assert list(imports(tree)) == ["recommender.engine"]
    assert list(imports(tree, module_level_only=True)) == []


def up_arrows() -> list[str]:
    found = []
    for mod, path in MODULES.items():
        src = package_of(mod)
        for name in set(imports(ast.parse(path.read_text(encoding="utf-8")))):
            if name not in MODULES or package_of(name) == src:
                continue
            dst = package_of(name)
            if RANKS[dst] >= RANKS[src] and (src, name) not in ALLOWED_UP:
                found.append(f"{mod} imports {name} ({src} -> {dst})")
    return sorted(found)


def test_imports_flow_one_way() -> None:
    assert up_arrows() == []


def test_product_code_never_imports_a_benchmark_an_evaluation_or_a_simulator() -> None:
    offenders = [
        f"{mod} imports {name}"
        for mod, path in MODULES.items()
        if package_of(mod) in PRODUCT
        for name in imports(ast.parse(path.read_text(encoding="utf-8")))
        if package_of(name) in ("bench", "simulators", "floorwalker.cli")
    ]
    assert offenders == []


def closure(roots: list[str], *, module_level_only: bool) -> tuple[set[str], set[str]]:
    """Our modules reachable from ``roots``, and the third-party top-level modules they import."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = list(roots)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        for name in imports(
            ast.parse(MODULES[mod].read_text(encoding="utf-8")), module_level_only=module_level_only
        ):
            if name in MODULES:
                todo.append(name)
                parent = name.rpartition(".")[0]
                while parent:  # importing a.b.c runs a/__init__ and a/b/__init__
                    if parent in MODULES:
                        todo.append(parent)
                    parent = parent.rpartition(".")[0]
            elif name.split(".")[0] not in sys.stdlib_module_names and package_of(name) not in RANKS:
                third.add(name.split(".")[0])
    return seen, third


def test_a_gateway_needs_only_the_gateway_extra() -> None:
    reached, third = closure(["edge_agent.agent"], module_level_only=False)
    assert "edge_agent.camera.worker" in reached and "edge_agent.ble.scanner" in reached
    assert {package_of(m) for m in reached} <= {"edge_agent", "floorwalker", "broker_config"}
    assert third <= GATEWAY_MODULES, f"the gateway imports {sorted(third - GATEWAY_MODULES)}"


@pytest.mark.parametrize("root", sorted(m for m in MODULES if package_of(m) == "floorwalker.cli"))
def test_the_cli_starts_on_the_base_install(root: str) -> None:
    """`floorwalker --help` and `floorwalker edge` load no server or lab dependency: the
    commands import those when they run."""
    _, third = closure([root], module_level_only=True)
    assert third <= CORE_MODULES, f"{root} imports {sorted(third - CORE_MODULES)} at load time"

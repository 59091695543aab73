"""The house's import layers, read statically from every module (imports inside functions and under
``TYPE_CHECKING`` count too): each package imports only the packages below it, and no module
imports itself back through a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "reft_lightning"
ALLOWED: dict[str, set[str]] = {
    "data": {"models"},
    "models": set(),
    "rl": set(),
    "sandbox": set(),
    "checkpoints": {"models"},
    "generation": {"models"},
    "rewards": {"data", "models", "sandbox"},
    "evaluation": {"data", "models", "rewards", "rl", "generation"},
    "stages": {"data", "models", "rewards", "rl", "generation", "evaluation", "checkpoints"},
    "report": set(),
}
"""Package -> the packages of ``reft_lightning`` it may import besides itself (data loads tokenizers
through models; models never read data; checkpoints builds models to export them; a learned reward
loads its classifier through models; report reads CSV logs only); top-level modules
(``cli``, ``callbacks``, ``tiny``, ``__init__``) may import anything."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """``reft_lightning`` modules that ``path`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "reft_lightning"}


GRAPH = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_the_graph_is_read() -> None:
    assert "reft_lightning.stages.ppo_args" in GRAPH["reft_lightning.stages.reft"]
    assert len(GRAPH) > 40


def test_each_package_imports_only_the_packages_below_it() -> None:
    wrong = []
    for module, imported in GRAPH.items():
        package = _package(module)
        if package is None:
            continue
        for target in imported:
            target_package = _package(target)
            if target_package not in (None, package) and target_package not in ALLOWED[package]:
                wrong.append(f"{module} imports {target}")
            if target_package is None and target != "reft_lightning":
                wrong.append(f"{module} imports the top-level {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    def resolve(name: str) -> str | None:  # "from reft_lightning.x import y" may name a package
        return name if name in GRAPH else None

    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(filter(None, map(resolve, GRAPH[module]))):
            if target.startswith(module + ".") or module.startswith(target + "."):
                continue  # a package's __init__ re-exporting its own modules
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])

"""Architecture rules that can fail: cores are plain Python (no kfp, no TensorFlow where the image has none),
every component folder has its three parts, and every installed package is listed in setup.cfg."""

import configparser
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENT_DIRS = sorted(p.parent for p in (ROOT / "components").glob("*/core.py"))
#: cores whose family image holds no TensorFlow: importing them must not import it either
NO_TENSORFLOW = ("preflight", "ingest", "statistics", "schema", "validate", "push", "monitor", "registry",
                 "tune")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_every_component_has_core_component_and_readme():
    assert len(COMPONENT_DIRS) >= 7
    for folder in COMPONENT_DIRS:
        for part in ("core.py", "component.py", "README.md"):
            assert (folder / part).exists(), f"{folder.name} has no {part}"


def test_no_core_imports_kfp_and_data_cores_do_not_import_tensorflow():
    for folder in COMPONENT_DIRS:
        loaded = _modules_after_import(f"kfpc.components.{folder.name}.core")
        assert not {m for m in loaded if m == "kfp" or m.startswith("kfp.")}, f"{folder.name}/core.py imports kfp"
        if folder.name in NO_TENSORFLOW:
            assert "tensorflow" not in loaded, f"{folder.name}/core.py imports tensorflow"


def test_sharded_statistics_modules_stay_plain_python():
    # the shard planner, the accumulator wire format and the TF_CONFIG builder run in pods without kfp or TF
    for module in ("kfpc.components.statistics.shards", "kfpc.components.statistics.wire",
                   "kfpc.components.train.distribution"):
        loaded = _modules_after_import(module)
        assert not {m for m in loaded if m == "kfp" or m.startswith("kfp.")}, f"{module} imports kfp"
        assert "tensorflow" not in loaded, f"{module} imports tensorflow"


def test_every_python_package_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    mapping = {"components": "kfpc.components", "pipelines": "kfpc.pipelines", "serving": "kfpc.serving"}
    for top, package in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top)
            name = ".".join([package, *relative.parts]) if relative.parts else package
            assert name in listed, f"{name} ({init.parent}) is missing from setup.cfg [options] packages"


# ---- the package import graph has no cycle ---------------------------------------------------------------------

#: repository folder -> installed package
TOP_PACKAGES = {"components": "kfpc.components", "pipelines": "kfpc.pipelines", "serving": "kfpc.serving"}


def _package_of_module(module: str) -> str | None:
    """``kfpc.components.<sub>`` for a module inside a component folder, else its top package."""
    parts = module.split(".")
    if parts[:2] != ["kfpc", "components"] or len(parts) < 3:
        top = ".".join(parts[:2])
        return top if top in TOP_PACKAGES.values() else None
    return ".".join(parts[:3]) if (ROOT / "components" / parts[2] / "__init__.py").exists() else "kfpc.components"


def _import_graph() -> dict[str, dict[str, str]]:
    """package -> imported package -> the first ``file:line`` importing it (lazy imports inside functions too)."""
    import ast

    graph: dict[str, dict[str, str]] = {}
    for top, package in TOP_PACKAGES.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT / top).with_suffix("")
            module_parts = [*package.split("."), *relative.parts]
            if module_parts[-1] == "__init__":
                module_parts = module_parts[:-1]
            is_package = path.name == "__init__.py"
            source = _package_of_module(".".join(module_parts))
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = module_parts[: len(module_parts) - node.level + (1 if is_package else 0)]
                        base_name = ".".join(base + ([node.module] if node.module else []))
                    else:
                        base_name = node.module or ""
                    # "from kfpc.components import contract" imports the subpackage, not the package
                    targets = [f"{base_name}.{alias.name}" for alias in node.names] or [base_name]
                for target in targets:
                    imported = _package_of_module(target)
                    if imported and imported != source:
                        graph.setdefault(source, {}).setdefault(imported, f"{path.relative_to(ROOT)}:{node.lineno}")
    return graph


def _cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, {})):
            if state.get(succ) == 1:
                return path[path.index(succ):] + [succ]
            if succ not in state and (found := visit(succ)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_package_import_graph_has_no_cycle():
    graph = _import_graph()
    # the graph is real: the edges the layering is about are seen
    assert "kfpc.components" in graph["kfpc.serving"] or "kfpc.components.contract" in graph["kfpc.serving"]
    assert "kfpc.components.contract" in graph["kfpc.components.train"]
    cycle = _cycle(graph)
    assert cycle is None, "package import cycle: " + " -> ".join(
        f"{a} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"
    assert not any(p.startswith("kfpc.serving") for p in set().union(*(
        graph.get(p, {}) for p in graph if p.startswith("kfpc.components")))), "a component imports kfpc.serving"


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": "x.py:1"}, "b": {"c": "y.py:2"}, "c": {"a": "z.py:3"}, "d": {"a": "w.py:4"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": "x.py:1"}, "b": {}}) is None


def test_test_folders_are_not_packages_and_test_module_names_are_unique():
    """pytest puts each test folder on sys.path and imports its files by base name
    (rootdir "prepend" mode; the suites import their siblings, e.g. ``toy_model``).
    A stray ``__init__.py`` turns a folder into a package named after the folder,
    and ``tests/components/statistics`` is then shadowed by the standard library's
    ``statistics``: collection fails on a clean clone. Two test files with the same
    base name clash the same way."""
    tests_root = ROOT / "tests"
    packages = [p.parent.relative_to(ROOT).as_posix() for p in tests_root.rglob("__init__.py")
                if p.parent != tests_root and "data" not in p.parts]
    assert packages == [], f"test folders must not be packages (remove their __init__.py): {packages}"
    seen: dict[str, str] = {}
    clashes = []
    for path in sorted(tests_root.rglob("*.py")):
        if path.name in ("__init__.py", "conftest.py") or "data" in path.parts:
            continue
        rel = path.relative_to(ROOT).as_posix()
        if path.name in seen:
            clashes.append((seen[path.name], rel))
        seen.setdefault(path.name, rel)
    assert clashes == [], f"test modules share a base name: {clashes}"

"""The one-way house, checked from the source: which module may import what.

Read from the AST of every module of both packages, imports inside functions included (a lazy
import is still a dependency; it only moves the cost). The rules are DESIGN.md's data flow:

- ROS (rclpy and the message packages) only in ``mtl_perception/ros/``;
- TensorRT only in the two TensorRT backend files;
- the runtime ``mtl_perception`` never imports the offline ``mtl_perception_training``;
- the parts of ``mtl_perception`` form layers, each importing only from those below it
  (``LAYERS``, the README's "Layout" from the bottom up): no cycles.

And the command line stays light: ``--help`` loads no torch (a robot's shell completion and a
newcomer's first command should not wait seconds for it).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from launch_ast import REPO

PACKAGES = ("mtl_perception", "mtl_perception_training")
ROS_MODULES = ("rclpy", "sensor_msgs", "stereo_msgs", "visualization_msgs", "diagnostic_msgs", "std_msgs",
               "builtin_interfaces", "rcl_interfaces", "geometry_msgs")
TENSORRT_FILES = {"mtl_perception/inference/trt_builder.py", "mtl_perception/inference/tensorrt_backend.py"}
#: The parts of mtl_perception from the bottom up; a part imports only from parts before it.
#: ``benchmarks`` sits above what it measures and below ``ros`` only because the node benchmark
#: needs rclpy and so lives in ``ros/node_bench.py``; ``bag`` drives a node for live replay.
LAYERS = (
    "errors", "extras", "share", "io_utils", "process", "config", "command", "memory",
    "data", "model", "postprocess", "inference", "evaluation",
    "benchmarks", "ros", "bag", "demo", "cli",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            submodules = {f"{module}.{alias.name}" for alias in node.names if _is_module(f"{module}.{alias.name}")}
            names.update(submodules)  # `from pkg import module` depends on that module
            if len(submodules) < len(node.names):  # and on the package for anything else it names
                names.add(module)
    return names


def _is_module(name: str) -> bool:
    """Is ``name`` a module or package of this repository?"""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _sources() -> dict[str, set[str]]:
    return {
        path.relative_to(REPO).as_posix(): _imports(path)
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
    }


def _top(name: str) -> str:
    return name.split(".")[0]


def _part(name: str) -> str | None:
    """The part of mtl_perception a module name belongs to (``mtl_perception.data.x`` -> ``data``)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "mtl_perception" and len(parts) > 1 else None


def test_only_the_node_imports_ros():
    offenders = {
        path: sorted(n for n in names if _top(n) in ROS_MODULES)
        for path, names in _sources().items()
        if not path.startswith("mtl_perception/ros/")
    }
    assert not {p: n for p, n in offenders.items() if n}


def test_only_the_tensorrt_backend_imports_tensorrt():
    importers = {path for path, names in _sources().items() if any(_top(n) == "tensorrt" for n in names)}
    assert importers <= TENSORRT_FILES


def test_the_runtime_never_imports_the_offline_package():
    offenders = {
        path for path, names in _sources().items()
        if path.startswith("mtl_perception/") and any(_top(n) == "mtl_perception_training" for n in names)
    }
    assert not offenders


def _layer_violations(sources: dict[str, set[str]]) -> list[str]:
    rank = {part: i for i, part in enumerate(LAYERS)}
    violations = []
    for path, names in sources.items():
        if not path.startswith("mtl_perception/") or path == "mtl_perception/__init__.py":
            continue
        here = _part(_module_name(REPO / path))
        assert here in rank, f"{path}: part {here!r} is not in LAYERS; place it"
        for name in sorted(names):
            there = _part(name)
            if there in rank and there != here and rank[there] > rank[here]:
                violations.append(f"{path} ({here}) imports {name} ({there}, a layer above)")
    return violations


def test_the_parts_of_the_runtime_form_layers():
    assert not _layer_violations(_sources())


def test_the_layer_check_sees_a_cycle():
    """The check would catch the cycles it was written for (here: ros -> bag, once in replay_client)."""
    sources = _sources()
    sources["mtl_perception/ros/replay_client.py"] = sources["mtl_perception/ros/replay_client.py"] | {
        "mtl_perception.bag.output_bag"
    }
    assert _layer_violations(sources) == [
        "mtl_perception/ros/replay_client.py (ros) imports mtl_perception.bag.output_bag (bag, a layer above)"
    ]


@pytest.mark.parametrize("argv", [["--help"], ["node", "--help"], ["release", "--help"], ["bench", "--help"]])
def test_the_command_line_help_loads_no_torch(argv):
    code = (
        "import sys\n"
        "from mtl_perception import cli\n"
        "try:\n"
        f"    cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'rclpy', 'cv2', 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-2000:]


def _module_cycles(sources: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules of both packages (depth-first search on the import graph)."""
    modules = {_module_name(REPO / path): names for path, names in sources.items()}
    graph = {m: {n for n in names if n in modules and n != m} for m, names in modules.items()}
    cycles, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_no_module_imports_itself_through_others():
    """Within a part too (the experiments' plan, runner and report once imported each other)."""
    assert not _module_cycles(_sources())
    looped = _sources()
    looped["mtl_perception_training/experiments/plan.py"] = looped["mtl_perception_training/experiments/plan.py"] | {
        "mtl_perception_training.experiments.report"
    }
    assert _module_cycles(looped)

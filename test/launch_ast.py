"""Read the real launch files with ``ast`` (launch_ros is not installable here) for the tests.

``LaunchFile`` evaluates the small vocabulary our launch files use (string constants,
module-level names, ``LaunchConfiguration``, ``FindPackageShare``, ``PathJoinSubstitution``,
``ParameterValue``, lists, dicts) into plain values, so the tests can check that every name
resolves and can start the node exactly as ``ros2 launch`` would: same executable, node
name, parameter file, parameters and remappings.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    """``LaunchConfiguration(name)``."""

    name: str


@dataclass(frozen=True)
class SharePath:
    """``PathJoinSubstitution([FindPackageShare(package), *parts])``."""

    package: str
    relative: str


@dataclass
class LaunchFile:
    """The declared arguments, Node(...) keyword sets and includes of one launch file."""

    path: Path
    arguments: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    includes: list[dict[str, Any]] = field(default_factory=list)
    configs_used: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, path: Path) -> "LaunchFile":
        tree = ast.parse(path.read_text(), filename=str(path))
        launch = cls(path)
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = _call_name(call)
            if name == "DeclareLaunchArgument":
                arg_name = launch._eval(call.args[0], constants)
                launch.arguments[arg_name] = {kw.arg: launch._eval(kw.value, constants) for kw in call.keywords}
            elif name == "Node":
                launch.nodes.append({kw.arg: launch._eval(kw.value, constants) for kw in call.keywords})
            elif name == "IncludeLaunchDescription":
                include = {kw.arg: launch._eval(kw.value, constants) for kw in call.keywords}
                include["source"] = launch._eval(call.args[0], constants)
                launch.includes.append(include)
        return launch

    def _eval(self, node: ast.AST, constants: dict[str, Any]) -> Any:
        """Plain value of an expression; AssertionError for anything outside the vocabulary."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            assert node.id in constants, f"{self.path.name}: unresolved name {node.id}"
            return constants[node.id]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, constants) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self._eval(k, constants): self._eval(v, constants) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call):
            name = _call_name(node)
            args = [self._eval(a, constants) for a in node.args]
            if name == "LaunchConfiguration":
                self.configs_used.add(args[0])
                return Config(args[0])
            if name == "FindPackageShare":
                return ("share", args[0])
            if name == "PathJoinSubstitution":
                (kind, package), *parts = args[0]
                assert kind == "share", f"{self.path.name}: PathJoinSubstitution must start at a package share"
                return SharePath(package, "/".join(parts))
            if name in ("ParameterValue", "PythonLaunchDescriptionSource", "IfCondition", "UnlessCondition"):
                return args[0]
            if name == "items" and isinstance(node.func, ast.Attribute):
                return list(self._eval(node.func.value, constants).items())
        raise AssertionError(f"{self.path.name}:{node.lineno}: cannot evaluate {ast.unparse(node)}")

    def node(self, package: str) -> dict[str, Any]:
        """The one Node(...) of ``package``."""
        found = [n for n in self.nodes if n.get("package") == package]
        assert len(found) == 1, f"{self.path.name}: expected one Node of {package}, found {len(found)}"
        return found[0]


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def console_scripts(setup_py: Path = REPO / "setup.py") -> dict[str, str]:
    """``name -> module:function`` of setup.py's console_scripts, read with ast."""
    tree = ast.parse(setup_py.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return dict(tuple(part.strip() for part in e.split("=", 1)) for e in entries)
    raise AssertionError("setup.py has no console_scripts")


def node_command(
    launch: LaunchFile, package: str, share: Path, executable_dir: Path, arguments: dict[str, str]
) -> list[str]:
    """The command line ``ros2 launch`` would run for ``package``'s Node, arguments applied.

    ``share`` stands for the package's installed share directory (the source tree works:
    launch/ and config/ sit at its top); ``arguments`` overrides launch-argument defaults.
    """

    def resolve(value: Any) -> str:
        if isinstance(value, Config):
            if value.name in arguments:
                return arguments[value.name]
            return resolve(launch.arguments[value.name]["default_value"])
        if isinstance(value, SharePath):
            assert value.package == package
            return str(share / value.relative)
        return str(value)

    node = launch.node(package)
    cmd = [str(executable_dir / node["executable"]), "--ros-args", "-r", f"__node:={node['name']}"]
    namespace = resolve(node.get("namespace", ""))
    if namespace:
        cmd += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for entry in node.get("parameters", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                text = resolve(value)
                cmd += ["-p", f"{key}:={text if text else chr(39) * 2}"]
        else:
            cmd += ["--params-file", resolve(entry)]
    for source, target in node.get("remappings", []):
        cmd += ["-r", f"{source}:={resolve(target)}"]
    return cmd

"""The launch files, parameter file and RViz config resolve against setup.py, config/ and the node.

launch_ros is not installable here, so the real launch files are read with ``ast``
(test/launch_ast.py): every argument, package, executable, parameter and file they name
must exist.
"""
from __future__ import annotations

import ast
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from launch_ast import REPO, Config, LaunchFile, SharePath, console_scripts
from mtl_perception.ros import parameters

PACKAGE = "mtl_perception"
MAIN = REPO / "launch" / "perception.launch.py"
RVIZ = REPO / "launch" / "perception_rviz.launch.py"
PARAMS = REPO / "config" / "perception.yaml"
RVIZ_CONFIG = REPO / "config" / "perception.rviz"


def share_file(path: SharePath) -> Path:
    """The source file that colcon installs at ``share/<package>/<relative>``."""
    assert path.package == PACKAGE, path
    target = REPO / path.relative
    assert target.is_file(), f"{path.relative} does not exist in the repository"
    return target


@pytest.fixture(scope="module")
def main_launch() -> LaunchFile:
    return LaunchFile.parse(MAIN)


@pytest.fixture(scope="module")
def rviz_launch() -> LaunchFile:
    return LaunchFile.parse(RVIZ)


def test_main_launch_declares_the_documented_arguments_with_descriptions(main_launch):
    expected = {"image_topic", "camera_info_topic", "model_path", "params_file", "namespace", "use_sim_time"}
    assert set(main_launch.arguments) == expected
    for name, kwargs in main_launch.arguments.items():
        assert kwargs.get("description"), f"argument {name} has no description"
        assert "default_value" in kwargs, f"argument {name} has no default"
    assert main_launch.configs_used <= set(main_launch.arguments)


def test_main_launch_node_resolves_against_setup_py_and_the_node(main_launch):
    node = main_launch.node(PACKAGE)
    assert node["name"] == "mtl_perception"
    target = console_scripts()[node["executable"]]
    module, function = target.split(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert isinstance(node["namespace"], Config) and node["namespace"].name in main_launch.arguments


def test_main_launch_parameters_are_the_params_file_and_declared_parameters(main_launch):
    params_file, overrides = main_launch.node(PACKAGE)["parameters"]
    assert params_file == Config("params_file")
    assert share_file(main_launch.arguments["params_file"]["default_value"]) == PARAMS
    assert set(overrides) <= set(parameters.SPECS) | {"use_sim_time"}
    for value in overrides.values():
        assert isinstance(value, Config) and value.name in main_launch.arguments


def test_main_launch_remaps_the_node_inputs_to_declared_arguments(main_launch):
    remappings = dict(main_launch.node(PACKAGE)["remappings"])
    assert remappings == {"image": Config("image_topic"), "camera_info": Config("camera_info_topic")}


def test_params_file_sets_every_declared_parameter_to_an_accepted_value():
    data = yaml.safe_load(PARAMS.read_text())
    (node_key, section), = data.items()
    assert node_key.endswith("/mtl_perception")
    values = section["ros__parameters"]
    assert set(values) == set(parameters.SPECS), "params file and declared parameters differ"
    for name, value in values.items():
        spec = parameters.SPECS[name]
        assert type(value) is type(spec.default), f"{name}: {value!r} has the wrong type for rclpy"
        if spec.range:
            assert spec.range[0] <= value <= spec.range[1], name
    assert parameters.check(values, values) is None


def test_rviz_launch_includes_the_main_launch_and_the_rviz_config(rviz_launch, main_launch):
    (include,) = rviz_launch.includes
    assert share_file(include["source"]) == MAIN
    for name, _ in include["launch_arguments"]:
        assert name in main_launch.arguments
    rviz = rviz_launch.node("rviz2")
    config = rviz["arguments"][rviz["arguments"].index("-d") + 1]
    assert share_file(config) == RVIZ_CONFIG
    assert rviz_launch.configs_used <= set(rviz_launch.arguments) | set(main_launch.arguments)
    for name, kwargs in rviz_launch.arguments.items():
        assert kwargs.get("description"), name


def test_rviz_config_is_rviz2_yaml_showing_every_visual_output():
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    manager = config["Visualization Manager"]
    displays = {d["Name"]: d for d in manager["Displays"]}
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays.values() if "Topic" in d}
    assert topics == {
        "/semantic/color": "rviz_default_plugins/Image",
        "/instance/color": "rviz_default_plugins/Image",
        "/depth/color": "rviz_default_plugins/Image",
        "/points": "rviz_default_plugins/PointCloud2",
        "/instance/markers": "rviz_default_plugins/MarkerArray",
    }
    assert displays["Points"]["Color Transformer"] == "RGB8"
    assert all(d["Class"].startswith("rviz_default_plugins/") for d in displays.values())
    assert manager["Global Options"]["Fixed Frame"] == LaunchFile.parse(RVIZ).arguments["fixed_frame"]["default_value"]


def _exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text for e in root.iter("exec_depend")} | {root.findtext("name")}


def _viewer_packages() -> set[str]:
    """``VIEWER_PACKAGES`` of the RViz launch file: what it starts beyond the node's run dependencies."""
    tree = ast.parse(RVIZ.read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "VIEWER_PACKAGES"]
    return set(ast.literal_eval(value))


def test_the_main_launch_file_needs_only_the_node_run_dependencies(main_launch):
    """rosdep installs what package.xml names; a headless robot's launch file needs nothing else."""
    used = {node["package"] for node in main_launch.nodes}
    assert used and used <= _exec_depends(), used - _exec_depends()


def test_the_rviz_launch_file_names_what_it_needs_beyond_the_robot(rviz_launch):
    """rviz2 (and the tf publisher) are a viewer's packages, not run dependencies of the node."""
    viewer = _viewer_packages()
    used = {node["package"] for node in rviz_launch.nodes}
    assert used <= _exec_depends() | viewer, used - _exec_depends() - viewer
    assert viewer <= used, f"VIEWER_PACKAGES names packages the file does not start: {viewer - used}"
    assert not viewer & _exec_depends(), f"{viewer & _exec_depends()} would be installed on every robot"
    docstring = ast.get_docstring(ast.parse(RVIZ.read_text()))
    for package in viewer:
        assert f"ros-$ROS_DISTRO-{package.replace('_', '-')}" in docstring, f"the docstring does not say how to install {package}"


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_the_viewer_packages_exist_in_each_distribution(distro):
    from test_rosdep_keys import ROSDISTRO, distribution_packages

    if not (ROSDISTRO / distro / "distribution.yaml").is_file():  # as the rosdep tests: no snapshot, say so
        pytest.skip(f"no rosdistro snapshot at {ROSDISTRO} or in the checkout's shared/")
    assert _viewer_packages() <= distribution_packages(distro), _viewer_packages() - distribution_packages(distro)

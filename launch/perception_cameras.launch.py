"""One perception node for several cameras: ``ros2 launch mtl_perception perception_cameras.launch.py``.

Arguments (``--show-args``): namespace (where the cameras' topics live: ``<namespace>/<camera>/image``
and ``camera_info`` in, ``<namespace>/<camera>/...`` out), model_path, params_file (the node's
parameters), cameras_file (the camera list, ``config/cameras_4.yaml``: front, left, right, rear),
use_sim_time. The camera names come from cameras_file so that a rig is described in one file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "mtl_perception"


def generate_launch_description() -> LaunchDescription:
    config = [FindPackageShare(PACKAGE), "config"]
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="cameras", description="namespace of the cameras' topics"),
            DeclareLaunchArgument(
                "model_path",
                default_value="",
                description="checkpoint, ONNX model (--dynamic for batches) or TensorRT engine; empty = the shipped model",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([*config, "perception.yaml"]),
                description="node parameters (YAML)",
            ),
            DeclareLaunchArgument(
                "cameras_file",
                default_value=PathJoinSubstitution([*config, "cameras_4.yaml"]),
                description="the camera names (YAML with a cameras parameter), loaded after params_file",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", choices=["true", "false"], description="use /clock (bag replay)"
            ),
            Node(
                package=PACKAGE,
                executable="perception_node",
                name="mtl_perception",
                namespace=LaunchConfiguration("namespace"),
                parameters=[
                    LaunchConfiguration("params_file"),
                    LaunchConfiguration("cameras_file"),
                    {
                        "model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
                        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                    },
                ],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )

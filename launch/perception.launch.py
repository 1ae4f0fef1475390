"""Start the perception node: ``ros2 launch mtl_perception perception.launch.py``.

Arguments (``ros2 launch ... --show-args``): image_topic, camera_info_topic, model_path,
params_file, namespace, use_sim_time. The node reads every parameter from params_file except
model_path, which comes from the argument of the same name (as in Isaac ROS launch files: the
model is the one thing changed per run). use_sim_time:=true for bag replay
(``ros2 bag play --clock``), so header-stamp latencies are measured in bag time.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "mtl_perception"


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "image_topic", default_value="/camera/image", description="camera image (sensor_msgs/Image)"
            ),
            DeclareLaunchArgument(
                "camera_info_topic",
                default_value="/camera/camera_info",
                description="camera intrinsics (sensor_msgs/CameraInfo); the model's training camera when absent",
            ),
            DeclareLaunchArgument(
                "model_path",
                default_value="",
                description="checkpoint, ONNX model or TensorRT engine; empty = the model shipped in the package",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "perception.yaml"]),
                description="node parameters (YAML)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
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
                    {
                        "model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
                        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                    },
                ],
                remappings=[
                    ("image", LaunchConfiguration("image_topic")),
                    ("camera_info", LaunchConfiguration("camera_info_topic")),
                ],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )

"""The perception node plus RViz2: ``ros2 launch mtl_perception perception_rviz.launch.py``.

Takes every argument of perception.launch.py (they pass through the include) and adds:
- camera_frame: frame_id of the camera images, an optical frame (z forward, y down);
- fixed_frame: RViz's fixed frame, z up (RViz's orbit view has no roll, so an optical frame
  as fixed frame shows the world on its side);
- publish_camera_tf: publish the REP 103 optical rotation fixed_frame -> camera_frame
  (roll -pi/2, yaw -pi/2); set false when the robot's TF tree already has camera_frame.
The RViz config subscribes to the topics of a node without a namespace.

It needs VIEWER_PACKAGES besides the node's own run dependencies (package.xml): a headless robot
has no RViz, so they are not in package.xml. Install them where RViz runs:
    sudo apt install ros-$ROS_DISTRO-rviz2 ros-$ROS_DISTRO-tf2-ros
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "mtl_perception"
# The ROS packages this file starts that package.xml deliberately does not depend on.
VIEWER_PACKAGES = ("rviz2", "tf2_ros")


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "camera_frame", default_value="camera_optical_frame", description="frame_id of the camera images"
            ),
            DeclareLaunchArgument("fixed_frame", default_value="camera_link", description="RViz fixed frame (z up)"),
            DeclareLaunchArgument(
                "publish_camera_tf",
                default_value="true",
                choices=["true", "false"],
                description="publish the static optical rotation fixed_frame -> camera_frame",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", choices=["true", "false"], description="use /clock (bag replay)"
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(
                    PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "perception.launch.py"])
                ),
                launch_arguments={"use_sim_time": LaunchConfiguration("use_sim_time")}.items(),
            ),
            Node(
                package="tf2_ros",
                executable="static_transform_publisher",
                name="camera_optical_tf",
                arguments=[
                    "--roll", "-1.5707963267948966",
                    "--yaw", "-1.5707963267948966",
                    "--frame-id", LaunchConfiguration("fixed_frame"),
                    "--child-frame-id", LaunchConfiguration("camera_frame"),
                ],
                condition=IfCondition(LaunchConfiguration("publish_camera_tf")),
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=[
                    "-d",
                    PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "perception.rviz"]),
                    "-f",
                    LaunchConfiguration("fixed_frame"),
                ],
                parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
                output="screen",
            ),
        ]
    )

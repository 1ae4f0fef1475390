"""Packaging for mtl_perception: the one place Python dependencies are declared.

Works both as an ament_python package (``colcon build``; ``ros2 run mtl_perception ...``) and
as a plain pip package. torch is required but never pinned here: the set-up command pins it
through ``constraints.txt`` so that a vehicle's own CUDA build of torch is never replaced.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mtl_perception"

# ROS 2 (kilted) runtime as PyPI wheels, for machines without a ROS install. On a ROS machine
# rosdep installs the same packages from package.xml instead.
ROS_WHEELS = [
    "ros-rclpy[fastrtps]",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-stereo-msgs",
    "ros-visualization-msgs",
    "ros-diagnostic-msgs",
    "ros-geometry-msgs",
]

# The same runtime for ROS 2 Jazzy (rclpy 7.1, Fast DDS 2.14; cp311 wheels): the CI's second
# ROS lane. Never install both extras in one environment: the distributions ship the same modules.
ROS_JAZZY_WHEELS = [name.replace("ros-", "ros-jazzy-", 1) for name in ROS_WHEELS]

# Sub-commands of `mtl-perception`, discovered through this entry-point group so that the
# runtime package never imports `mtl_perception_training` (data flows one way: mtl_perception_training -> mtl_perception).
COMMANDS = [
    "node = mtl_perception.ros.node_command:COMMAND",
    "synth = mtl_perception.data.synth_command:COMMAND",
    "bench = mtl_perception.benchmarks.command:COMMAND",
    "demo = mtl_perception.demo:COMMAND",
    "release = mtl_perception_training.release_command:COMMAND",
    "train = mtl_perception_training.train_command:COMMAND",
    "evaluate = mtl_perception.evaluation.evaluate_command:COMMAND",
    "bag = mtl_perception.bag.bag_command:COMMAND",
    "export = mtl_perception_training.export_command:COMMAND",
    "experiment = mtl_perception_training.experiments.experiment_command:COMMAND",
]

# Targets of `mtl-perception bench TARGET`.
BENCHMARKS = [
    "node = mtl_perception.ros.node_bench:BENCHMARK",
    "synth = mtl_perception.benchmarks.synth:BENCHMARK",
    "data = mtl_perception.benchmarks.data:BENCHMARK",
    "grouping = mtl_perception.benchmarks.grouping:BENCHMARK",
    "train = mtl_perception_training.train_bench:BENCHMARK",
    "inference = mtl_perception.benchmarks.inference:BENCHMARK",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Multi-task (semantic, instance, depth) camera perception for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "mtl_perception_training", "mtl_perception_training.*"]),
    package_data={PACKAGE: ["models/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
    ],
    install_requires=[
        "torch",
        "numpy",
        "scipy",
        "pillow",
        "pyyaml",
        "opencv-python-headless",
        "scikit-learn",
        "tqdm",
        "tensorboard",
        "matplotlib",
        "cityscapesscripts",
        "rosbags",
        "rosbags-image",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "ros-jazzy": ROS_JAZZY_WHEELS,
        "export": ["onnx", "onnxruntime", "onnxscript"],
        "dev": ["pytest", "colcon-common-extensions"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "mtl-perception = mtl_perception.cli:main",
            "perception_node = mtl_perception.ros.node:main",
        ],
        "mtl_perception.commands": COMMANDS,
        "mtl_perception.benchmarks": BENCHMARKS,
    },
)

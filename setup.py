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

# What the runtime needs (node, pipeline, evaluate, synth, bag, demo). Bounds keep a numpy-1
# torch working (JetPack's, Ubuntu 22.04's apt packages): nothing here may pull numpy 2 into an
# environment that has numpy 1.x. opencv-python-headless 4.12 and later require numpy >= 2
# (4.11.0.86 accepts >= 1.21.2 on Python 3.10, >= 1.23.5 on 3.11). matplotlib: the depth colour
# map (turbo); cityscapesscripts: the label table; rosbags and ruamel.yaml: bag make/eval and
# the demo. The runtime tests run on numpy 1.26.4 (CI's numpy 1.x lane) and 2.4 (main lane).
# torch has no bound on purpose: it is the platform's (see constraints.txt for set-up pins).
RUNTIME = [
    "torch",
    "numpy>=1.23,<3",
    "pyyaml",
    "opencv-python-headless<4.12",
    "matplotlib",
    "cityscapesscripts",
    "tqdm",
    "rosbags",
    "ruamel.yaml",
]

# ONNX export and the onnxruntime backend. ml_dtypes (needed by onnx and onnxscript) requires
# numpy >= 2 from 0.6 on; 0.5.4 is the newest that accepts numpy 1.x (and works with 2.x).
EXPORT = ["onnx", "onnxruntime", "onnxscript", "ml_dtypes>=0.5.4,<0.6"]

# The offline half only: training logs (TensorBoard) and the OPTICS instance grouping of
# `evaluate --grouping optics` (scikit-learn). Not on a robot.
TRAIN = ["tensorboard", "scikit-learn"]

# The test suite: pytest, colcon (the ament_python build test), rosdep (package.xml resolved by
# rosdep itself, offline), scipy (synthetic-data checks) and rosbags-image (an independent
# image-message decoder to check ours against).
DEV = ["pytest", "colcon-common-extensions", "rosdep", "scipy", "rosbags-image"]

# Sub-commands of `mtl-perception`, discovered through this entry-point group so that the
# runtime package never imports `mtl_perception_training` (data flows one way: mtl_perception_training -> mtl_perception).
COMMANDS = [
    "node = mtl_perception.ros.node_command:COMMAND",
    "fastdds-profile = mtl_perception.ros.fastdds_command:COMMAND",
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
    "cameras = mtl_perception.ros.cameras_bench:BENCHMARK",
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
        (f"share/{PACKAGE}/config/experiments", glob("config/experiments/*.yaml")),
    ],
    install_requires=RUNTIME,
    extras_require={
        "ros": ROS_WHEELS,
        "ros-jazzy": ROS_JAZZY_WHEELS,
        "export": EXPORT,
        "train": TRAIN,
        "dev": DEV,
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

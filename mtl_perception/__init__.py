"""mtl_perception: one network, three dense outputs (semantic, instance, depth) for ROS 2."""

__version__ = "0.1.0"

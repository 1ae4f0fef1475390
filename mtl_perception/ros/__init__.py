"""ROS 2 adapter around the inference Pipeline: the only package that imports rclpy."""

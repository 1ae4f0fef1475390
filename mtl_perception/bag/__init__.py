"""rosbag2 tooling: bags from datasets (``make``), bags through the perception (``offline_eval``, ``live_eval``).

Bags are read and written with ``rosbags`` (pure Python), so none of this needs a ROS install;
only live evaluation talks to the ROS node (through rclpy, imported when it runs).
"""

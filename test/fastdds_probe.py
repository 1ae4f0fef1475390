"""A participant configured as the node configures its own (``middleware.configure_fastdds``),
or, with ``--as-shipped``, as a camera driver nobody configured (Fast DDS's defaults).

Prints the node's report line about the profile, then ``segments <bytes...>`` (what Fast DDS
mapped); with ``--publish N H W`` it then publishes N rgb8 frames of H x W (``--reliability``,
default reliable; ``--topic``, default ``/probe/image``) to the first subscriber, 10 a second,
and waits until every one is acknowledged (best effort: acknowledged at once).
"""
import argparse
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mtl_perception.ros import middleware
from mtl_perception.ros.conversions import numpy_to_image
from mtl_perception.ros.qos import profile

parser = argparse.ArgumentParser()
parser.add_argument("--as-shipped", action="store_true")
parser.add_argument("--publish", nargs=3, type=int, metavar=("N", "H", "W"))
parser.add_argument("--reliability", default="reliable")
parser.add_argument("--topic", default="/probe/image")
args = parser.parse_args()

setup = middleware.FastDDSSetup(None, "Fast DDS as shipped") if args.as_shipped else middleware.configure_fastdds()
rclpy.init(args=[])
node = Node("fastdds_probe")
segments = middleware.shared_memory_segments()
print(middleware.report(setup, segments)[1])
print("segments", *(segments or []), flush=True)
if args.publish:
    frames, height, width = args.publish
    pub = node.create_publisher(Image, args.topic, profile(args.reliability, frames))
    end = time.monotonic() + 120
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # the reader's side of discovery completes shortly after ours
    for i in range(frames):
        pixels = np.full((height, width, 3), i % 256, np.uint8)
        header = Header(frame_id=str(i))
        header.stamp.sec, header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        pub.publish(numpy_to_image(pixels, "rgb8", header))
        time.sleep(0.1)
    print("acked", pub.wait_for_all_acked(Duration(seconds=60)), flush=True)
node.destroy_node()
rclpy.shutdown()

"""Fast DDS settings for the node's megabyte-sized outputs.

Fast DDS sends same-host data through a shared-memory segment of 512 KiB per participant by
default. One frame of this node's outputs is ~4 MB at 256x512 and ~13 MB at 512x1024, so
most samples did not fit; reliable delivery then repaired them only after the next
heartbeat, and end-to-end latency at 256x512 went from 0.9 s to 2.1 s p50 (max 6.9 s)
(``mtl-perception bench node``, this machine). A 32 MiB segment holds two 512x1024 frames.

Applied only when the user has not configured Fast DDS (no ``FASTDDS_DEFAULT_PROFILES_FILE``
or legacy ``FASTRTPS_DEFAULT_PROFILES_FILE``) and the RMW is Fast DDS (the ROS 2 default);
a robot's own middleware configuration always wins.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

from mtl_perception.inference.cache import default_cache_dir
from mtl_perception.io_utils import atomic_write_text

SEGMENT_BYTES = 32 * 1024 * 1024
FASTDDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
_LEGACY_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"

PROFILE = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by mtl_perception (mtl_perception/ros/middleware.py): a larger shared-memory
     segment for megabyte-sized images and point clouds; UDP stays for other hosts. -->
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>mtl_perception_shm</transport_id>
      <type>SHM</type>
      <segment_size>{SEGMENT_BYTES}</segment_size>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="mtl_perception" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>mtl_perception_shm</transport_id>
      </userTransports>
      <useBuiltinTransports>true</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def configure_fastdds(env: MutableMapping[str, str] = os.environ) -> Path | None:
    """Point Fast DDS at PROFILE unless the user configured it; the profile's path, or None.

    Call before ``rclpy.init``: the participant reads the variable when it is created.
    """
    if env.get("RMW_IMPLEMENTATION", FASTDDS_RMWS[0]) not in FASTDDS_RMWS:
        return None
    if env.get(PROFILE_ENV) or env.get(_LEGACY_PROFILE_ENV):
        return None
    path = default_cache_dir() / "fastdds_large_messages.xml"
    if not path.is_file() or path.read_text() != PROFILE:
        atomic_write_text(path, PROFILE)
    env[PROFILE_ENV] = str(path)
    return path

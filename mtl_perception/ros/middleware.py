"""Fast DDS settings for the node's megabyte-sized outputs.

Fast DDS sends same-host data through a shared-memory segment of 512 KiB per participant by
default. One frame of this node's outputs is ~4 MB at 256x512 and ~13 MB at 512x1024, so
most samples did not fit; reliable delivery then repaired them only after the next
heartbeat, and end-to-end latency at 256x512 went from 0.9 s to 2.1 s p50 (max 6.9 s)
(``mtl-perception bench node``, this machine). A 32 MiB segment holds two 512x1024 frames.

Fast DDS 3.x (Kilted) reads the profile from ``FASTDDS_DEFAULT_PROFILES_FILE``; 2.x (Humble
2.6, Jazzy 2.14) reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``, which Kilted's rmw still honours
with a deprecation warning. The node sets the one the installed Fast DDS reads (both when it
cannot tell), and once its participant exists it reports the segments Fast DDS really mapped
(``/proc/self/maps``), so the log says what happened, not what was intended.

Applied only when the user has not configured Fast DDS (either variable set is the user's
choice, kept and logged) and the RMW is Fast DDS (the ROS 2 default).
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, MutableMapping

from mtl_perception.inference.cache import default_cache_dir
from mtl_perception.io_utils import atomic_write_text

SEGMENT_BYTES = 32 * 1024 * 1024
FASTDDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
#: The variable Fast DDS reads its XML profile from, by major version.
PROFILE_ENVS = {3: "FASTDDS_DEFAULT_PROFILES_FILE", 2: "FASTRTPS_DEFAULT_PROFILES_FILE"}
#: Library names of Fast DDS 2.x and 3.x (3.0 renamed the library).
_LIBRARIES = {2: re.compile(r"^libfastrtps\.so\.2"), 3: re.compile(r"^libfastdds\.so\.3")}
_SEGMENT = re.compile(r"/dev/shm/fast(?:rtps|dds)_(?!port)\S+$")

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


@dataclass(frozen=True)
class FastDDSSetup:
    """What ``configure_fastdds`` did: our profile (None if not applied) and why, for the log."""

    profile: Path | None
    note: str


def fastdds_major(library_dirs: Iterable[Path]) -> int | None:
    """Major version of the Fast DDS library found in ``library_dirs`` (None: not found, or both)."""
    found = set()
    for folder in library_dirs:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found |= {major for major, pattern in _LIBRARIES.items() for name in names if pattern.match(name)}
    return found.pop() if len(found) == 1 else None


def library_dirs(env: MutableMapping[str, str] = os.environ) -> list[Path]:
    """Where rmw_fastrtps finds Fast DDS: LD_LIBRARY_PATH, each ament prefix's lib (apt ROS),
    and this Python's prefix's lib (the PyPI ROS wheels)."""
    dirs = [Path(d) for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += [Path(p) / "lib" for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return dirs + [Path(sys.prefix) / "lib"]


def configure_fastdds(
    env: MutableMapping[str, str] = os.environ, search: Iterable[Path] | None = None
) -> FastDDSSetup:
    """Point Fast DDS at PROFILE unless the user configured it (module docstring).

    Call before ``rclpy.init``: the participant reads the variable when it is created.
    ``search``: folders to find the Fast DDS library in (default: ``library_dirs(env)``).
    """
    rmw = env.get("RMW_IMPLEMENTATION") or FASTDDS_RMWS[0]
    if rmw not in FASTDDS_RMWS:
        return FastDDSSetup(None, f"middleware {rmw}: no Fast DDS profile applied")
    mine = [f"{name}={env[name]}" for name in PROFILE_ENVS.values() if env.get(name)]
    if mine:
        return FastDDSSetup(None, f"Fast DDS profile of the user kept ({', '.join(mine)})")
    path = default_cache_dir() / "fastdds_large_messages.xml"
    if not path.is_file() or path.read_text() != PROFILE:
        atomic_write_text(path, PROFILE)
    major = fastdds_major(library_dirs(env) if search is None else search)
    names = [PROFILE_ENVS[major]] if major in PROFILE_ENVS else list(PROFILE_ENVS.values())
    for name in names:
        env[name] = str(path)
    version = f"Fast DDS {major}.x" if major in PROFILE_ENVS else "Fast DDS version unknown"
    return FastDDSSetup(path, f"Fast DDS profile {path} set in {' and '.join(names)} ({version})")


def configure_camera_process() -> str:
    """For a process that plays the camera (benches, the live bag replay): its image writer gets
    the segment a camera driver should have (``fastdds_command.py``), so its latencies are those
    of a configured vehicle. Before the process's first participant; returns the line to report.
    An unwritable cache folder leaves Fast DDS as shipped and says so."""
    try:
        return configure_fastdds().note
    except OSError as exc:
        return f"Fast DDS as shipped: profile not written ({exc}); images over 512 KiB arrive slower"


def shared_memory_segments(maps: str = "/proc/self/maps") -> list[int] | None:
    """Sizes (bytes) of the Fast DDS shared-memory segments this process mapped; None off Linux."""
    try:
        lines = Path(maps).read_text().splitlines()
    except OSError:
        return None
    sizes = []
    for line in lines:
        if _SEGMENT.search(line):
            low, high = line.split()[0].split("-")
            sizes.append(int(high, 16) - int(low, 16))
    return sorted(sizes, reverse=True)


def report(setup: FastDDSSetup, segments: list[int] | None) -> tuple[bool, str]:
    """(as intended, one log line) once the participant exists: did Fast DDS apply the profile?"""
    if segments is None:
        return True, f"{setup.note}; shared-memory segments unknown (no /proc/self/maps)"
    sizes = ", ".join(_size(s) for s in segments) or "none"
    if setup.profile is None:
        return True, f"{setup.note}; Fast DDS shared-memory segments: {sizes}"
    if any(s >= SEGMENT_BYTES for s in segments):
        return True, f"{setup.note}: Fast DDS uses a {_size(SEGMENT_BYTES)} shared-memory segment for large messages"
    return False, (
        f"{setup.note}, but Fast DDS did not apply it (shared-memory segments: {sizes}): frames over "
        "half a MiB wait for reliable repairs; set the profile variable your Fast DDS reads"
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"

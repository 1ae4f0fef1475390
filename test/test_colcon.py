"""`colcon build` of the ament_python package installs launch/, config/ and the executables."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_colcon_installs_share_files(colcon_install):
    share = colcon_install / "mtl_perception" / "share" / "mtl_perception"
    assert (share / "package.xml").is_file()
    for src in list((REPO / "launch").glob("*.py")) + list((REPO / "config").glob("*.yaml")):
        assert (share / src.parent.name / src.name).is_file(), src.name
    assert sorted(p.name for p in (share / "config" / "train").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "config" / "train").glob("*.yaml")
    )
    index = colcon_install / "mtl_perception" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "mtl_perception").is_file()


def test_colcon_installs_executables_where_ros2_run_looks(colcon_install):
    lib = colcon_install / "mtl_perception" / "lib" / "mtl_perception"
    assert (lib / "mtl-perception").is_file()
    result = subprocess.run([str(lib / "mtl-perception"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

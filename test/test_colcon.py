"""`colcon build` of the ament_python package installs launch/, config/ and the executables."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name("colcon")
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "data", "runs", "out", "bench")


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    """Build a copy of the package with colcon (the copy keeps the source tree clean)."""
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "mtl_perception", ignore=IGNORED)
    result = subprocess.run(
        [str(COLCON), "build", "--base-paths", "src"], cwd=ws, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install"


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

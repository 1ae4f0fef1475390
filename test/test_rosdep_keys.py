"""Every dependency key in package.xml resolves for Humble and Jazzy, checked offline.

``rosdep install`` aborts on a key it cannot resolve, so one bad key blocks a robot's whole
workspace set-up. ``shared/rosdistro`` (beside the checkout, or inside it) is a snapshot of
rosdistro's rosdep files and distribution indexes: a key resolves if it is a rosdep key
(rosdep/*.yaml) or a package of the distribution (<distro>/distribution.yaml). Without the
snapshot (a checkout on its own) the tests are skipped, saying so: rosdistro is not fetched
from the network.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from launch_ast import REPO

# shared/ lies beside the clone in CI (or inside a checkout); MTL_ROSDISTRO points elsewhere (a git worktree, say).
_CANDIDATES = (REPO.parent / "shared" / "rosdistro", REPO / "shared" / "rosdistro")
ROSDISTRO = Path(os.environ.get("MTL_ROSDISTRO") or next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]))
ROSDEP = str(Path(sys.executable).with_name("rosdep"))  # the dev extra's
DISTROS = ("humble", "jazzy")
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "build_export_depend", "test_depend", "buildtool_depend")


def package_keys() -> list[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return [el.text.strip() for tag in DEPEND_TAGS for el in root.iter(tag)]


def rosdep_rules() -> dict:
    rules: dict = {}
    for path in sorted((ROSDISTRO / "rosdep").glob("*.yaml")):
        rules.update(yaml.safe_load(path.read_text()))
    return rules


def distribution_packages(distro: str) -> set[str]:
    index = yaml.safe_load((ROSDISTRO / distro / "distribution.yaml").read_text())
    names: set[str] = set()
    for repo_name, repo in index["repositories"].items():
        release = repo.get("release", {})
        names.update(release.get("packages", [repo_name]) if release else [])
    return names


@pytest.fixture(scope="module")
def snapshot() -> tuple[dict, dict[str, set[str]]]:
    if not ROSDISTRO.is_dir():
        pytest.skip(f"no rosdistro snapshot at {ROSDISTRO} or in the checkout's shared/")
    return rosdep_rules(), {d: distribution_packages(d) for d in DISTROS}


@pytest.mark.parametrize("distro", DISTROS)
def test_every_package_xml_key_resolves(distro, snapshot):
    rules, packages = snapshot
    unresolved = [k for k in package_keys() if k not in rules and k not in packages[distro]]
    assert not unresolved, f"rosdep install on {distro} would abort on {unresolved}"


def _pip_packages(rule) -> list[str]:
    """Every pip package a rosdep rule installs on any platform or version."""
    if isinstance(rule, dict):
        found = list(rule["packages"]) if "packages" in rule and isinstance(rule.get("packages"), list) else []
        pip = rule.get("pip")
        if isinstance(pip, dict):
            found += list(pip.get("packages", []))
        for key, value in rule.items():
            if key not in ("packages", "pip"):
                found += _pip_packages(value)
        return found
    return []


def test_no_key_pip_installs_torch(snapshot):
    rules, _ = snapshot
    for key in package_keys():
        if key in rules:
            installs = {p.split("=")[0].split("<")[0].split(">")[0].lower() for p in _pip_packages(rules[key])}
            assert not installs & {"torch", "torchvision"}, f"{key} would replace the platform's torch: {installs}"


def test_the_checks_see_the_keys_that_broke_rosdep(snapshot):
    rules, packages = snapshot
    # The two keys package.xml used to name: one is no key at all, one pip-installs torch.
    assert "python3-cityscapesscripts-pip" not in rules and "python3-cityscapesscripts-pip" not in packages["humble"]
    assert "torch" in {p.lower() for p in _pip_packages(rules["python3-pytorch-pip"])}


UBUNTU = {"humble": "jammy", "jazzy": "noble"}  # REP 2000: each distribution's Ubuntu release


@pytest.mark.parametrize("distro", DISTROS)
def test_every_system_key_installs_something_on_the_distributions_ubuntu(distro, snapshot):
    """A key that exists but has no rule for the robot's Ubuntu release aborts rosdep just the same."""
    rules, packages = snapshot
    release = UBUNTU[distro]
    for key in package_keys():
        if key in packages[distro]:
            continue  # a ROS package: apt's ros-<distro>-<name>
        ubuntu = rules[key].get("ubuntu")
        if isinstance(ubuntu, dict) and "pip" not in ubuntu:
            ubuntu = ubuntu.get(release, ubuntu.get("*"))
        assert ubuntu, f"{key} has no rule for Ubuntu {release} ({distro}): rosdep install would abort"


@pytest.fixture(scope="module")
def offline_rosdep(tmp_path_factory, snapshot) -> dict[str, str]:
    """rosdep itself, pointed at the snapshot (file:// sources and distribution index), updated once."""
    root = tmp_path_factory.mktemp("rosdep")
    (root / "sources").mkdir()
    (root / "sources" / "20-default.list").write_text(
        "".join(f"yaml {(ROSDISTRO / 'rosdep' / name).as_uri()}\n" for name in ("base.yaml", "python.yaml"))
    )
    index = {
        "type": "index",
        "version": 4,
        "distributions": {
            d: {"distribution": [(ROSDISTRO / d / "distribution.yaml").as_uri()], "distribution_status": "active",
                "distribution_type": "ros2", "python_version": 3}
            for d in DISTROS
        },
    }
    (root / "index-v4.yaml").write_text(yaml.safe_dump(index))
    env = {**os.environ, "ROSDEP_SOURCE_PATH": str(root / "sources"), "ROS_HOME": str(root / "home"),
           "ROSDISTRO_INDEX_URL": (root / "index-v4.yaml").as_uri()}
    update = subprocess.run([ROSDEP, "update"], env=env, capture_output=True, text=True, timeout=300)
    assert update.returncode == 0, update.stdout + update.stderr
    (root / "src" / "mtl_perception").mkdir(parents=True)
    shutil.copy(REPO / "package.xml", root / "src" / "mtl_perception")
    return {**env, "SRC": str(root / "src")}


@pytest.mark.parametrize("distro", DISTROS)
def test_rosdep_itself_resolves_every_key_for_the_distribution(distro, offline_rosdep):
    """What `rosdep install --from-paths src --ignore-src` does first: read package.xml, resolve each key."""
    env = offline_rosdep
    keys = subprocess.run([ROSDEP, "keys", "--from-paths", env["SRC"], "--ignore-src", "--rosdistro", distro],
                          env=env, capture_output=True, text=True, timeout=120)
    assert keys.returncode == 0, keys.stderr
    assert sorted(keys.stdout.split()) == sorted(set(package_keys()))
    resolved = subprocess.run([ROSDEP, "resolve", *keys.stdout.split(), "--rosdistro", distro, "--os",
                               f"ubuntu:{UBUNTU[distro]}"], env=env, capture_output=True, text=True, timeout=120)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    installs = [name for line in resolved.stdout.splitlines() if not line.startswith("#") for name in line.split()]
    assert f"ros-{distro}-rclpy" in installs and "python3-numpy" in installs
    assert not {"torch", "torchvision"} & set(installs), "a key would replace the platform's torch"

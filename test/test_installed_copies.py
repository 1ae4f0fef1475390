"""Installed copies (colcon build, non-editable pip install) find their shipped configs.

Run from outside the checkout with the installed package first on the path (as
``. install/setup.bash`` or a venv puts it), ``mtl-perception experiment table1 --scale ci
--list`` must print the same runs as the checkout: the scale files are installed under
``<prefix>/share/mtl_perception/config/experiments`` and looked up there.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_perception.errors import UserError
from mtl_perception.share import share_root
from mtl_perception_training.experiments.plan import load_experiment

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _installed_env(prefix: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(prefix / "lib" / PY / "site-packages")}


def _check_installed_copy_lists_the_ci_runs(prefix: Path, script: Path, cwd: Path) -> None:
    env = _installed_env(prefix)
    where = subprocess.run(
        [sys.executable, "-c", "import mtl_perception_training.experiments.table1 as t, mtl_perception.share as s; "
         "print(t.__file__); print(s.share_root())"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )
    assert where.returncode == 0, where.stderr
    module, share = where.stdout.split()
    assert Path(module).is_relative_to(prefix) and Path(share) == prefix / "share" / "mtl_perception", where.stdout
    result = subprocess.run([str(script), "experiment", "table1", "--scale", "ci", "--list"],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [spec.name for spec in load_experiment("ci").specs]
    full = subprocess.run([str(script), "experiment", "table1", "--scale", "nope", "--list"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    scales = sorted(p.stem for p in (share_root() / "config" / "experiments").glob("*.yaml"))  # every installed one
    assert full.returncode == 2 and str(scales) in full.stderr and full.stderr.count("\n") == 1


def test_colcon_install_lists_the_ci_experiment(colcon_install, tmp_path):
    prefix = colcon_install / "mtl_perception"
    _check_installed_copy_lists_the_ci_runs(prefix, prefix / "lib" / "mtl_perception" / "mtl-perception", tmp_path)


def test_pip_install_lists_the_ci_experiment(pip_prefix_install, tmp_path):
    _check_installed_copy_lists_the_ci_runs(pip_prefix_install, pip_prefix_install / "bin" / "mtl-perception", tmp_path)


def test_without_installed_data_files_the_lookup_is_one_line(monkeypatch, tmp_path):
    import mtl_perception.share as share

    monkeypatch.setattr(share, "share_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(UserError, match="not installed; looked in") as exc:
        share_root()
    assert "\n" not in str(exc.value)


def test_a_checkout_near_the_file_system_root_finds_its_own_data_files(monkeypatch):
    """/work/repo/mtl_perception has three parents: no lib/pythonX.Y/site-packages above it."""
    from pathlib import Path

    from mtl_perception import share

    monkeypatch.setattr(share, "_PACKAGE_DIR", Path("/repo/mtl_perception"))
    assert share.share_candidates()[0] == Path("/repo")

"""Shared pytest fixtures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """Exported ONNX models and engines go to a temporary cache, never the user's home folder.

    Set in ``os.environ`` so node subprocesses started by tests inherit it.
    """
    import os

    previous = os.environ.get("MTL_PERCEPTION_CACHE")
    os.environ["MTL_PERCEPTION_CACHE"] = str(tmp_path_factory.mktemp("model_cache"))
    yield
    if previous is None:
        os.environ.pop("MTL_PERCEPTION_CACHE", None)
    else:
        os.environ["MTL_PERCEPTION_CACHE"] = previous


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for a test: on the shared 2-core machine spinning OpenMP threads
    make contended runs several times slower than a single thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic Cityscapes-layout dataset: train 8, val 4, 64x128, seed 0 (about a second)."""
    from mtl_perception.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, train=8, val=4, height=64, width=128, seed=0)
    return root


SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "mtl_perception" / "models" / "default.pt"


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The shipped default model, else a tiny untrained checkpoint in the trainer's format.

    Tests that need a *trained* model check ``SHIPPED_MODEL`` themselves; everything else
    (wiring, message formats, reports) runs on either.
    """
    if SHIPPED_MODEL.is_file():
        return SHIPPED_MODEL
    import torch

    from mtl_perception.model import build_model

    torch.manual_seed(0)
    config = {
        "model": {"backbone": "resnet18", "output_stride": 16, "tasks": ["semantic", "instance", "depth"],
                  "aspp_channels": 16, "decoder_channels": 16},
        "data": {"height": 64, "width": 128},
    }
    model = build_model(config["model"])
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    torch.save({"config": config, "model": model.state_dict(), "step": 0, "metrics": {}}, path)
    return path


REPO = Path(__file__).resolve().parents[1]
_IGNORED_ANYWHERE = shutil.ignore_patterns(".venv", ".venv-*", ".git", "*.egg-info", "__pycache__")
# Work folders at the repository's top only: mtl_perception/data is a package, not a dataset.
_IGNORED_AT_TOP = {"build", "install", "log", "data", "runs", "out", "bench", "demo_out"}


def _COLCON_IGNORED(folder: str, names: list[str]) -> set[str]:
    """What a copy of the repository leaves out: environments, build output, datasets, runs."""
    ignored = set(_IGNORED_ANYWHERE(folder, names))
    return ignored | (_IGNORED_AT_TOP & set(names)) if Path(folder) == REPO else ignored


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory) -> Path:
    """``colcon build`` of a copy of the repository (the copy keeps the source tree clean)."""
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "mtl_perception", ignore=_COLCON_IGNORED)
    colcon = Path(sys.executable).with_name("colcon")
    result = subprocess.run([str(colcon), "build", "--base-paths", "src"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install"


@pytest.fixture(scope="session")
def pip_prefix_install(tmp_path_factory) -> Path:
    """A non-editable ``pip install --prefix`` of a copy of the repository (what a venv or /usr/local gets).

    ``--ignore-installed``: without it pip would first uninstall the test environment's own
    (editable) mtl_perception.
    """
    tmp = tmp_path_factory.mktemp("pip")
    shutil.copytree(REPO, tmp / "src", ignore=_COLCON_IGNORED)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--ignore-installed", "--quiet",
               "--prefix", str(tmp / "prefix"), str(tmp / "src")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp / "prefix"

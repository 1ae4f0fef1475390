"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic Cityscapes-layout dataset: train 8, val 4, 64x128, seed 0 (about a second)."""
    from mtl_perception.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, train=8, val=4, height=64, width=128, seed=0)
    return root

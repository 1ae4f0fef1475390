"""What setup.py declares: runtime bounds that keep numpy 1, extras that say so when missing."""
from __future__ import annotations

import ast
import sys

import pytest

from launch_ast import REPO
from mtl_perception.errors import UserError
from mtl_perception.postprocess.grouping import build_grouper


def _setup_lists() -> dict[str, list[str]]:
    tree = ast.parse((REPO / "setup.py").read_text())
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.List)
    }


def test_no_declared_dependency_pins_or_bounds_torch():
    """torch is the platform's (JetPack's CUDA build): any version satisfies the declarations."""
    declared = [r for names in _setup_lists().values() for r in names]
    assert "torch" in declared and not [r for r in declared if r.startswith("torch") and r != "torch"]


@pytest.mark.parametrize("module, purpose, make", [
    ("sklearn", "grouping 'optics'", lambda tmp: build_grouper("optics")),
    ("tensorboard", "training logs", lambda tmp: __import__("mtl_perception_training.logging", fromlist=["x"])
     .TrainLogger(tmp, enabled=True, total_steps=1, start_step=0, resume=False, log_every=1)),
])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, module, purpose, make):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails, find_spec says absent
    with pytest.raises(UserError) as exc:
        make(tmp_path)
    message = str(exc.value)
    assert purpose in message and 'pip install "mtl_perception[train]"' in message and "\n" not in message

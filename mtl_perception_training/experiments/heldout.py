"""The test split of an experiment: scenes no choice ever sees, scored once per run.

The validation split picks everything (the grid point, and it is what the trainer validates);
the test split is only reported. Each run's *final* weights are scored (the network the
trainer validated last, its weight average when ``train.ema_decay`` is on): a fixed rule, so
no checkpoint is chosen at all, and the multi-task rows are not judged by a ``best.pt`` that
``train.best_metric`` picked on one task's metric alone. The metrics are those of
``mtl-perception evaluate`` (``mtl_perception.evaluation.evaluator``), at the training size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from mtl_perception.errors import UserError

TEST_MODEL_RULE = "final weights"


@dataclass(frozen=True)
class TestSplit:
    """Where the held-out scenes are: a dataset root and its split."""

    root: Path
    split: str = "val"

    def describe(self) -> dict[str, str]:
        return {"data": str(self.root), "split": self.split, "model": TEST_MODEL_RULE}


_HINT = "held-out scenes are e.g. `mtl-perception synth --train 0 --val 200 --seed 1 --out data/synth_test`"


def check_separate(test: TestSplit, cfg: Mapping[str, Any]) -> None:
    """``UserError`` when the test split is, or shares an image with, the training or validation split.

    Images are compared byte for byte where file names coincide: a second synth root of the
    *same* seed is a copy of the validation split under another path.
    """
    from mtl_perception.data.cityscapes import discover

    data = cfg["data"]
    if not (test.root / "leftImg8bit" / test.split).is_dir():
        raise UserError(f"--test-data: no {test.split} split under {test.root} (expected {test.root}/leftImg8bit/{test.split})")
    same_root = Path(data["root"]).resolve() == test.root.resolve()
    if same_root and test.split in (data["val_split"], data["train_split"]):
        raise UserError(f"--test-data {test.root} [{test.split}] is the experiment's own {test.split} split; {_HINT}")
    test_images = {f.stem: f.image for f in discover(test.root, test.split)}
    for split in (s for s in (data["val_split"], data["train_split"]) if s):
        for files in discover(data["root"], split):
            twin = test_images.get(files.stem)
            if twin is not None and twin.read_bytes() == files.image.read_bytes():
                raise UserError(f"--test-data: {twin} is the same image as {files.image} of the {split} split; {_HINT}")


def evaluate_test(model: nn.Module, cfg: Mapping[str, Any], test: TestSplit) -> dict[str, float]:
    """The metrics of ``model`` (on its device) on the test split at the run's image size."""
    from torch.utils.data import DataLoader

    from mtl_perception.data.cityscapes import CityscapesDataset
    from mtl_perception.evaluation.evaluator import accumulate

    data = cfg["data"]
    dataset = CityscapesDataset(test.root, test.split, (data["height"], data["width"]))
    loader = DataLoader(dataset, batch_size=data["batch_size"], num_workers=data["workers"])
    device = next(model.parameters()).device
    return accumulate(model, loader, device, cfg["model"]["tasks"]).compute()

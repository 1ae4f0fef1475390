"""MultiTaskNet: shared encoder (dilated ResNet + ASPP), one decoder per task, full-size outputs.

The layout of Kendall et al. 2018 (Sec. 4) on DeepLabV3: everything up to and including ASPP
is shared, the tasks split afterwards. A ``skip_shared`` model also shares the low-level
fusion (``fusion``, see ``decoders.py``) and splits after it. Each output is bilinearly
upsampled (``align_corners=False``) to the exact input size, odd sizes included, so losses,
metrics and the ROS node all work at input resolution without knowing the output stride.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mtl_perception.model.aspp import ASPP
from mtl_perception.model.decoders import SkipFusion
from mtl_perception.model.resnet import ResNet
from mtl_perception.model.tasks import TASKS


class MultiTaskNet(nn.Module):
    """``forward(image (B,3,H,W))`` -> ``{task: (B,C_task,H,W)}`` for the configured tasks.

    Parameter names: ``backbone.*`` (torchvision ResNet names), ``aspp.*``, ``fusion.*`` (only
    with a shared skip fusion), ``decoders.<task>.*``.
    """

    def __init__(
        self, backbone: ResNet, aspp: ASPP, decoders: Mapping[str, nn.Module], fusion: SkipFusion | None = None
    ) -> None:
        super().__init__()
        unknown = set(decoders) - set(TASKS)
        if unknown or not decoders:
            raise ValueError(f"decoders must be a non-empty subset of {TASKS}, got {sorted(decoders)}")
        self.backbone = backbone
        self.aspp = aspp
        self.fusion = fusion
        # Canonical task order, whatever order the config listed them in, so output dicts and
        # exported graph outputs always come in the same order.
        self.tasks: tuple[str, ...] = tuple(t for t in TASKS if t in decoders)
        self.decoders = nn.ModuleDict({t: decoders[t] for t in self.tasks})

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        size = image.shape[-2:]
        deep, low_level = self.backbone.features(image)
        shared = self.aspp(deep)
        if self.fusion is not None:
            shared = self.fusion(shared, low_level)
        return {
            task: F.interpolate(decoder(shared, low_level), size=size, mode="bilinear", align_corners=False)
            for task, decoder in self.decoders.items()
        }

"""Task decoders: the paper's (Kendall et al. 2018, Sec. 4) and detail decoders with low-level skips.

``paper`` (``TaskDecoder``): 3x3 conv + BN + ReLU, then a 1x1 conv, on the ASPP features alone.
Each task gets its own weights after the shared encoder. At output stride 16 every head then
works on a 1/16 grid and is upsampled 16x: at 128 x 256 that is an 8 x 16 grid, too coarse
for poles, signs, persons and a row of parked cars.

``skip`` / ``skip_shared`` (``SkipFusion``): DeepLabV3+ / Panoptic-DeepLab style. The ASPP
output is upsampled to stride 8, concatenated with the backbone's stride-8 features (layer2,
projected to 64 channels by 1x1 conv + BN + ReLU) and fused by a 3x3 conv + BN + ReLU; the
same again at stride 4 with layer1 (projected to 32 channels). ``skip`` gives every task its
own fusion followed by a 1x1 head (``SkipDecoder``, as Panoptic-DeepLab's per-task decoders);
``skip_shared`` runs one fusion for all tasks (``MultiTaskNet.fusion``) followed by a small
per-task ``TaskDecoder``. README, "The shipped default model", has the measurement that chose
between them.

Outputs are raw: class logits, (dx, dy) in pixels, and disparity in pixels. The disparity head
is deliberately not passed through ReLU/softplus: the paper regresses it directly, an L1 loss
on a raw output keeps a gradient everywhere (a ReLU head would stop learning on pixels it
predicts negative), and ``torch``/ONNX/TensorRT outputs stay bit-comparable. Consumers clamp
at 0 (the inference pipeline does) before turning disparity into metric depth.

Every decoder is called as ``decoder(features, low_level)`` with ``low_level`` the backbone's
``{stride: features}``, so the network treats all kinds alike; each decoder's final 1x1
convolution is its ``head``.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

#: Channels the stride-8 and stride-4 backbone features are projected to before fusion
#: (Panoptic-DeepLab's semantic decoder): few, so the deep features dominate the fusion.
SKIP_PROJECTIONS: dict[int, int] = {8: 64, 4: 32}

LowLevel = Mapping[int, torch.Tensor]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _output_conv(channels: int, out_channels: int, bias_init: float) -> nn.Conv2d:
    head = nn.Conv2d(channels, out_channels, 1)
    # The output bias is the prediction before any learning. For disparity the caller sets it
    # near the training data's typical disparity so L1's constant-size gradient does not spend
    # the first thousand steps just shifting the mean.
    nn.init.constant_(head.bias, bias_init)
    return head


class TaskDecoder(nn.Sequential):
    """The paper's decoder: 3x3 conv + BN + ReLU, 1x1 conv (parameter names ``0.*``, ``1.*``, ``3.*``)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, bias_init: float = 0.0) -> None:
        super().__init__(*_conv_bn_relu(in_channels, channels, 3), _output_conv(channels, out_channels, bias_init))

    @property
    def head(self) -> nn.Conv2d:
        return self[-1]

    def forward(self, x: torch.Tensor, low_level: LowLevel | None = None) -> torch.Tensor:  # noqa: ARG002
        return super().forward(x)


class SkipFusion(nn.Module):
    """Deep features fused with the stride-8, then the stride-4 backbone features; returns stride 4."""

    def __init__(self, in_channels: int, skip_channels: Mapping[int, int], channels: int) -> None:
        super().__init__()
        self.project = nn.ModuleDict(
            {str(s): _conv_bn_relu(skip_channels[s], SKIP_PROJECTIONS[s], 1) for s in SKIP_PROJECTIONS}
        )
        fuse = {}
        for s in SKIP_PROJECTIONS:
            fuse[str(s)] = _conv_bn_relu(in_channels + SKIP_PROJECTIONS[s], channels, 3)
            in_channels = channels
        self.fuse = nn.ModuleDict(fuse)
        self.out_channels = channels

    def forward(self, x: torch.Tensor, low_level: LowLevel) -> torch.Tensor:
        for s in SKIP_PROJECTIONS:
            skip = self.project[str(s)](low_level[s])
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[str(s)](torch.cat([x, skip], dim=1))
        return x


class SkipDecoder(nn.Module):
    """One task's own ``SkipFusion`` and a 1x1 ``head`` (the ``skip`` decoder)."""

    def __init__(
        self, in_channels: int, skip_channels: Mapping[int, int], channels: int, out_channels: int, bias_init: float = 0.0
    ) -> None:
        super().__init__()
        self.fusion = SkipFusion(in_channels, skip_channels, channels)
        self.head = _output_conv(channels, out_channels, bias_init)

    def forward(self, x: torch.Tensor, low_level: LowLevel) -> torch.Tensor:
        return self.head(self.fusion(x, low_level))

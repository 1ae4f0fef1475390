"""Per-task decoders (Kendall et al. 2018, Sec. 4): 3x3 conv + BN + ReLU, then a 1x1 conv.

Each task gets its own weights after the shared encoder. Outputs are raw: class logits,
(dx, dy) in pixels, and disparity in pixels. The disparity head is deliberately not passed
through ReLU/softplus: the paper regresses it directly, an L1 loss on a raw output keeps a
gradient everywhere (a ReLU head would stop learning on pixels it predicts negative), and
``torch``/ONNX/TensorRT outputs stay bit-comparable. Consumers clamp at 0 (the inference
pipeline does) before turning disparity into metric depth.
"""
from __future__ import annotations

from torch import nn


class TaskDecoder(nn.Sequential):
    def __init__(self, in_channels: int, channels: int, out_channels: int, bias_init: float = 0.0) -> None:
        head = nn.Conv2d(channels, out_channels, 1)
        # The output bias is the prediction before any learning. For disparity the caller sets
        # it near the training data's typical disparity so L1's constant-size gradient does not
        # spend the first thousand steps just shifting the mean.
        nn.init.constant_(head.bias, bias_init)
        super().__init__(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            head,
        )

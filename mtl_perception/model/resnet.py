"""ResNet-18/34/50/101 in plain torch, with torchvision's parameter names and dilation rules.

torchvision cannot be installed next to the CPU torch used here, yet its ImageNet weights are
what every segmentation model starts from; so the module tree (``conv1``, ``bn1``,
``layer1..layer4``, ``downsample.0/1``, optional ``fc``) and the initialisation copy
torchvision exactly and a torchvision state dict loads with ``strict=True``.

Dilation follows ``torchvision.models.resnet.ResNet._make_layer``: a layer whose stride is
replaced by dilation multiplies the running dilation by that stride, and its *first* block
still uses the previous dilation. torchvision refuses dilation in ``BasicBlock``; here both
3x3 convolutions of a basic block take the block's dilation, so ResNet-18/34 also run at output
stride 8 or 16 (weights are unaffected: dilation does not change any shape).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution whose padding keeps the size (before the stride) at any dilation."""
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand by 4: ResNet-50/101 (torchvision v1.5)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]

# name -> (block, blocks per layer), as torchvision.models.resnet{18,34,50,101}.
RESNET_SPECS: dict[str, tuple[Block, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}

# Output stride -> torchvision's replace_stride_with_dilation for layer2, layer3, layer4.
DILATION_FOR_STRIDE: dict[int, tuple[bool, bool, bool]] = {
    8: (False, True, True),
    16: (False, False, True),
    32: (False, False, False),
}


class ResNet(nn.Module):
    """torchvision's ResNet; ``num_classes=None`` drops avgpool+fc and returns layer4 features."""

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(f"replace_stride_with_dilation needs 3 booleans, got {replace_stride_with_dilation!r}")
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.out_channels = 512 * block.expansion
        self.output_stride = 32 // 2 ** sum(bool(d) for d in replace_stride_with_dilation)
        self.fc = nn.Linear(self.out_channels, num_classes) if num_classes is not None else None

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: Block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def skip_channels(self) -> dict[int, int]:
        """Channels of the low-level features :meth:`features` returns, by their stride (4, 8)."""
        expansion = self.out_channels // 512
        return {4: 64 * expansion, 8: 128 * expansion}

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(layer4 features, {4: layer1, 8: layer2}): the deep features and the low-level ones
        a detail decoder fuses back in. layer1 and layer2 are never dilated, so their strides
        are 4 and 8 at either output stride."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stride4 = self.layer1(x)
        stride8 = self.layer2(stride4)
        return self.layer4(self.layer3(stride8)), {4: stride4, 8: stride8}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.features(x)
        if self.fc is None:
            return x
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_resnet(name: str, output_stride: int = 32, num_classes: int | None = None) -> ResNet:
    """ResNet ``name`` whose layer4 features are at 1/``output_stride`` of the input (8, 16, 32)."""
    block, layers = RESNET_SPECS[name]
    return ResNet(block, layers, DILATION_FOR_STRIDE[output_stride], num_classes)

"""The one interface every inference backend (torch, onnxruntime, tensorrt) implements.

A backend takes a batch already on its device and returns the network's outputs as torch
tensors on that same device: the pipeline does pre- and post-processing with torch on the
device whatever runs the network, so no backend copies data to the host.

Input: float32 (B, 3, H, W) normalised with ``metadata.mean``/``std``, or, when
``metadata.raw_input``, uint8 RGB (B, H, W, 3). Outputs (keys as ``metadata.output_names``):
``semantic`` float32 (B, C, H, W) logits or ``semantic_ids`` uint8 (B, H, W) train ids,
``instance`` float32 (B, 2, H, W) (dx, dy) pixels, ``depth`` float32 (B, 1, H, W) disparity pixels.
A backend whose outputs are views of buffers it writes again on the next ``forward`` (CUDA
graph replay) says so with ``reuses_outputs``: the pipeline then copies them on the device
before another forward can run.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from mtl_perception.errors import UserError
from mtl_perception.inference.metadata import ModelMetadata

PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the first CUDA GPU when torch sees one, else the CPU; ``UserError`` if unusable."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UserError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type != "cpu":
        raise UserError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev


class Backend(ABC):
    """Runs the network. Subclasses set ``name`` and implement :meth:`forward`."""

    name: ClassVar[str]

    def __init__(self, metadata: ModelMetadata, device: torch.device, precision: str) -> None:
        self.metadata = metadata
        self.device = device
        self.precision = precision

    @property
    def input_dtype(self) -> torch.dtype:
        """What :meth:`forward` takes: uint8 for raw-input models, else float32."""
        return torch.uint8 if self.metadata.raw_input else torch.float32

    @property
    def max_batch(self) -> int | None:
        """Images one :meth:`forward` takes at most: None for any number (a dynamic graph), 1
        for a fixed-shape export; a TensorRT engine says what its profile was built for."""
        return None if self.metadata.dynamic else 1

    @property
    def reuses_outputs(self) -> bool:
        """Whether the next :meth:`forward` overwrites the tensors this one returned."""
        return False

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on a batch on ``self.device`` (see the module docstring)."""

    def describe(self) -> str:
        """One line for logs and diagnostics, e.g. ``onnxruntime cpu fp32 resnet18/os16``."""
        m = self.metadata
        return f"{self.name} {self.device} {self.precision} {m.backbone}/os{m.output_stride}"

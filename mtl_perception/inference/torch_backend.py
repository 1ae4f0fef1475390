"""The network in eager torch, straight from a training checkpoint (CPU or CUDA).

Options: ``precision`` fp32 | fp16 | bf16 (weights and activations cast; outputs returned as
float32); ``channels_last`` (default on: NHWC activations, what oneDNN and cuDNN tensor cores
prefer, about 10% less CPU time than NCHW on one thread; folding BatchNorm into the
convolutions with torch.fx gained nothing measurable, so it is not done; figures in
docs/measurements.md);
GPU only: ``compile`` (``torch.compile``) and ``cuda_graphs`` (see ``cuda_graphs.py``). The
GPU-only options are refused on a CPU rather than silently ignored.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from mtl_perception.errors import UserError
from mtl_perception.inference.backend import PRECISION_DTYPES, Backend
from mtl_perception.inference.metadata import ModelMetadata


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        config: Mapping[str, Any],
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        if precision not in PRECISION_DTYPES:
            raise UserError(f"torch backend: precision must be one of {sorted(PRECISION_DTYPES)}, got {precision!r}")
        if (compile or cuda_graphs) and device.type != "cuda":
            raise UserError("torch backend: compile and cuda_graphs are GPU-only options; the device is " + str(device))
        super().__init__(ModelMetadata.from_config(config, dynamic=True), device, precision)
        self.dtype = PRECISION_DTYPES[precision]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device=device, dtype=self.dtype, memory_format=self.memory_format).eval()
        self._run = self.model
        self._cuda_graphs = cuda_graphs
        if compile:  # GPU only
            self._run = torch.compile(self.model)
        if cuda_graphs:  # GPU only
            from mtl_perception.inference.cuda_graphs import CudaGraphForward

            self._run = CudaGraphForward(self._run)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: torch.device, **options: Any) -> "TorchBackend":
        from mtl_perception.model.checkpoint import load_model

        model, config = load_model(path, "cpu")
        return cls(model, config, device, **options)

    @property
    def reuses_outputs(self) -> bool:
        return self._cuda_graphs  # graph replay writes into the same output tensors

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            x = x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)
            out = self._run(x)
            return {k: v if v.dtype == torch.float32 else v.float() for k, v in out.items()}

"""GPU ONLY: replay a captured CUDA graph instead of launching every kernel from Python.

At batch 1 a ResNet forward launches a few hundred small kernels; on a GPU the Python and
launch overhead of those can exceed the compute. A CUDA graph records the launches once per
input shape and replays them with one call. Nothing here runs on a CPU; the torch backend
only builds this for a CUDA device. Not executed in CI (no GPU there).

Caveat that shapes the contract: replay writes into the *same* output tensors every time, so
outputs are valid until the next call (``TorchBackend.reuses_outputs`` says so: the pipeline
copies them on the device before the next forward).
"""
from __future__ import annotations

from typing import Callable

import torch

Forward = Callable[[torch.Tensor], dict[str, torch.Tensor]]


class CudaGraphForward:
    """Wraps ``fn`` (input tensor -> dict of tensors); one captured graph per input shape and dtype."""

    def __init__(self, fn: Forward, warmup: int = 3) -> None:
        self.fn = fn
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]] = {}

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]:
        static_in = x.clone()
        # Warm-up on a side stream (cuDNN autotuning, lazy allocations) as torch.cuda.graphs asks.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        return graph, static_in, static_out

"""Run a network over a dataset split and accumulate the Table-1 metrics.

Shared by the trainer's validation and ``mtl-perception evaluate``: both must measure the
same thing. Evaluation is at the dataset's output size (the network's input size), where
the targets live; predictions are the network's raw outputs (argmax classes, (dx, dy)
vectors, disparity in pixels). The accumulator holds sums, so the trainer can shard a split
over processes and add the sums (see ``MetricAccumulator.state_tensor``).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from mtl_perception.evaluation.metrics import MetricAccumulator


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a collated batch moved to ``device`` (strings such as ``stem`` left as they are)."""
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def accumulate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    tasks: Iterable[str],
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> MetricAccumulator:
    """Metrics sums of ``model`` (put in eval mode, restored afterwards) over ``batches``."""
    metrics = MetricAccumulator(tasks)
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )
    try:
        for batch in batches:
            batch = batch_to_device(batch, device)
            image = batch["image"]
            if channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with autocast:
                outputs = model(image)
            metrics.update({k: v.float() for k, v in outputs.items()}, batch)
    finally:
        model.train(was_training)
    return metrics

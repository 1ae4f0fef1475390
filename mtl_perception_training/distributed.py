"""Data-parallel training under ``torchrun``: process group, samplers, synchronised BatchNorm.

The trainer calls ``setup()`` whatever the launch: started by ``torchrun --nproc_per_node N``
(``WORLD_SIZE`` > 1 in the environment) it joins a process group (NCCL on GPUs, Gloo on CPU)
and each process takes ``cuda:LOCAL_RANK``; started plainly it is a world of one and
nothing here talks to anybody, so the same code path serves both.

BatchNorm across processes: with a per-process batch of B/N, plain BatchNorm would normalise
with statistics of B/N images and N processes would train a different model from one process
with batch B. On GPUs torch's ``SyncBatchNorm`` fixes that. torch's ``SyncBatchNorm`` refuses
CPU tensors (its kernels are CUDA-only), so on CPU ``CpuSyncBatchNorm`` below computes the
same global mean and variance with two differentiable all-reduces. With it, N CPU processes
match one process on the same global batch to float rounding (tested in float64: in float32,
BatchNorm's backward on tiny per-process batches amplifies CPU-dependent rounding into
differences of 1e-4 and more within a few steps), which is what lets CI check the
data-parallel path without a GPU.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sized

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from mtl_perception.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: its rank, the world size and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # this process group was created by ``setup`` (and is ended by ``teardown``)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the GPU if there is one, else the CPU; ``cuda`` -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but torch sees no CUDA GPU; use auto or cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup(device_name: str) -> DistContext:
    """Join the ``torchrun`` process group when launched by it; otherwise a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, local_rank, world_size, device, owns_group)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if ``setup`` created it (no-op for a world of one)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place on the backend's device); identity alone."""
    if ctx.distributed:
        on_device = tensor.to(ctx.device)
        dist.all_reduce(on_device)
        tensor = on_device.to(tensor.device)
    return tensor


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``obj``, in rank order (e.g. each process's random state)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` whose current epoch can start part-way through.

    The order of an epoch is a function of ``(seed, epoch)`` only (``DistributedSampler``
    seeds its shuffle with ``seed + epoch``), so a resumed run regenerates the interrupted
    epoch's order and ``set_start`` skips this process's samples already consumed, without
    loading them.
    """

    def __init__(self, dataset: Sized, ctx: DistContext, seed: int) -> None:
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this process's share of the current epoch."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``, in order, without padding.

    Used for validation: unlike ``DistributedSampler`` it never repeats a sample to even out
    the shards, so summed metrics count each image exactly once.
    """

    def __init__(self, length: int, ctx: DistContext) -> None:
        self.indices = list(range(ctx.rank, length, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient (d/dx_r sum_q y_q)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all processes.

    Two passes (mean, then the mean of squared deviations) rather than E[x^2] - E[x]^2, to
    keep float32 rounding close to what ``F.batch_norm`` gives on the whole batch in one process.
    The running variance is updated with the unbiased global variance, as torch's BatchNorm does.
    Outside training or without a process group it is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        dims = [0, 2, 3]
        shape = (1, channels, 1, 1)
        count = torch.full((1,), x.numel() // channels, dtype=x.dtype, device=x.device)
        sums = _SumOverProcesses.apply(torch.cat([x.sum(dims), count]))
        n = sums[channels]
        mean = sums[:channels] / n
        centered = x - mean.view(shape)
        var = _SumOverProcesses.apply((centered * centered).sum(dims)) / n
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), factor)
        return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d by a synchronised one (torch's on GPU, ``CpuSyncBatchNorm`` on CPU).

    Parameter and buffer names are unchanged, so checkpoints load into the plain model.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, CpuSyncBatchNorm):
            sync = CpuSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            sync.load_state_dict(child.state_dict())
            if child.affine:
                sync.weight.requires_grad_(child.weight.requires_grad)
                sync.bias.requires_grad_(child.bias.requires_grad)
            sync.train(child.training)
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model

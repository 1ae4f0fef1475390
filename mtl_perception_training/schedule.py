"""The poly learning-rate schedule of DeepLab and of the paper's training recipe.

lr(t) = base_lr * (1 - t / T) ** power, stepped once per optimiser step, for every parameter
group (network and task-uncertainty groups alike), so each group keeps its own base rate.
torch's ``PolynomialLR`` implements exactly this and stores its position in ``state_dict``,
which is what an exact ``--resume`` needs. An optional linear warm-up (``LinearLR``, then the
poly decay over the remaining steps, chained by ``SequentialLR``) keeps random new heads from
wrecking a trained backbone in their first, largest steps.
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, PolynomialLR, SequentialLR

#: The warm-up starts at this fraction of each group's rate.
WARMUP_START = 0.01


def build_poly_schedule(
    optimizer: torch.optim.Optimizer, steps: int, power: float, warmup_steps: int = 0
) -> LRScheduler:
    """Poly decay from each group's initial lr to 0 over ``steps`` optimiser steps, the first
    ``warmup_steps`` of them a linear ramp up to that lr."""
    if warmup_steps <= 0:
        return PolynomialLR(optimizer, total_iters=steps, power=power)
    warmup = LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup_steps)
    decay = PolynomialLR(optimizer, total_iters=steps - warmup_steps, power=power)
    return SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])

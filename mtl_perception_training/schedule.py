"""The poly learning-rate schedule of DeepLab and of the paper's training recipe.

lr(t) = base_lr * (1 - t / T) ** power, stepped once per optimiser step, for every parameter
group (network and task-uncertainty groups alike), so each group keeps its own base rate.
torch's ``PolynomialLR`` implements exactly this and stores its position in ``state_dict``,
which is what an exact ``--resume`` needs.
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import PolynomialLR


def build_poly_schedule(optimizer: torch.optim.Optimizer, steps: int, power: float) -> PolynomialLR:
    """Poly decay from each group's initial lr to 0 over ``steps`` optimiser steps."""
    return PolynomialLR(optimizer, total_iters=steps, power=power)

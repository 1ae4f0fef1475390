"""Compact weight storage for shipping a model inside the package (and over a vehicle's uplink).

Convolution weights are stored as int8 with one float32 scale per output channel (symmetric,
max-abs), everything else floating-point as float16. That quarters the file against float32
(a ResNet-18 multi-task model: 54 MB -> 14 MB) at an accuracy cost measured in the README;
``expand_state_dict`` restores float32 tensors so every consumer sees an ordinary state dict.
Plain tensors only, so ``torch.load(weights_only=True)`` reads the result.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

_INT8 = "::int8"
_SCALE = "::scale"


def compact_state_dict(state: Mapping[str, Any], min_numel: int = 4096) -> dict[str, Any]:
    """int8 + per-output-channel scale for large weight tensors, float16 for other floats."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if not (torch.is_tensor(value) and value.is_floating_point()):
            out[key] = value
        elif value.dim() >= 2 and value.numel() >= min_numel:
            flat = value.detach().float().reshape(value.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            out[key + _INT8] = (flat / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(value.shape)
            out[key + _SCALE] = scale
        else:
            out[key] = value.detach().half()
    return out


def expand_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``compact_state_dict`` (any state dict passes through with floats as float32)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key.endswith(_SCALE):
            continue
        if key.endswith(_INT8):
            name = key[: -len(_INT8)]
            scale = state[name + _SCALE].float()
            out[name] = value.float() * scale.reshape(-1, *([1] * (value.dim() - 1)))
        elif torch.is_tensor(value) and value.is_floating_point():
            out[key] = value.float()
        else:
            out[key] = value
    return out

"""Rebuild a trained network from a checkpoint file alone.

A checkpoint (written by the trainer) is a plain dict that ``torch.load(weights_only=True)``
can read: ``{"config": {..., "model": {...}}, "model": state_dict, ...}``. The architecture
comes from ``config["model"]``, so the node, the exporter and the evaluator need nothing but
the file; ``backbone_weights`` is ignored here because the ImageNet file is neither needed
(the checkpoint holds every weight) nor present on a vehicle.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model import MultiTaskNet, build_model
from mtl_perception.model.compact import expand_state_dict

# Prefixes that DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") put in
# front of every parameter name of the model they wrap.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# What every file torch.save writes starts with: a zip archive (torch >= 1.6), or the pickle
# protocol opcode of the legacy format. Anything else is refused before the unpickler sees it,
# whose errors on random bytes ("pop from empty list") say nothing to a user.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def _strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    state = dict(state)
    stripped = True
    while stripped and state:  # wrappers nest in either order: "module._orig_mod.", "_orig_mod.module."
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one line naming ``path``.

    weights_only never runs code from the file: a pickle that asks for anything but tensors
    and plain containers is refused. torch's own message for that is many lines ending in
    advice to load with ``weights_only=False``, i.e. to run the payload; it is replaced by
    "refused: unsafe content". Empty, truncated and foreign files are "not a checkpoint or
    corrupt".
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (a write that was killed, or not a checkpoint)")
    with open(path, "rb") as stream:
        magic = stream.read(len(_ZIP_MAGIC))
    if not magic.startswith(_ZIP_MAGIC) and not magic.startswith(_PICKLE_PROTO):
        raise UserError(f"cannot read checkpoint {path}: not a checkpoint or corrupt (not a torch file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            detail = _unsafe_detail(str(exc))
            raise UserError(
                f"checkpoint {path} refused: unsafe content ({detail}); it was not loaded and nothing in it ran"
            ) from None
        raise UserError(f"cannot read checkpoint {path}: not a checkpoint or corrupt ({_first_line(exc)})") from None
    except Exception as exc:  # truncated zip, wrong magic: torch raises many types
        raise UserError(f"cannot read checkpoint {path}: not a checkpoint or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _unsafe_detail(message: str) -> str:
    """What weights_only refused (e.g. "GLOBAL posix.system"), from torch's multi-line message."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().rstrip(".")[:160]
    return "objects a checkpoint never holds"


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """The checkpoint dict of ``path`` (``weights_only``), checked to hold a model and its config;
    ``UserError`` for a missing, unreadable or foreign file."""
    path = Path(path)
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise UserError(f"{path} is not an mtl_perception checkpoint (no 'model' state dict)")
    config = ckpt.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise UserError(f"{path} is not an mtl_perception checkpoint (no 'config' with a 'model' section)")
    return ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any], path: str | os.PathLike) -> MultiTaskNet:
    """The float32 network of a checkpoint dict from ``read_checkpoint`` (``path`` names it in errors).

    Weights stored compactly for deployment (float16, or int8 with per-channel scales, see
    ``compact.py``) come back as float32: the model is built in float32 and callers choose
    their own precision.
    """
    try:
        model = build_model({**ckpt["config"]["model"], "backbone_weights": None})
    except ConfigError as exc:
        raise ConfigError(f"checkpoint {path}: {exc}") from None
    state = expand_state_dict(_strip_wrapper_prefixes(ckpt["model"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path}: weights do not match its own model config: {exc}") from None
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[MultiTaskNet, dict[str, Any]]:
    """Return ``(model.eval() on device, training config)``; ``UserError`` for a bad file."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt, path).to(device).eval(), dict(ckpt["config"])

"""What every benchmark target shares: its description, the machine facts, size lists, the model."""
from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable



@dataclass(frozen=True)
class Benchmark:
    """One benchmark target: its help line, its arguments and the measurement itself."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


def machine_facts() -> dict[str, Any]:
    """Where a number was measured: CPU, cores, Python, torch and GPU when present."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return facts


def parse_sizes(text: str, option: str = "--sizes") -> list[tuple[int, int]]:
    """``"256x512,512x1024"`` -> ``[(256, 512), (512, 1024)]``; a bad item is a ``UserError``."""
    from mtl_perception.errors import UserError

    sizes = []
    for item in text.split(","):
        h, sep, w = item.strip().partition("x")
        if not sep or not h.isdigit() or not w.isdigit() or int(h) < 32 or int(w) < 32:
            raise UserError(f"{option}: expected HxW with H, W >= 32, got {item!r}")
        sizes.append((int(h), int(w)))
    return sizes


#: The network measured when no trained model is at hand: the size class of
#: config/train/synthetic.yaml (the shipped model's), at 256x512 with the Cityscapes camera.
FALLBACK_MODEL = {
    "backbone": "resnet18", "output_stride": 16, "aspp_channels": 128, "decoder_channels": 128, "disparity_bias": 8.0,
}
FALLBACK_SIZE = (256, 512)


def bench_model(model: Path | None, workdir: Path) -> tuple[Path, str]:
    """The model a benchmark measures and how to describe it: ``model`` if given, else the
    shipped default, else a randomly initialised FALLBACK_MODEL saved under ``workdir``
    (speed does not depend on the weights)."""
    import torch

    from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE, CITYSCAPES_FX, CITYSCAPES_WIDTH
    from mtl_perception.inference.factory import default_model_path
    from mtl_perception.model import build_model

    if model is not None:
        return model, str(model)
    if default_model_path().is_file():
        return default_model_path(), f"shipped {default_model_path().name}"
    h, w = FALLBACK_SIZE
    camera = {"fx": CITYSCAPES_FX * w / CITYSCAPES_WIDTH, "baseline": CITYSCAPES_BASELINE}
    config = {"model": FALLBACK_MODEL, "data": {"height": h, "width": w, "camera": camera}}
    torch.manual_seed(0)
    path = workdir / "random.pt"
    torch.save({"config": config, "model": build_model(FALLBACK_MODEL).state_dict()}, path)
    return path, f"random init resnet18/os16 at {h}x{w} (no trained model here)"

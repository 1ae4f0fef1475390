"""The training config: its sections, defaults and validation.

A config file names what differs from the defaults below; ``resolve_train_config`` fills in
the rest and rejects unknown keys and bad values with a ``ConfigError`` naming the key, at
start-up rather than hours into a run. The resolved config (every key spelled out, the model
section included) is what the checkpoint stores, so a checkpoint describes its run fully.

``data.batch_size`` is the *global* batch: under ``torchrun --nproc_per_node N`` each process
takes ``batch_size / N`` images, so the same file trains the same model on 1 or N GPUs.

``train.best_metric`` picks ``best.pt``: ``auto`` means ``miou`` when the semantic task is
trained (the paper's headline number), else ``instance_err_px``, else ``disparity_err_px``.
Errors (``*_px``) are better lower, everything else higher.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

from mtl_perception.data.augment import AugmentConfig
from mtl_perception.errors import ConfigError
from mtl_perception.evaluation.metric_names import LOWER_IS_BETTER
from mtl_perception.model import resolve_model_config

from mtl_perception_training.weighting import build_weighting

AMP_MODES = ("auto", "off", "bf16", "fp16")
BEST_METRICS = ("auto", "miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px")

DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "root": "data/synth",
        "train_split": "train",
        "val_split": "val",  # null: no validation (and no best.pt)
        "height": 128,
        "width": 256,
        "augment": None,  # e.g. {scale: [0.75, 1.5], flip: true, color_jitter: 0.2}
        "workers": 2,
        "batch_size": 8,  # global, over all processes
        "cache_dir": None,  # decoded-sample cache (see CityscapesDataset)
    },
    "model": {},  # see mtl_perception.model (its own defaults and checks)
    "loss": {
        "semantic_hard_pixels": 1.0,  # share of labelled pixels in the cross-entropy, hardest first (1: all, the paper)
    },
    "weighting": {"method": "uncertainty", "form": "paper"},  # see training.weighting
    "optim": {
        "name": "adam",  # sgd | adam
        "lr": 1e-3,
        "momentum": 0.9,  # SGD only
        "weight_decay": 1e-4,
        "steps": 1000,
        "poly_power": 0.9,
        "warmup_steps": 0,  # linear warm-up from lr / 100 before the poly decay (new heads on a trained backbone)
    },
    "train": {
        "seed": 0,
        "log_every": 10,  # TensorBoard training scalars (CSV: every step)
        "val_every": 500,  # 0: validate only at the end
        "ckpt_every": 500,  # last.pt; also written at the end and on SIGINT/SIGTERM
        "amp": "auto",  # auto (bf16 on GPUs that have it, else fp16; off on CPU) | off | bf16 | fp16
        "channels_last": "auto",  # auto (on GPU) | true | false
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "best_metric": "auto",
        "sync_bn": True,  # synchronise BatchNorm statistics across processes under torchrun
        "deterministic": False,  # deterministic kernels (slower); exact resume on CPU holds either way
        "init_from": None,  # checkpoint (or released model) whose weights start this run; fresh optimiser
        "ema_decay": 0.0,  # > 0: validate and keep (best.pt) an exponential moving average of the weights
    },
}


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_pos_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_nonneg_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


_CHECKS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "data": {
        "root": (lambda v: isinstance(v, str) and v != "", "a folder path"),
        "train_split": (lambda v: isinstance(v, str) and v != "", "a split name"),
        "val_split": (lambda v: v is None or (isinstance(v, str) and v != ""), "a split name or null"),
        "height": (lambda v: _is_int(v, 1), "a positive integer"),
        "width": (lambda v: _is_int(v, 1), "a positive integer"),
        "augment": (lambda v: v is None or isinstance(v, Mapping), "a mapping or null"),
        "workers": (lambda v: _is_int(v, 0), "an integer >= 0"),
        "batch_size": (lambda v: _is_int(v, 1), "a positive integer"),
        "cache_dir": (lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path or null"),
    },
    "loss": {
        "semantic_hard_pixels": (lambda v: _is_pos_number(v) and v <= 1, "a number in (0, 1]"),
    },
    "optim": {
        "name": (lambda v: v in ("sgd", "adam"), "sgd or adam"),
        "lr": (_is_pos_number, "a positive number"),
        "momentum": (lambda v: _is_nonneg_number(v) and v < 1, "a number in [0, 1)"),
        "weight_decay": (_is_nonneg_number, "a number >= 0"),
        "steps": (lambda v: _is_int(v, 1), "a positive integer"),
        "poly_power": (_is_nonneg_number, "a number >= 0"),
        "warmup_steps": (lambda v: _is_int(v, 0), "an integer >= 0"),
    },
    "train": {
        "seed": (lambda v: _is_int(v, 0), "an integer >= 0"),
        "log_every": (lambda v: _is_int(v, 1), "a positive integer"),
        "val_every": (lambda v: _is_int(v, 0), "an integer >= 0 (0: only at the end)"),
        "ckpt_every": (lambda v: _is_int(v, 1), "a positive integer"),
        "amp": (lambda v: v in AMP_MODES, f"one of {list(AMP_MODES)}"),
        "channels_last": (lambda v: v == "auto" or isinstance(v, bool), "auto, true or false"),
        "device": (lambda v: isinstance(v, str) and (v in ("auto", "cpu") or v.startswith("cuda")), "auto, cpu, cuda or cuda:N"),
        "best_metric": (lambda v: v in BEST_METRICS, f"one of {list(BEST_METRICS)}"),
        "sync_bn": (lambda v: isinstance(v, bool), "true or false"),
        "deterministic": (lambda v: isinstance(v, bool), "true or false"),
        "init_from": (lambda v: v is None or (isinstance(v, str) and v != ""), "a checkpoint path or null"),
        "ema_decay": (lambda v: _is_nonneg_number(v) and v < 1, "a number in [0, 1)"),
    },
}


def resolve_train_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every key checked; ``ConfigError`` names the first bad key."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; sections are {list(DEFAULTS)}")
    out: dict[str, Any] = {}
    for section, defaults in DEFAULTS.items():
        given = cfg.get(section)
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"config section {section!r} must be a mapping, got {given!r}")
        if section in _CHECKS:
            bad = sorted(set(given) - set(defaults))
            if bad:
                raise ConfigError(f"{section}: unknown key(s) {bad}; known keys: {sorted(defaults)}")
        if section in _CHECKS:
            out[section] = {**copy.deepcopy(defaults), **copy.deepcopy(dict(given))}
        else:  # model and weighting: their builders own the defaults; a given weighting replaces ours whole
            out[section] = copy.deepcopy(dict(given or defaults))
        for key, (check, expected) in _CHECKS.get(section, {}).items():
            if not check(out[section][key]):
                raise ConfigError(f"{section}.{key} must be {expected}, got {out[section][key]!r}")
    out["model"] = resolve_model_config(out["model"])
    AugmentConfig.from_dict(out["data"]["augment"])  # raises ConfigError for bad keys or values
    build_weighting(out["weighting"], out["model"]["tasks"])  # raises ConfigError for bad keys
    if out["optim"]["warmup_steps"] >= out["optim"]["steps"]:
        raise ConfigError(f"optim.warmup_steps ({out['optim']['warmup_steps']}) must be below optim.steps ({out['optim']['steps']})")
    best = out["train"]["best_metric"]
    if best != "auto" and _metric_task(best) not in out["model"]["tasks"]:
        raise ConfigError(f"train.best_metric {best!r} needs the {_metric_task(best)} task, not in model.tasks")
    return out


def _metric_task(metric: str) -> str:
    return {"miou": "semantic", "instance_err_px": "instance"}.get(metric, "depth")


def best_metric(cfg: Mapping[str, Any]) -> tuple[str, bool]:
    """The validation metric that picks ``best.pt`` and whether higher is better."""
    name = cfg["train"]["best_metric"]
    if name == "auto":
        tasks = cfg["model"]["tasks"]
        name = "miou" if "semantic" in tasks else "instance_err_px" if "instance" in tasks else "disparity_err_px"
    return name, name not in LOWER_IS_BETTER

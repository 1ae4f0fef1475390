"""The training loop: data -> network -> task losses -> task weighting -> optimiser step.

What a user can rely on:

- **Exact resume.** ``last.pt`` holds the model, the weighting, the optimiser, the LR
  schedule, the AMP scaler, the step and every process's Python/NumPy/torch random state.
  The data order is a function of ``(seed, epoch)`` alone (``DistributedSampler`` reseeded
  each epoch) and each sample's augmentation a function of ``(seed, epoch, index)``
  (``_SeededSamples``), so a resumed run regenerates the interrupted epoch, skips the batches
  already consumed without loading them, and ends with the same weights as a run that was
  never stopped, whatever ``data.workers`` is (tested bit-exact on CPU).
- **Stop cleanly.** SIGINT/SIGTERM finish the current step, write ``last.pt`` and raise
  ``TrainingStopped`` (the command exits 130/143); a second signal aborts at once.
- **Divergence stops the run.** A NaN/Inf loss raises ``TrainingDiverged`` before that step
  touches the weights; the last checkpoint on disk is the last good one.
- **Same run on 1 or N processes.** Under ``torchrun`` the model is wrapped in
  DistributedDataParallel together with the task weighting (so the s_i gradients are averaged
  too), BatchNorm is synchronised, and each process's masked-mean losses are rescaled by its
  share of the valid pixels, so the averaged gradient is that of the global batch's masked
  mean, not a mean of per-process means.
- ``best.pt`` (model, weighting, config, metrics; no optimiser) is written whenever the
  validation metric of ``train.best_metric`` improves (see ``train_config``).
"""
from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from mtl_perception.data.cityscapes import CityscapesDataset
from mtl_perception.data.labels import IGNORE_INDEX
from mtl_perception.data.loading import loader_batches
from mtl_perception.errors import ConfigError, UserError
from mtl_perception.io_utils import remove_stale_temporaries
from mtl_perception.evaluation.evaluator import accumulate, batch_to_device
from mtl_perception.model import build_model
from mtl_perception.model.checkpoint import model_from_checkpoint, read_checkpoint

from mtl_perception_training import distributed
from mtl_perception_training.checkpoint_io import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    check_resumable,
    restore_rng_state,
    save_checkpoint,
)
from mtl_perception_training.distributed import DistContext
from mtl_perception_training.logging import TrainLogger
from mtl_perception_training.losses import task_losses
from mtl_perception_training.optim import build_optimizer
from mtl_perception_training.schedule import build_poly_schedule
from mtl_perception_training.train_config import best_metric
from mtl_perception_training.weighting import build_weighting

#: Config keys that may change between a run and its ``--resume`` without changing its result.
RESUMABLE_CHANGES = frozenset(
    {"data.root", "data.workers", "data.cache_dir", "train.log_every", "train.val_every", "train.ckpt_every", "train.device"}
)

# Pixels each task's loss averages over (the masks of mtl_perception_training/losses.py), used to turn
# per-process masked means into the global batch's masked mean under data parallelism.
_VALID_PIXELS: dict[str, Callable[[Mapping[str, torch.Tensor]], torch.Tensor]] = {
    "semantic": lambda batch: batch["semantic"] != IGNORE_INDEX,
    "instance": lambda batch: batch["instance_mask"],
    "depth": lambda batch: batch["disparity_mask"],
}


# Parameters that belong to the decoders (per-task, and a shared skip fusion), not the encoder.
_DECODER_PREFIXES = ("decoders.", "fusion.")


class TrainingStopped(Exception):
    """SIGINT/SIGTERM stopped the run after writing ``last.pt``."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}; saved {checkpoint}; continue with --resume")


class TrainingDiverged(UserError):
    """A loss became NaN/Inf; the weights of that step were not updated."""


@dataclass
class TrainResult:
    """Where a finished (or ``stop_after``-paused) run stands."""

    step: int
    out_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)  # last validation
    best: dict[str, Any] | None = None  # {"metric", "value", "step"}


class _SeededSamples(Dataset):
    """``dataset[i]`` drawn with torch's CPU RNG seeded from ``(seed, epoch, i)``.

    Makes each sample's augmentation independent of which DataLoader worker loads it and of
    where in the epoch a resumed run starts, which is what makes resume exact with workers.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        sample_seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, np.uint64)[0])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed)
            return self.dataset[index]


def _ignore_signals_in_worker(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C/SIGTERM to the main process, which saves and stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainStep(nn.Module):
    """Network, losses and weighting as one module, so DDP averages the s_i gradients too."""

    def __init__(
        self, model: nn.Module, weighting: nn.Module, ctx: DistContext, loss_settings: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.model, self.weighting, self.ctx = model, weighting, ctx
        self.loss_settings = dict(loss_settings or {})

    def forward(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = self.model(batch["image"])
        losses = task_losses(outputs, batch, self.model.tasks, self.loss_settings)
        if self.ctx.distributed:
            losses = self._global_masked_means(losses, batch)
        return self.weighting(losses), losses

    def _global_masked_means(
        self, losses: dict[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Scale by N * local/global valid pixels: DDP's gradient mean then equals the global masked mean's."""
        tasks = list(losses)
        local = torch.stack([_VALID_PIXELS[t](batch).sum() for t in tasks]).double()
        total = distributed.all_reduce_sum(local.clone(), self.ctx)
        scale = (local * self.ctx.world_size / total.clamp_min(1)).float()
        return {t: losses[t] * scale[i] for i, t in enumerate(tasks)}


class _StopSignals:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second one aborts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.signum: int | None = None
        self._notify = notify
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self._notify(f"received {signal.Signals(signum).name}: saving last.pt after this step (send again to abort)")

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and prefix == "":
            out.update(_flatten(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(cfg: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
    """``ConfigError`` when ``cfg`` changes anything but ``RESUMABLE_CHANGES`` from the checkpoint's."""
    new, old = _flatten(cfg), _flatten(saved)
    changed = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        raise ConfigError(
            f"--resume: the config differs from the checkpoint's in {detail}; "
            "resume with the same config (or drop --config to reuse the checkpoint's), or start a new --out"
        )


class Trainer:
    """One training run into ``out_dir`` from a resolved config (``train_config.resolve_train_config``).

    ``stop_after``: write ``last.pt`` and return after this global step (time-sliced jobs; the
    LR schedule still runs to ``optim.steps``).
    """

    def __init__(self, cfg: dict[str, Any], out_dir: str | Path, resume: bool = False, stop_after: int | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.stop_after = stop_after
        last = self.out_dir / "last.pt"
        if resume and not last.is_file():
            raise UserError(f"--resume: no checkpoint to resume from: {last} not found")
        if not resume and last.exists():
            raise UserError(f"{self.out_dir} already holds a run ({last}); pass --resume to continue it or choose another --out")

    # ----------------------------------------------------------------------------- setup
    def fit(self) -> TrainResult:
        """Train until ``optim.steps`` (or ``stop_after``); see the module docstring for guarantees."""
        ctx = distributed.setup(self.cfg["train"]["device"])
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        try:
            return self._fit(ctx)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
            distributed.teardown(ctx)

    def _fit(self, ctx: DistContext) -> TrainResult:
        cfg, dcfg, ocfg, tcfg = self.cfg, self.cfg["data"], self.cfg["optim"], self.cfg["train"]
        device = ctx.device
        if dcfg["batch_size"] % ctx.world_size:
            raise ConfigError(
                f"data.batch_size {dcfg['batch_size']} (global) must be divisible by the {ctx.world_size} processes"
            )
        self.ctx, self.per_rank = ctx, dcfg["batch_size"] // ctx.world_size
        if tcfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._build_data()  # first: a wrong dataset path fails before any model is built

        _seed_everything(tcfg["seed"])
        self.model = build_model(cfg["model"])
        self.weighting = build_weighting(cfg["weighting"], self.model.tasks)
        _seed_everything(tcfg["seed"] + ctx.rank)
        if ctx.distributed and tcfg["sync_bn"]:
            distributed.convert_sync_batchnorm(self.model, device)
        self.channels_last = tcfg["channels_last"] if tcfg["channels_last"] != "auto" else device.type == "cuda"
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(device, memory_format=memory_format)
        self.weighting.to(device)
        # Strategies that look inside the network (GradNorm: gradient norms at the last shared
        # layer) get it once it is on its device; for the others binding does nothing.
        self.weighting.bind_model(self.model)
        step_module = TrainStep(self.model, self.weighting, ctx, cfg["loss"])
        self.train_step_module: nn.Module = step_module
        if ctx.distributed:
            self.train_step_module = DistributedDataParallel(
                step_module, device_ids=[device] if device.type == "cuda" else None
            )
        self.optimizer = build_optimizer(ocfg, self.model, self.weighting)
        self.scheduler = build_poly_schedule(self.optimizer, ocfg["steps"], ocfg["poly_power"], ocfg["warmup_steps"])
        # Weight averaging: validation and best.pt see the average, training steps the raw weights.
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(tcfg["ema_decay"]), use_buffers=True)
            if tcfg["ema_decay"] > 0 else None
        )
        self.amp_dtype = _amp_dtype(tcfg["amp"], device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.best_name, self.higher_is_better = best_metric(cfg)

        self.step, self.saved_step = 0, None
        self.best: dict[str, Any] | None = None
        self.metrics: dict[str, float] = {}
        start_note = None
        if self.resume:
            start_note = self._load_last()
        elif tcfg["init_from"]:
            start_note = self._init_from(tcfg["init_from"])
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.logger = TrainLogger(
            self.out_dir, ctx.is_main, ocfg["steps"], self.step, self.resume, tcfg["log_every"]
        )
        if start_note:
            self.logger.message(start_note)
        try:
            with _StopSignals(self.logger.message if ctx.is_main else lambda _m: None) as stop:
                self._loop(stop)
        finally:
            self.logger.close()
        return TrainResult(step=self.step, out_dir=self.out_dir, metrics=self.metrics, best=self.best)

    def _build_data(self) -> None:
        dcfg, tcfg, ctx = self.cfg["data"], self.cfg["train"], self.ctx
        size = (dcfg["height"], dcfg["width"])
        train_set = CityscapesDataset(dcfg["root"], dcfg["train_split"], size, dcfg["augment"], dcfg["cache_dir"])
        self.train_samples = _SeededSamples(train_set, tcfg["seed"])
        self.sampler = distributed.ResumableDistributedSampler(self.train_samples, ctx, tcfg["seed"])
        self.steps_per_epoch = self.sampler.num_samples // self.per_rank
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"data.batch_size {dcfg['batch_size']} is larger than the {len(train_set)} images of "
                f"{dcfg['root']}/{dcfg['train_split']}"
            )
        self.loader_generator = torch.Generator()
        pin = ctx.device.type == "cuda"
        self.loader = DataLoader(
            self.train_samples,
            batch_size=self.per_rank,
            sampler=self.sampler,
            num_workers=dcfg["workers"],
            drop_last=True,
            pin_memory=pin,
            generator=self.loader_generator,
            worker_init_fn=_ignore_signals_in_worker,
        )
        self.val_loader = None
        if dcfg["val_split"]:
            val_set = CityscapesDataset(dcfg["root"], dcfg["val_split"], size, None, dcfg["cache_dir"])
            self.val_loader = DataLoader(
                val_set,
                batch_size=self.per_rank,
                sampler=distributed.ShardSampler(len(val_set), ctx),
                num_workers=dcfg["workers"],
                pin_memory=pin,
                # A generator of its own: creating the iterator must not draw from the global RNG.
                generator=torch.Generator().manual_seed(0),
                worker_init_fn=_ignore_signals_in_worker,
            )

    def _load_last(self) -> str | None:
        path = self.out_dir / "last.pt"
        ckpt = read_checkpoint(path)
        check_resumable(ckpt, path)
        check_resume_config(self.cfg, ckpt["config"])
        if self.ctx.is_main:  # a write killed mid-way left its temporary file; nothing writes now
            for name in ("last.pt", "best.pt"):
                remove_stale_temporaries(self.out_dir, name)
        self.model.load_state_dict(ckpt["model"])
        self.weighting.load_state_dict(ckpt["weighting"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.step = self.saved_step = int(ckpt["step"])
        self.best, self.metrics = ckpt.get("best"), dict(ckpt.get("metrics") or {})
        rng = ckpt["rng"]
        if len(rng) == self.ctx.world_size:
            restore_rng_state(rng[self.ctx.rank])
            return f"resumed from {path} at step {self.step}"
        return (
            f"resumed from {path} at step {self.step} with {self.ctx.world_size} processes instead of {len(rng)}: "
            "data order and augmentation are unchanged, dropout draws differ"
        )

    def _init_from(self, path: str) -> str:
        """Start from another run's network (``train.init_from``): fine-tune a shipped model on
        your data, or train one on for longer with a fresh schedule. Optimiser, LR schedule and
        step start anew; learned task weights carry over when the file has them for the same
        strategy. A head this run trains but the file lacks starts from scratch, and so does
        every decoder layer when the file's ``model.decoder`` kind differs; every other
        parameter must match in name and shape (same architecture), else ``UserError``.
        """
        ckpt = read_checkpoint(path)
        theirs, mine = model_from_checkpoint(ckpt, path).state_dict(), self.model.state_dict()
        if ckpt["config"]["model"].get("decoder", "paper") != self.cfg["model"]["decoder"]:
            # Another decoder kind (e.g. skip decoders from a paper model): only the encoder
            # (backbone + ASPP) carries over, every decoder layer starts fresh.
            theirs = {k: v for k, v in theirs.items() if not k.startswith(_DECODER_PREFIXES)}
        common = mine.keys() & theirs.keys()
        mismatched = sorted(k for k in common if theirs[k].shape != mine[k].shape)
        missing = sorted(k for k in mine.keys() - theirs.keys() if not k.startswith(_DECODER_PREFIXES))
        if mismatched or missing:
            raise UserError(
                f"train.init_from: {path} is a different architecture from model: "
                f"{'shapes differ for' if mismatched else 'it lacks'} {', '.join((mismatched or missing)[:3])}"
            )
        self.model.load_state_dict({**mine, **{k: theirs[k] for k in common}})
        if self.ema is not None:  # the average starts from the loaded weights, not the random ones
            self.ema.module.load_state_dict(self.model.state_dict())
        fresh = sorted({k.split(".")[1] if k.startswith("decoders.") else k.split(".")[0] for k in mine.keys() - theirs.keys()})
        weighting = ckpt.get("weighting")
        same_strategy = ckpt["config"].get("weighting", {}).get("method") == self.cfg["weighting"]["method"]
        carried = False
        if isinstance(weighting, Mapping) and same_strategy:
            own = self.weighting.state_dict()
            shared = {k: v for k, v in weighting.items() if k in own and own[k].shape == v.shape}
            self.weighting.load_state_dict({**own, **shared})
            carried = bool(shared)
        return (
            f"initialised from {path}"
            + (f"; new head(s) {', '.join(fresh)} start from scratch" if fresh else "")
            + ("; learned task weights carried over" if carried else "")
        )

    # ------------------------------------------------------------------------------ loop
    def _loop(self, stop: _StopSignals) -> None:
        ocfg, tcfg = self.cfg["optim"], self.cfg["train"]
        total = ocfg["steps"]
        if self.step >= min(total, self.stop_after or total):
            self.logger.message(f"already trained for {self.step} of {total} steps; nothing to do")
            return
        last_time = time.perf_counter()
        while self.step < total:
            epoch, skip = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(skip * self.per_rank)
            self.train_samples.epoch = epoch
            self.loader_generator.manual_seed(tcfg["seed"] + epoch)
            with loader_batches(self.loader) as batches:
                for batch in batches:
                    values, stop_requested = self._train_step(batch, stop)
                    self.step += 1
                    now = time.perf_counter()
                    values["images_per_s"] = self.cfg["data"]["batch_size"] / max(now - last_time, 1e-9)
                    values["epoch"] = epoch
                    self.logger.log_step(self.step, values)
                    finished = self.step >= total
                    if finished or (tcfg["val_every"] and self.step % tcfg["val_every"] == 0):
                        self._validate()
                    paused = stop_requested or self.step == self.stop_after
                    if finished or paused or self.step % tcfg["ckpt_every"] == 0:
                        self._save_last()
                    if stop_requested:
                        signum = stop.signum if stop.signum is not None else signal.SIGTERM
                        raise TrainingStopped(signum, self.step, self.out_dir / "last.pt")
                    if finished or paused:
                        return
                    last_time = time.perf_counter()

    def _train_step(self, batch: Mapping[str, Any], stop: _StopSignals) -> tuple[dict[str, float], bool]:
        """One optimiser step; returns the logged values and whether any process was asked to stop."""
        self.model.train()
        batch = batch_to_device(batch, self.ctx.device)
        if self.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            total, losses = self.train_step_module(batch)
        tasks = list(losses)
        # One collective per step: mean losses over processes (for logging and the NaN check)
        # and the stop flag, so every process stops or diverges at the same step.
        reduced = torch.stack([total.detach().float(), *(losses[t].detach().float() for t in tasks)])
        flag = torch.tensor([float(stop.signum is not None)], device=reduced.device)
        reduced = distributed.all_reduce_sum(torch.cat([reduced, flag]), self.ctx).cpu()
        means = (reduced[:-1] / self.ctx.world_size).tolist()
        values = {"loss": means[0], **{f"loss_{t}": v for t, v in zip(tasks, means[1:])}}
        if not all(np.isfinite(means)):
            self._diverged(values)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        values.update(self.weighting.log_values())
        values["lr"] = lr
        return values, bool(reduced[-1] > 0)

    def _diverged(self, values: Mapping[str, float]) -> None:
        losses = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if self.saved_step is None:
            where = "no checkpoint was written yet"
        else:
            where = f"last good checkpoint: {self.out_dir / 'last.pt'} (step {self.saved_step})"
        raise TrainingDiverged(
            f"loss is not finite at step {self.step + 1} ({losses}); weights of that step not updated; "
            f"{where}; lower optim.lr or check the data"
        )

    # --------------------------------------------------------------- validation, checkpoints
    def _validate(self) -> None:
        if self.val_loader is None:
            return
        acc = accumulate(
            self.validated_model(), self.val_loader, self.ctx.device, self.model.tasks, self.amp_dtype, self.channels_last
        )
        if self.ctx.distributed:
            acc.load_state_tensor(distributed.all_reduce_sum(acc.state_tensor(), self.ctx))
        self.metrics = acc.compute()
        self.logger.log_validation(self.step, self.metrics)
        value = self.metrics.get(self.best_name, float("nan"))
        if np.isnan(value):
            return
        better = self.best is None or (value > self.best["value"] if self.higher_is_better else value < self.best["value"])
        if better:
            self.best = {"metric": self.best_name, "value": value, "step": self.step}
            if self.ctx.is_main:
                save_checkpoint(
                    self.out_dir / "best.pt",
                    {
                        "format": CHECKPOINT_FORMAT,
                        "config": self.cfg,
                        "model": self.validated_model().state_dict(),
                        "weighting": self.weighting.state_dict(),
                        "step": self.step,
                        "metrics": self.metrics,
                        "best": self.best,
                    },
                )

    def validated_model(self) -> nn.Module:
        """What validation scores and best.pt keeps: the weight average when there is one.

        After :meth:`fit`, the final weights as validated: what a held-out test evaluation runs.
        """
        return self.ema.module if self.ema is not None else self.model

    def _save_last(self) -> None:
        """Write ``last.pt`` (collective: gathers every process's random state)."""
        rng = distributed.gather_objects(capture_rng_state(), self.ctx)
        if self.ctx.is_main:
            save_checkpoint(
                self.out_dir / "last.pt",
                {
                    "format": CHECKPOINT_FORMAT,
                    "config": self.cfg,
                    "model": self.model.state_dict(),
                    "weighting": self.weighting.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                    "step": self.step,
                    "rng": rng,
                    "metrics": self.metrics,
                    "best": self.best,
                },
            )
        self.saved_step = self.step

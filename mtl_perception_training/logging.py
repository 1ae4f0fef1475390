"""What a training run reports: a progress bar, CSV files and TensorBoard.

- ``train.csv``: one row per optimiser step (step, epoch, lr, total and per-task losses,
  s_i and effective weights w_i = exp(-s_i) times the likelihood factor, images/s), written
  and flushed every step so a crash loses nothing and ``pandas.read_csv`` works mid-run.
- ``val.csv``: one row per validation (step and every metric).
- ``tb/``: the same scalars for TensorBoard, training ones every ``log_every`` steps.
- A tqdm bar with the losses, s_i and images/s.

On ``--resume`` the CSV rows and TensorBoard events after the checkpoint's step are dropped
(they belong to steps the resumed run is about to redo), so every step appears exactly once.
Only rank 0 logs; the other ranks get a disabled logger.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from mtl_perception.extras import require

# Short names for the progress bar, which has room for a handful of numbers.
_BAR_NAMES = {"loss": "loss", "loss_semantic": "sem", "loss_instance": "ins", "loss_depth": "dep"}


class CsvLog:
    """Append rows with a fixed header; on resume keep only rows up to a given step."""

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if keep_until_step is not None and path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or []) or None
                rows = [r for r in reader if int(r["step"]) <= keep_until_step]
            with path.open("w", newline="") as f:
                if self.fields:
                    writer = csv.DictWriter(f, fieldnames=self.fields)
                    writer.writeheader()
                    writer.writerows(rows)
        elif path.exists():
            path.unlink()

    def write(self, row: Mapping[str, Any]) -> None:
        new_file = self.fields is None
        if self.fields is None:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class TrainLogger:
    """Progress bar, CSV and TensorBoard for one run (disabled on ranks other than 0)."""

    def __init__(self, out_dir: Path, enabled: bool, total_steps: int, start_step: int, resume: bool, log_every: int):
        self.enabled = enabled
        self.log_every = log_every
        if not enabled:
            return
        require("tensorboard", "tensorboard", "train", "training logs (TensorBoard)")
        from torch.utils.tensorboard import SummaryWriter

        keep = start_step if resume else None
        self.train_csv = CsvLog(out_dir / "train.csv", keep)
        self.val_csv = CsvLog(out_dir / "val.csv", keep)
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=start_step + 1 if resume else None)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=0.5)

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        """Record one optimiser step; ``values`` holds loss, loss_<task>, s_/w_<task>, lr, images_per_s."""
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **values})
        if step % self.log_every == 0:
            for key, value in values.items():
                self.tb.add_scalar(_tb_tag(key), value, step)
        postfix = {_BAR_NAMES[k]: f"{v:.3g}" for k, v in values.items() if k in _BAR_NAMES}
        postfix.update({k: f"{v:+.2f}" for k, v in values.items() if k.startswith("s_")})
        postfix["img/s"] = f"{values['images_per_s']:.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def log_validation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record validation metrics and print the headline ones above the bar."""
        if not self.enabled:
            return
        self.val_csv.write({"step": step, **metrics})
        for key, value in metrics.items():
            if not math.isnan(value):
                self.tb.add_scalar(f"val/{key}", value, step)
        self.tb.flush()
        headline = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if not k.startswith("iou_"))
        self.bar.write(f"step {step}: validation {headline}")

    def message(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.tb.close()


def _tb_tag(key: str) -> str:
    """Group scalars in TensorBoard: loss/*, weighting/s_*, weighting/w_*, and the rest on top."""
    if key == "loss":
        return "loss/total"
    if key.startswith("loss_"):
        return f"loss/{key[5:]}"
    if key.startswith(("s_", "w_")):
        return f"weighting/{key}"
    return f"train/{key}"

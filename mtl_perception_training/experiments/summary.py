"""The finished runs of a Table-1 experiment, per configuration, and the choices made from them.

``Summary`` holds each configuration's validation and test metrics per seed; the grid pick and
the per-metric best grid point read the validation metrics only (the split discipline). The
report, the comparisons, the curves and the figures all read these; this module reads only
the plan and the run folders.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mtl_perception.model.tasks import TASKS

from mtl_perception_training.experiments.plan import FIXED_LEARNED, NORMALIZED, RESULT_FILE, Experiment, RunSpec, run_dir, set_name


METRICS = ("miou", "instance_err_px", "disparity_err_px")
METRIC_TASK = {"miou": "semantic", "instance_err_px": "instance", "disparity_err_px": "depth"}
HIGHER_IS_BETTER = frozenset({"miou"})
METHOD_LABELS = {
    "single": "Single task",
    "equal": "Unweighted sum of losses",
    "grid": "Approx. optimal weights (grid)",
    "uncertainty": "Uncertainty weighting (Kendall et al.)",
    "dwa": "DWA (Liu et al.)",
    "gradnorm": "GradNorm (Chen et al.)",
    FIXED_LEARNED: "Control: uncertainty's final weights, fixed",
    NORMALIZED: "Control: loss normalisation, L_i / (2 mean L_i)",
}
WEIGHT_NOTES = {FIXED_LEARNED: " (fixed, from uncertainty's end)", NORMALIZED: " (at end)"}
VAL, TEST = "val", "test"
SPLIT_NAMES = {VAL: "validation", TEST: "test"}
FIXED_METHODS = ("single", "equal", "grid")


@dataclass
class Summary:
    """The finished seeds of one configuration."""

    spec: RunSpec
    # split (val | test) -> metric -> seed -> value, for the finished seeds
    values: dict[str, dict[str, dict[int, float]]] = field(default_factory=lambda: {VAL: {}, TEST: {}})
    final: dict[str, list[float]] = field(default_factory=dict)  # s_/w_<task> at the last step, per seed
    seeds: list[int] = field(default_factory=list)
    diverged: list[int] = field(default_factory=list)

    def per_seed(self, metric: str, split: str = VAL) -> dict[int, float]:
        return self.values[split].get(metric, {})

    def mean(self, metric: str, split: str = VAL) -> float:
        values = list(self.per_seed(metric, split).values())
        return statistics.fmean(values) if values else math.nan

    def std(self, metric: str, split: str = VAL) -> float:
        values = list(self.per_seed(metric, split).values())
        return statistics.stdev(values) if len(values) > 1 else math.nan

    def weights(self) -> dict[str, float]:
        """Weights per task: the fixed ones, or the mean over seeds of the learned ones at the end."""
        if self.spec.method in FIXED_METHODS:
            return {t: float(self.spec.weighting.get("weights", {}).get(t, 1.0)) for t in self.spec.tasks}
        return {t: statistics.fmean(self.final[f"w_{t}"]) for t in self.spec.tasks if self.final.get(f"w_{t}")}


def collect(experiment: Experiment, out_dir: Path, seeds: int) -> dict[str, Summary]:
    """A summary per configuration from the result files of seeds 0..N-1 that exist."""
    summaries = {}
    for spec in experiment.specs:
        summary = Summary(spec)
        for seed in range(seeds):
            path = run_dir(out_dir, spec, seed) / RESULT_FILE
            if not path.is_file():
                continue
            result = json.loads(path.read_text())
            if result["status"] != "ok":
                summary.diverged.append(seed)
                continue
            summary.seeds.append(seed)
            by_split = {VAL: result["metrics"], TEST: result.get("test", {}).get("metrics", {})}
            for split, metrics in by_split.items():
                for metric in METRICS:
                    if METRIC_TASK[metric] in spec.tasks and metric in metrics:
                        summary.values[split].setdefault(metric, {})[seed] = float(metrics[metric])
            for key, value in result.get("final", {}).items():
                summary.final.setdefault(key, []).append(float(value))
        summaries[spec.name] = summary
    return summaries


def task_metrics(tasks: Iterable[str]) -> list[str]:
    return [m for m in METRICS if METRIC_TASK[m] in tasks]


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` on ``metric``."""
    return a > b if metric in HIGHER_IS_BETTER else a < b


def reported_split(summaries: dict[str, Summary]) -> str:
    """``test`` when any run was scored on a test split, else ``val``."""
    return TEST if any(s.values[TEST] for s in summaries.values()) else VAL


def best_grid(summaries: dict[str, Summary], tasks: tuple[str, ...]) -> Summary | None:
    """The finished grid point of ``tasks`` with the best mean rank over its validation metrics."""
    points = [s for s in summaries.values() if s.spec.method == "grid" and s.spec.tasks == tasks and s.seeds]
    if not points:
        return None
    ranks = {s.spec.name: 0.0 for s in points}
    for metric in task_metrics(tasks):
        order = sorted(points, key=lambda s: -s.mean(metric, VAL) if metric in HIGHER_IS_BETTER else s.mean(metric, VAL))
        for rank, s in enumerate(order):
            ranks[s.spec.name] += rank
    return min(points, key=lambda s: ranks[s.spec.name])


def best_grid_value(summaries: dict[str, Summary], tasks: tuple[str, ...], metric: str) -> Summary | None:
    """The finished grid point of ``tasks`` that is best on ``metric`` alone (validation)."""
    points = [s for s in summaries.values() if s.spec.method == "grid" and s.spec.tasks == tasks and s.seeds]
    if not points:
        return None
    key = (lambda s: -s.mean(metric, VAL)) if metric in HIGHER_IS_BETTER else (lambda s: s.mean(metric, VAL))
    return min(points, key=key)


def table_rows(experiment: Experiment, summaries: dict[str, Summary]) -> list[Summary]:
    """Rows in the paper's order: single tasks, then per task set the sum, the grid pick, learned methods.

    A task set with no finished grid point shows its first grid configuration (as not run).
    """
    rows = [summaries[f"single-{t}"] for t in TASKS]
    learned = [m for m in dict.fromkeys(s.method for s in experiment.specs) if m not in FIXED_METHODS]
    for tasks in experiment.task_sets:
        rows.append(summaries[f"equal-{set_name(tasks)}"])
        grid = best_grid(summaries, tasks)
        if grid is None:
            grid = next((summaries[s.name] for s in experiment.specs if s.method == "grid" and s.tasks == tasks), None)
        if grid is not None:
            rows.append(grid)
        rows += [summaries[n] for m in learned if (n := f"{m}-{set_name(tasks)}") in summaries]
    return rows


def read_log(train_csv: Path) -> dict[str, list[float]]:
    """Columns of a run's train.csv as float lists (empty when the file is missing)."""
    if not train_csv.is_file():
        return {}
    with train_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else {})}



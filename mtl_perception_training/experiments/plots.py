"""Figures of the Table-1 report (matplotlib's Agg canvas, no display, no pyplot global state).

- ``fig2_<a>_<b>.png``, one per task pair (the paper's Figure 2): each task's metric against
  the fixed weight of the first task (the second gets 1 - w), the single-task models at the
  ends (w = 1: only the first task; w = 0: only the second), the unweighted sum at 0.5, and
  each learned weighting marked at the weight share it ended with.
- ``uncertainty_init.png`` (the paper's appendix): s_i and the effective weights over
  training from each start value of s, read from each run's train.csv (seed 0).
- ``weights_over_training.png``: the effective weights of every learned/dynamic weighting on
  the init study's task set, or else the largest task set with one (seed 0).
- ``curves_<tasks>.png``: learning curves, the validation metrics at every ``train.val_every``
  step (each run's val.csv, mean over seeds) of each row of that task set, so a reader sees
  whether the ranking is still moving when training stops.

Figure 2 shows the split the report reports (test when the runs have one).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mtl_perception.io_utils import atomic_write

from mtl_perception_training.experiments.summary import (
    FIXED_METHODS,
    HIGHER_IS_BETTER,
    METHOD_LABELS,
    METRIC_TASK,
    SPLIT_NAMES,
    VAL,
    Summary,
    read_log,
    task_metrics,
)
from mtl_perception_training.experiments.curves import curve_rows, set_curves
from mtl_perception_training.experiments.plan import Experiment, run_dir, set_name

_LEARNED_MARKERS = ("*", "P", "X", "D")


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def _std(s: Summary, metric: str, split: str) -> float:
    """The seed std for error bars; 0 with a single seed."""
    std = s.std(metric, split)
    return 0.0 if math.isnan(std) else std


def _errorbar(ax: Any, x: float, s: Summary, metric: str, split: str, **style: Any) -> None:
    ax.errorbar([x], [s.mean(metric, split)], yerr=[_std(s, metric, split)], linestyle="none", capsize=3, **style)


def figure2(pair: tuple[str, str], summaries: dict[str, Summary], path: Path, split: str) -> bool:
    """Metric against the first task's weight for one pair; False (nothing drawn) without grid results."""
    a, b = pair
    grid = [s for s in summaries.values() if s.spec.method == "grid" and s.spec.tasks == pair and s.seeds]
    if not grid:
        return False

    def share(weights: dict[str, float]) -> float:
        """The x coordinate: the first task's share of the two weights."""
        return weights[a] / (weights[a] + weights[b])

    grid.sort(key=lambda s: share(s.weights()))
    learned = [s for s in summaries.values() if s.spec.method not in FIXED_METHODS and s.spec.in_table
               and s.spec.tasks == pair and s.seeds]
    fig = Figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), task_metrics(pair)):
        xs = [share(s.weights()) for s in grid]
        ax.errorbar(xs, [s.mean(metric, split) for s in grid], yerr=[_std(s, metric, split) for s in grid], marker="o", capsize=3,
                    label="fixed weights (grid)")
        single = summaries[f"single-{METRIC_TASK[metric]}"]
        if single.seeds:
            _errorbar(ax, 1.0 if METRIC_TASK[metric] == a else 0.0, single, metric, split, marker="s", color="black",
                      label=f"single task ({METRIC_TASK[metric]})")
        equal = summaries[f"equal-{set_name(pair)}"]
        if equal.seeds:
            _errorbar(ax, 0.5, equal, metric, split, marker="^", color="tab:gray", label="unweighted sum")
        for marker, s in zip(_LEARNED_MARKERS, learned):
            _errorbar(ax, share(s.weights()), s, metric, split, marker=marker, markersize=12,
                      label=f"{METHOD_LABELS.get(s.spec.method, s.spec.method)} (learned weight)")
        ax.set_xlim(-0.05, 1.05)
        _label_metric_axes(ax, metric, f"weight of {a}  (weight of {b} = 1 - w)", split)
    _finish(fig, f"{a} + {b}: task weight vs performance", path)
    return True


def _label_metric_axes(ax: Any, metric: str, xlabel: str, split: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} ({SPLIT_NAMES[split]})")
    ax.set_title(f"{metric} ({'higher' if metric in HIGHER_IS_BETTER else 'lower'} is better)")
    ax.grid(alpha=0.3)


def _finish(fig: Figure, title: str, path: Path) -> None:
    """Legend on the first panel, the title, and the file."""
    fig.axes[0].legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def init_curves(experiment: Experiment, out_dir: Path, path: Path) -> bool:
    """s_i and effective weights over training per start value of s (seed 0); False without logs."""
    runs = [(float(s.weighting.get("init", 0.0)), read_log(run_dir(out_dir, s, 0) / "train.csv")) for s in experiment.init_study]
    runs = [(init, log) for init, log in runs if log.get("step")]
    if not runs:
        return False
    tasks = experiment.init_study[0].tasks
    fig = Figure(figsize=(4 * len(tasks), 6.5))
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for col, task in enumerate(tasks):
        for init, log in sorted(runs):
            axes[0][col].plot(log["step"], log[f"s_{task}"], label=f"s0 = {init:+g}")
            axes[1][col].plot(log["step"], log[f"w_{task}"], label=f"s0 = {init:+g}")
        axes[0][col].set_title(f"{task}: s = log sigma^2")
        axes[1][col].set_title(f"{task}: effective weight")
        axes[1][col].set_yscale("log")
        for row in (0, 1):
            axes[row][col].set_xlabel("step")
            axes[row][col].grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Uncertainty weighting from different start values of s (seed 0)")
    _save(fig, path)
    return True


def weights_over_training(experiment: Experiment, summaries: dict[str, Summary], out_dir: Path, path: Path) -> bool:
    """Effective weights over training of each learned or dynamic weighting (seed 0), on the init
    study's task set, else on the largest task set that has one (fixed-weight controls left out)."""
    moving = [s for s in summaries.values() if s.spec.method not in FIXED_METHODS and s.spec.in_table and s.spec.source is None]
    if experiment.init_study:
        tasks = experiment.init_study[0].tasks
    elif moving:
        tasks = max((s.spec.tasks for s in moving), key=len)
    else:
        return False
    runs = [(s, read_log(run_dir(out_dir, s.spec, 0) / "train.csv")) for s in moving if s.spec.tasks == tasks]
    runs = [(s, log) for s, log in runs if log.get("step")]
    if not runs:
        return False
    fig = Figure(figsize=(4.5 * len(runs), 3.8))
    for ax, (s, log) in zip(fig.subplots(1, len(runs), squeeze=False)[0], runs):
        for task in tasks:
            ax.plot(log["step"], log[f"w_{task}"], label=task)
        ax.set_title(METHOD_LABELS.get(s.spec.method, s.spec.method), fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("effective weight")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Task weights over training ({set_name(tasks)}, seed 0)")
    _save(fig, path)
    return True


def learning_curves(
    experiment: Experiment, summaries: dict[str, Summary], out_dir: Path, tasks: tuple[str, ...], path: Path
) -> bool:
    """Validation metrics over training for every table row of ``tasks``; False with fewer than two points."""
    rows = curve_rows(experiment, summaries, tasks)
    metrics = task_metrics(tasks)
    curves = set_curves(experiment, summaries, out_dir, tasks)
    if not any(len(steps) > 1 for steps, _ in curves.values()):
        return False
    fig = Figure(figsize=(5 * len(metrics) + 4, 4))
    *panels, legend_panel = fig.subplots(1, len(metrics) + 1, squeeze=False)[0]  # the legend gets a panel of its own
    for ax, metric in zip(panels, metrics):
        for s in rows:
            steps, values = curves.get((s.spec.name, metric), ([], []))
            if steps:
                label = METHOD_LABELS.get(s.spec.method, s.spec.method)
                style = {"color": "black", "linestyle": "--"} if s.spec.method == "single" else {}
                ax.plot(steps, values, marker=".", label=label + (f" ({s.spec.name})" if s.spec.method == "grid" else ""),
                        **style)
        _label_metric_axes(ax, metric, "step", VAL)
    legend_panel.axis("off")
    legend_panel.legend(*panels[0].get_legend_handles_labels(), loc="center left", fontsize=7)
    fig.suptitle(f"{set_name(tasks)}: learning curves (validation, mean over seeds)")
    _save(fig, path)
    return True


def draw_all(experiment: Experiment, summaries: dict[str, Summary], out_dir: Path, split: str) -> dict[str, str]:
    """Draw every figure that has data; returns {file name: what it shows}."""
    drawn = {}
    for tasks in experiment.task_sets:
        if len(tasks) == 2:
            name = f"fig2_{tasks[0]}_{tasks[1]}.png"
            if figure2(tasks, summaries, out_dir / name, split):
                drawn[name] = (f"{tasks[0]} + {tasks[1]}: {SPLIT_NAMES[split]} metrics against the {tasks[0]} weight "
                               "(paper, Figure 2)")
        name = f"curves_{'_'.join(tasks)}.png"
        if learning_curves(experiment, summaries, out_dir, tasks, out_dir / name):
            drawn[name] = f"{set_name(tasks)}: validation metrics over training per method (is the ranking still moving?)"
    if init_curves(experiment, out_dir, out_dir / "uncertainty_init.png"):
        drawn["uncertainty_init.png"] = "s_i and effective weights over training for each start value of s (appendix)"
    if weights_over_training(experiment, summaries, out_dir, out_dir / "weights_over_training.png"):
        drawn["weights_over_training.png"] = "effective task weights over training of each learned weighting"
    return drawn

"""Learning curves: the validation metrics a run logged every ``train.val_every`` steps (val.csv).

Shared by the figure (``plots.learning_curves``) and the report's ranking table, which says in
words what the figure shows: whether the order of the methods still changes at the last
checkpoints, i.e. whether the budget measured a ranking or a snapshot of one still moving.
"""
from __future__ import annotations

from pathlib import Path

from mtl_perception_training.experiments.summary import (
    HIGHER_IS_BETTER,
    METRIC_TASK,
    Summary,
    read_log,
    table_rows,
    task_metrics,
)
from mtl_perception_training.experiments.plan import Experiment, run_dir, set_name

Curve = tuple[list[float], list[float]]  # (steps, mean over seeds)


def mean_curve(out_dir: Path, s: Summary, metric: str) -> Curve:
    """(steps, mean over seeds) of ``metric`` in the runs' val.csv, at the steps every seed has."""
    logs = [read_log(run_dir(out_dir, s.spec, seed) / "val.csv") for seed in s.seeds]
    per_seed = [dict(zip(log["step"], log[metric])) for log in logs if metric in log]
    if not per_seed:
        return [], []
    steps = sorted(set.intersection(*(set(p) for p in per_seed)))
    return steps, [sum(p[step] for p in per_seed) / len(per_seed) for step in steps]


def curve_rows(experiment: Experiment, summaries: dict[str, Summary], tasks: tuple[str, ...]) -> list[Summary]:
    """The finished table rows of ``tasks``, with the single-task rows of its tasks."""
    return [s for s in table_rows(experiment, summaries) if s.seeds and (
        s.spec.tasks == tasks or (s.spec.method == "single" and s.spec.tasks[0] in tasks))]


def set_curves(
    experiment: Experiment, summaries: dict[str, Summary], out_dir: Path, tasks: tuple[str, ...]
) -> dict[tuple[str, str], Curve]:
    """{(configuration, metric): curve} for every row of ``tasks`` and each metric it has."""
    return {(s.spec.name, m): mean_curve(out_dir, s, m) for s in curve_rows(experiment, summaries, tasks)
            for m in task_metrics(tasks) if METRIC_TASK[m] in s.spec.tasks}


def ranking_markdown(experiment: Experiment, summaries: dict[str, Summary], out_dir: Path) -> str:
    """Per task set and metric: the rows of that set (single tasks aside), best first, at each checkpoint."""
    lines = []
    for tasks in experiment.task_sets:
        curves = set_curves(experiment, summaries, out_dir, tasks)
        for metric in task_metrics(tasks):
            ranked = {name: dict(zip(*curve)) for (name, m), curve in curves.items()
                      if m == metric and not name.startswith("single-")}
            steps = sorted(set.intersection(*(set(c) for c in ranked.values()))) if ranked else []
            if len(steps) < 2:
                continue
            lines += [f"{set_name(tasks)}, {metric} ({'higher' if metric in HIGHER_IS_BETTER else 'lower'} is better):", "",
                      "| step | best first |", "|---|---|"]
            orders = []
            for step in steps:
                order = sorted(ranked, key=lambda n: -ranked[n][step] if metric in HIGHER_IS_BETTER else ranked[n][step])
                orders.append(order)
                short = {n: n.replace(f"-{set_name(tasks)}", "") for n in order}
                lines.append(f"| {step:g} | " + " > ".join(f"{short[n]} ({ranked[n][step]:.4g})" for n in order) + " |")
            moving = "still changing at the last checkpoint" if orders[-1] != orders[-2] else "unchanged over the last two checkpoints"
            lines += ["", f"Order {moving}.", ""]
    return "\n".join(lines) if lines else "Fewer than two validations per run: set train.val_every to see the curves."

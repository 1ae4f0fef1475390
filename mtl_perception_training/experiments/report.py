"""The Table-1 report: results.json, table1.md (the paper's Table 1 layout) and the figures.

Built from the ``result.json`` of every run found in the output folder, so it can be written
from a partial experiment (missing rows read "not run") and rebuilt at any time.

Split discipline: every choice (the grid pick, the per-metric best grid point) reads the
validation metrics only; the tables and comparisons report the test split when the runs were
scored on one (``--test-data``), and say plainly when they were not.

"Approx. optimal weights" is the grid point of a task set with the best mean rank over that
set's metrics: one weight vector for all columns, as a user would have to pick. Because that
choice is a compromise, the comparison section also checks each learned weighting against
the best grid value of every metric separately (an oracle that may use a different weight
for each column), next to the single-task models and the unweighted sum.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from mtl_perception.io_utils import atomic_write_text
from mtl_perception.model.tasks import TASKS

from mtl_perception_training.experiments.controls import FIXED_LEARNED, NORMALIZED
from mtl_perception_training.experiments.table1 import RESULT_FILE, Experiment, RunSpec, run_dir, set_name

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


def _cell(summary: Summary, metric: str, split: str) -> str:
    if METRIC_TASK[metric] not in summary.spec.tasks:
        return "–"
    if not summary.seeds:
        return "diverged" if summary.diverged else "not run"
    if not summary.per_seed(metric, split):
        return f"no {split}"
    digits = 4 if metric == "miou" else 3
    text = f"{summary.mean(metric, split):.{digits}f}"
    if len(summary.per_seed(metric, split)) > 1:
        text += f" ± {summary.std(metric, split):.{digits}f}"
    return text


def _weights_cell(summary: Summary) -> str:
    weights = summary.weights()
    method = summary.spec.method
    suffix = "" if method in FIXED_METHODS else WEIGHT_NOTES.get(method, " (learned, at end)")
    if not weights:
        return "–"
    return " / ".join(f"{weights[t]:.3g}" if t in weights else "–" for t in TASKS) + suffix


def markdown_table(rows: Iterable[Summary], split: str = VAL, grid_label: str = METHOD_LABELS["grid"]) -> str:
    """Table-1 rows with ``split``'s metrics; ``grid_label`` names fixed-weight rows (the pick, or any grid point)."""
    header = "| Loss | Tasks | Weights (sem / inst / depth) | miou ↑ | instance_err_px ↓ | disparity_err_px ↓ | Seeds |"
    lines = [header, "|" + "---|" * 7]
    for s in rows:
        seeds = f"{len(s.seeds)}" + (f" (+{len(s.diverged)} diverged)" if s.diverged else "")
        label = grid_label if s.spec.method == "grid" else METHOD_LABELS.get(s.spec.method, s.spec.method)
        cells = [label, set_name(s.spec.tasks), _weights_cell(s), *(_cell(s, m, split) for m in METRICS), seeds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _test_note(out_dir: Path, summaries: dict[str, Summary], split: str) -> str:
    """One sentence on which split the tables report, and where the test scenes came from."""
    if split == VAL:
        return ("**No test split was given (`--test-data`)**: the numbers below are on the validation split that "
                "also picked the grid point, so the grid rows are optimistic.")
    for s in summaries.values():
        for seed in s.seeds:
            test = json.loads((run_dir(out_dir, s.spec, seed) / RESULT_FILE).read_text()).get("test")
            if test:
                return (f"Metrics on the **test split** ({test['data']} [{test['split']}], the {test['model']} of each "
                        "run), which no choice reads; the grid pick and the per-metric best grid point were chosen on "
                        "the validation split.")
    return ""


def write_report(experiment: Experiment, out_dir: Path, seeds: int, log: Callable[[str], None] = print) -> Path:
    """Write results.json, table1.md and the PNG figures into ``out_dir``; returns the markdown path."""
    from mtl_perception_training.experiments import plots
    from mtl_perception_training.experiments.comparisons import comparison_markdown, comparisons, verdict_counts
    from mtl_perception_training.experiments.curves import ranking_markdown

    out_dir = Path(out_dir)
    summaries = collect(experiment, out_dir, seeds)
    split = reported_split(summaries)
    rows = table_rows(experiment, summaries)
    compared = comparisons(experiment, summaries, split)
    figures = plots.draw_all(experiment, summaries, out_dir, split)

    grid_rows = [s for s in summaries.values() if s.spec.method == "grid"]
    learned_rows = [s for s in summaries.values() if s.spec.method not in FIXED_METHODS and s.seeds]
    done = sum(1 for s in summaries.values() if s.seeds or s.diverged)
    md = [
        f"# Table 1 ({experiment.source.stem} scale, {seeds} seed{'s' if seeds > 1 else ''})",
        "",
        f"{done} of {len(summaries)} configurations finished. {_test_note(out_dir, summaries, split)} "
        "Final weights of each run; mean ± sample std over seeds. ↑ higher is better, ↓ lower is better.",
        "",
        markdown_table(rows, split),
        "",
        "## Does learned weighting win? (paired over seeds)",
        "",
        f"Per cell, the difference method − reference on the {SPLIT_NAMES[split]} split over the seeds both ran, "
        "with its 95% interval from the t distribution; \"≈ noise\": the interval contains 0. "
        "Read better/worse with the metric's direction (miou ↑, errors ↓).",
        "",
        *verdict_counts(compared),
        "",
        comparison_markdown(compared) if compared else "No learned-weighting run has finished yet.",
        "",
        "## Is the ranking still moving? (validation, mean over seeds)",
        "",
        ranking_markdown(experiment, summaries, out_dir),
        "",
        "## The same rows on the validation split (what the choices saw)",
        "",
        markdown_table(rows, VAL),
        "",
        "## Weighted task losses at the end of training",
        "",
        "w_i × L_i over the last 10% of steps (mean over seeds) for the learned weightings. Uncertainty "
        "weighting drives every one towards 1/2 whatever the task's units (its fixed point); values far "
        "from 1/2 mean s_i had not converged.",
        "",
        _weighted_loss_markdown(out_dir, learned_rows),
        "",
        "## All fixed-weight runs (grid search)",
        "",
        markdown_table(grid_rows, split, grid_label="Fixed weights"),
        "",
        "## Figures",
        "",
        *(f"- `{name}`: {what}" for name, what in figures.items()),
        "",
    ]
    md_path = out_dir / "table1.md"
    atomic_write_text(md_path, "\n".join(md))
    payload = {
        "scale": str(experiment.source),
        "seeds": seeds,
        "choices_split": VAL,
        "reported_split": split,
        "configurations": {
            name: {
                "method": s.spec.method,
                "tasks": list(s.spec.tasks),
                "weighting": dict(s.spec.weighting),
                "in_table": s.spec.in_table,
                "seeds": s.seeds,
                "diverged_seeds": s.diverged,
                **{
                    f"metrics_{part}": {
                        m: {"mean": s.mean(m, part), "std": s.std(m, part), "per_seed": {str(k): v for k, v in values.items()}}
                        for m, values in s.values[part].items()
                    }
                    for part in (VAL, TEST)
                },
                "weights": s.weights() if s.seeds else {},
            }
            for name, s in summaries.items()
        },
        "grid_pick": {set_name(t): (g.spec.name if (g := best_grid(summaries, t)) else None) for t in experiment.task_sets},
        "comparisons": compared,
        "figures": figures,
    }
    atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=1, allow_nan=True) + "\n")
    log(f"report: {md_path}, {out_dir / 'results.json'}, {len(figures)} figure(s)")
    return md_path


def read_log(train_csv: Path) -> dict[str, list[float]]:
    """Columns of a run's train.csv as float lists (empty when the file is missing)."""
    if not train_csv.is_file():
        return {}
    with train_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else {})}


def weighted_losses(out_dir: Path, summary: Summary, tail: float = 0.1) -> dict[str, float]:
    """w_i x L_i per task over the last ``tail`` of training steps, mean over the finished seeds.

    Uncertainty weighting's fixed point is exp(-s_i) L_i = 1/2 in either form (d/ds of
    c exp(-s) L + s/2 is zero at c exp(-s) L = 1/2): every task's weighted loss is driven to
    1/2, whatever the task's units. How close the runs got shows whether s_i had converged.
    """
    per_task: dict[str, list[float]] = {}
    for seed in summary.seeds:
        log = read_log(run_dir(out_dir, summary.spec, seed) / "train.csv")
        for task in summary.spec.tasks:
            w, loss = log.get(f"w_{task}", []), log.get(f"loss_{task}", [])
            n = max(1, int(len(loss) * tail))
            if w and loss:
                per_task.setdefault(task, []).append(statistics.fmean(a * b for a, b in zip(w[-n:], loss[-n:])))
    return {task: statistics.fmean(values) for task, values in per_task.items()}


def _weighted_loss_markdown(out_dir: Path, summaries: Iterable[Summary]) -> str:
    lines = ["| Configuration | " + " | ".join(f"w × L {t}" for t in TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for s in summaries:
        values = weighted_losses(out_dir, s)
        cells = [f"{values[t]:.3f}" if t in values else "–" for t in TASKS]
        lines.append(f"| {s.spec.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


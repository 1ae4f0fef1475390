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
import statistics
from pathlib import Path
from typing import Callable, Iterable

from mtl_perception.io_utils import atomic_write_text
from mtl_perception.model.tasks import TASKS

from mtl_perception_training.experiments import plots
from mtl_perception_training.experiments.comparisons import comparison_markdown, comparisons, verdict_counts
from mtl_perception_training.experiments.curves import ranking_markdown
from mtl_perception_training.experiments.plan import RESULT_FILE, Experiment, run_dir, set_name
from mtl_perception_training.experiments.summary import (
    FIXED_METHODS,
    METHOD_LABELS,
    METRIC_TASK,
    METRICS,
    SPLIT_NAMES,
    TEST,
    VAL,
    WEIGHT_NOTES,
    Summary,
    best_grid,
    better,
    collect,
    read_log,
    reported_split,
    table_rows,
)

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


"""Does a learned weighting beat each reference? Paired per seed, with the noise said out loud.

For every finished learned/dynamic row (and the controls) and each of its metrics, the
difference to each reference over the seeds both ran (``stats.paired_difference``, on the
reported split): the single-task model, the unweighted sum, the grid pick and the best grid
point for that metric (both chosen on the validation split), and, for uncertainty weighting,
its two controls. A difference whose 95% interval contains 0 is "within noise".
"""
from __future__ import annotations

from typing import Any

from mtl_perception_training.experiments.plan import CONTROLS, FIXED_LEARNED, NORMALIZED
from mtl_perception_training.experiments.summary import (
    FIXED_METHODS,
    HIGHER_IS_BETTER,
    METHOD_LABELS,
    METRIC_TASK,
    Summary,
    best_grid,
    best_grid_value,
    task_metrics,
)
from mtl_perception_training.experiments.stats import BETTER, UNKNOWN, WITHIN_NOISE, WORSE, paired_difference
from mtl_perception_training.experiments.plan import Experiment, set_name

REFERENCES = {
    "single": "single task",
    "equal": "unweighted sum",
    "grid_chosen": "grid pick",
    "grid_best_for_metric": "best grid point for this metric",
    FIXED_LEARNED: "its final weights, fixed",
    NORMALIZED: "loss normalisation",
}
_SHORT = {BETTER: "better", WORSE: "worse", WITHIN_NOISE: "≈ noise", UNKNOWN: "n/a"}


def comparisons(experiment: Experiment, summaries: dict[str, Summary], split: str) -> list[dict[str, Any]]:
    """One row per (learned configuration, metric) with a paired difference to each reference."""
    out = []
    for spec in experiment.specs:
        summary = summaries[spec.name]
        if spec.method in FIXED_METHODS or not spec.in_table or not summary.seeds:
            continue
        chosen = best_grid(summaries, spec.tasks)
        for metric in task_metrics(spec.tasks):
            refs: dict[str, Summary | None] = {
                "single": summaries[f"single-{METRIC_TASK[metric]}"],
                "equal": summaries[f"equal-{set_name(spec.tasks)}"],
                "grid_chosen": chosen,
                "grid_best_for_metric": best_grid_value(summaries, spec.tasks, metric),
            }
            if spec.method == "uncertainty":
                refs.update({c: summaries.get(f"{c}-{set_name(spec.tasks)}") for c in CONTROLS})
            row: dict[str, Any] = {"config": spec.name, "method": spec.method, "tasks": list(spec.tasks),
                                   "metric": metric, "split": split, "value": summary.mean(metric, split)}
            for key, ref in refs.items():
                diff = None if ref is None else paired_difference(summary.per_seed(metric, split), ref.per_seed(metric, split))
                row[key] = None if diff is None else {
                    "config": ref.spec.name,
                    "value": ref.mean(metric, split),
                    "seeds": list(diff.seeds),
                    "differences": list(diff.differences),
                    "difference": diff.mean,
                    "interval": [diff.low, diff.high],
                    "verdict": diff.verdict(metric in HIGHER_IS_BETTER),
                }
            out.append(row)
    return out


def _mark(ref: dict[str, Any] | None) -> str:
    if ref is None:
        return "–"
    low, high = ref["interval"]
    interval = "" if ref["verdict"] == UNKNOWN else f" [{low:+.3g}, {high:+.3g}]"
    return f"{_SHORT[ref['verdict']]} {ref['difference']:+.3g}{interval}"


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a table: per reference, the verdict, mean difference and its 95% interval."""
    keys = [k for k in REFERENCES if any(r.get(k) is not None for r in rows)]
    lines = ["| Method | Tasks | Metric | Value | " + " | ".join(f"vs {REFERENCES[k]}" for k in keys) + " |",
             "|" + "---|" * (4 + len(keys))]
    for r in rows:
        lines.append(f"| {METHOD_LABELS.get(r['method'], r['method'])} | {set_name(r['tasks'])} | {r['metric']} | "
                     f"{r['value']:.4g} | " + " | ".join(_mark(r.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def verdict_counts(rows: list[dict[str, Any]]) -> list[str]:
    """Per method and reference: how many (task set x metric) cells are better, worse, within noise."""
    lines = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        parts = []
        for key, label in REFERENCES.items():
            verdicts = [r[key]["verdict"] for r in mine if r.get(key) is not None]
            if verdicts:
                counts = ", ".join(f"{verdicts.count(v)} {_SHORT[v]}" for v in (BETTER, WORSE, WITHIN_NOISE, UNKNOWN)
                                   if verdicts.count(v))
                parts.append(f"vs {label}: {counts}")
        lines.append(f"- {METHOD_LABELS.get(method, method)}: " + "; ".join(parts))
    return lines

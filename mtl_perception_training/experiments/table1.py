"""The Table-1 experiment of Kendall, Gal & Cipolla (CVPR 2018): the runner (the plan is ``plan``).

On one dataset and one training budget, every configuration below is trained over N seeds,
validated on the validation split (the trainer's final validation, and its learning curve
every ``train.val_every`` steps: every choice of the report reads these), and scored once
more on a held-out test split (``heldout``: only reported, never read by a choice):

- ``single-<task>``: each task alone;
- ``equal-<tasks>``: the unweighted sum of losses, for every task set;
- ``grid-<tasks>-<w...>``: fixed weights, a grid per pair (the paper's Figure 2) and a coarse
  three-task grid, from which the report picks the "approximately optimal weights";
- ``<method>-<tasks>``: learned or dynamic weightings (uncertainty, DWA, GradNorm);
- ``fixed-learned-<tasks>`` and ``normalized-<tasks>``: the two controls of every uncertainty
  run (``controls``: its final weights held fixed from the start; loss normalisation);
- ``uncertainty-<tasks>-init<s0>``: the start-value study (paper, appendix).

The grid comes from a scale file (``config/experiments/<scale>.yaml``). Each run
lives in ``OUT/runs/<name>/seed<k>/`` (the trainer's folder: best.pt, train.csv, val.csv)
and is finished when its ``result.json`` exists: a rerun skips it, and a run interrupted
mid-training continues from its ``last.pt`` (the trainer's exact resume, deleted once the run
is finished), so an interrupted experiment picks up where it stopped. A finished run whose config differs from the one asked
for now is an error, not silently reused.
"""
from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mtl_perception.errors import ConfigError, UserError
from mtl_perception.io_utils import atomic_write_text

from mtl_perception_training.experiments import controls
from mtl_perception_training.experiments.heldout import TestSplit, check_separate, evaluate_test
from mtl_perception_training.experiments.plan import RESULT_FILE, Experiment, RunSpec, run_dir, select, spec_named
from mtl_perception_training.experiments.report import write_report


def training_config(
    experiment: Experiment, spec: RunSpec, data_root: Path, seed: int, out_dir: Path | None = None
) -> dict[str, Any]:
    """The resolved training config of one run: the base with this run's tasks, weighting and seed.

    A fixed-learned control takes its weights from its source run of the same seed in
    ``out_dir``; without ``out_dir`` (checking configs before anything trains) it gets
    placeholder weights.
    """
    from mtl_perception_training.train_config import resolve_train_config

    cfg = copy.deepcopy(experiment.base)
    cfg.setdefault("data", {})["root"] = str(data_root)
    cfg.setdefault("model", {})["tasks"] = list(spec.tasks)
    if spec.source is None:
        weighting = spec.weighting
    elif out_dir is None:
        weighting = controls.placeholder_weighting(spec)
    else:
        weighting = controls.learned_weighting(spec, spec_named(experiment, spec.source), out_dir, seed)
    cfg["weighting"] = copy.deepcopy(dict(weighting))
    cfg.setdefault("train", {})["seed"] = seed
    return resolve_train_config(cfg)


def final_log_values(train_csv: Path) -> dict[str, float]:
    """s_<task> and w_<task> of a run's last training step (empty when it logged none)."""
    if not train_csv.is_file():
        return {}
    with train_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: float(v) for k, v in rows[-1].items() if k.startswith(("s_", "w_")) and v not in ("", None)}


def _check_same_config(path: Path, cfg: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
    """``ConfigError`` when a finished run was trained with another config (paths, workers, logging aside)."""
    from mtl_perception_training.trainer import RESUMABLE_CHANGES

    def flat(c: Mapping[str, Any]) -> dict[str, Any]:
        return {f"{section}.{key}": value for section, values in c.items() for key, value in values.items()}

    new, old = flat(cfg), flat(saved)
    changed = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:4])
        raise ConfigError(
            f"{path} is a finished run of another config ({detail}); use a new --out, or delete that run folder to retrain it"
        )


def run_one(
    spec: RunSpec, seed: int, cfg: dict[str, Any], out_dir: Path, test: TestSplit | None = None
) -> tuple[dict[str, Any], bool]:
    """Train, validate and (with ``test``) score on the test split one run, unless finished.

    Returns (its result, whether it was trained now).
    """
    from mtl_perception_training.trainer import Trainer, TrainingDiverged

    folder = run_dir(out_dir, spec, seed)
    result_path = folder / RESULT_FILE
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        _check_same_config(result_path, cfg, result["config"])
        _check_same_test(result_path, test, result.get("test"))
        return result, False
    resume = (folder / "last.pt").is_file()
    start = time.perf_counter()
    result: dict[str, Any] = {"name": spec.name, "method": spec.method, "tasks": list(spec.tasks), "seed": seed}
    try:
        trainer = Trainer(cfg, folder, resume=resume)
        trained = trainer.fit()
        result.update(status="ok", metrics=trained.metrics, steps=trained.step)
        if test is not None:
            result["test"] = {**test.describe(), "metrics": evaluate_test(trainer.validated_model(), cfg, test)}
    except TrainingDiverged as exc:  # a bad grid point is a result too; a rerun would diverge again
        result.update(status="diverged", error=str(exc), metrics={}, steps=None)
    result.update(
        final=final_log_values(folder / "train.csv"),
        seconds=round(time.perf_counter() - start, 1),
        resumed=resume,
        config=cfg,
    )
    atomic_write_text(result_path, json.dumps(result, indent=1, default=str) + "\n")
    # Finished: the resume checkpoint (weights + optimiser state) has done its job. At full scale
    # 162 of them would not fit on the GPU machine's disk; best.pt (weights only) stays.
    (folder / "last.pt").unlink(missing_ok=True)
    return result, True


def _check_same_test(path: Path, test: TestSplit | None, saved: Mapping[str, Any] | None) -> None:
    """``ConfigError`` when a finished run was scored on another test split than the one asked for.

    A run finished without a test split keeps none (its final weights are gone): the report's
    test cells for it read "no test".
    """
    if test is not None and saved is not None and (
        Path(saved["data"]).resolve() != test.root.resolve() or saved["split"] != test.split
    ):
        raise ConfigError(
            f"{path} was scored on the test split {saved['data']} [{saved['split']}], not {test.root} [{test.split}]; "
            "use a new --out for another test split"
        )


def run_experiment(
    experiment: Experiment,
    data_root: Path,
    out_dir: Path,
    seeds: int,
    only: Iterable[str] = (),
    log: Callable[[str], None] = print,
    test: TestSplit | None = None,
) -> list[dict[str, Any]]:
    """Every selected run for seeds 0..N-1 (all configurations of seed 0 first), then the report.

    Within a seed the controls come after the uncertainty runs whose final weights they take.
    """
    selected = select(experiment.specs, only)
    # Every config resolved before anything trains: a bad value fails now, not hours in.
    todo = [(seed, spec, training_config(experiment, spec, data_root, seed)) for seed in range(seeds) for spec in selected]
    if test is not None and todo:
        check_separate(test, todo[0][2])
    results = []
    for i, (seed, spec, cfg) in enumerate(todo, 1):
        if spec.source is not None:  # its source run of this seed has finished by now, unless not selected or diverged
            try:
                cfg = training_config(experiment, spec, data_root, seed, out_dir)
            except UserError as exc:  # one control that cannot run must not stop the other runs
                log(f"[{i}/{len(todo)}] {spec.name} seed {seed}: skipped, {exc}")
                continue
        result, trained = run_one(spec, seed, cfg, out_dir, test)
        headline = ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items() if k in _HEADLINE)
        if "test" in result:
            headline += "; test " + ", ".join(f"{k}={v:.4g}" for k, v in result["test"]["metrics"].items() if k in _HEADLINE)
        state = f"{result['seconds']:.0f} s" if trained else "done before, skipped"
        log(f"[{i}/{len(todo)}] {spec.name} seed {seed}: {result['status']} {headline} ({state})")
        results.append(result)
    write_report(experiment, out_dir, seeds, log)
    return results


_HEADLINE = ("miou", "instance_err_px", "disparity_err_px")

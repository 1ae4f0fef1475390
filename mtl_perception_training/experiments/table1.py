"""The Table-1 experiment of Kendall, Gal & Cipolla (CVPR 2018): its grid of runs and the runner.

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
import fnmatch
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from mtl_perception.config import apply_overrides, load_config
from mtl_perception.errors import ConfigError, UserError
from mtl_perception.io_utils import atomic_write_text
from mtl_perception.model.tasks import TASKS
from mtl_perception.share import share_root

if TYPE_CHECKING:
    from mtl_perception_training.experiments.heldout import TestSplit

SCALE_KEYS = {"seeds", "base", "task_sets", "grid", "methods", "init_study", "controls"}
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class RunSpec:
    """One configuration of the experiment: which tasks, weighted how."""

    name: str
    method: str  # single | equal | grid | one of the scale file's methods (uncertainty, dwa, ...)
    tasks: tuple[str, ...]
    weighting: Mapping[str, Any] = field(hash=False)
    in_table: bool = True  # False for the extra start values of the init study
    source: str | None = None  # a fixed-learned control: the uncertainty run whose final weights it takes


@dataclass(frozen=True)
class Experiment:
    """A scale file, checked: the base training config, the runs, and the seed count."""

    source: Path
    seeds: int
    base: dict[str, Any]
    specs: tuple[RunSpec, ...]
    task_sets: tuple[tuple[str, ...], ...]
    init_study: tuple[RunSpec, ...]


def _task_set(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value or any(t not in TASKS for t in value) or len(set(value)) != len(value):
        raise ConfigError(f"{where} must be a list of distinct tasks from {list(TASKS)}, got {value!r}")
    return tuple(t for t in TASKS if t in value)  # canonical order, as the model orders them


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ConfigError(f"{where} must hold positive numbers, got {value!r}")
    return float(value)


def set_name(tasks: Iterable[str]) -> str:
    return "+".join(tasks)


def _grid_name(tasks: tuple[str, ...], weights: Iterable[float]) -> str:
    return f"grid-{set_name(tasks)}-" + "_".join(f"{w:g}" for w in weights)


def resolve_scale(scale: str | Path) -> Path:
    """``ci``/``full`` (files of config/experiments, in a checkout or installed) or a path to a scale YAML."""
    path = Path(scale)
    if path.suffix not in (".yaml", ".yml"):
        scales = share_root() / "config" / "experiments"
        path = scales / f"{scale}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in scales.glob("*.yaml"))
            raise ConfigError(f"--scale: unknown scale {scale!r}; choose one of {names} or give a YAML file")
    return path


def load_experiment(scale: str | Path, overrides: Iterable[str] = ()) -> Experiment:
    """Read and check a scale file; ``overrides`` (``key=value``) edit its base training config."""
    path = resolve_scale(scale)
    raw = load_config(path)
    unknown = sorted(set(raw) - SCALE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(SCALE_KEYS)}")
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{path}: seeds must be a positive integer, got {seeds!r}")
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: base must be a training config mapping")
    base = apply_overrides(base, overrides)
    task_sets = tuple(_task_set(s, f"{path}: task_sets entry") for s in raw.get("task_sets") or [])
    if not task_sets or any(len(s) < 2 for s in task_sets):
        raise ConfigError(f"{path}: task_sets must list combinations of at least two tasks")

    specs = [RunSpec(f"single-{t}", "single", (t,), {"method": "equal"}) for t in TASKS]
    specs += [RunSpec(f"equal-{set_name(s)}", "equal", s, {"method": "equal"}) for s in task_sets]
    specs += _grid_specs(raw.get("grid") or {}, task_sets, path)
    methods = raw.get("methods") or {}
    if not isinstance(methods, dict):
        raise ConfigError(f"{path}: methods must map a name to {{weighting: ..., task_sets: ...}}")
    for name, entry in methods.items():
        if name in ("single", "equal", "grid") or not isinstance(entry, dict) or not isinstance(entry.get("weighting"), dict):
            raise ConfigError(f"{path}: methods.{name} must be a mapping with a weighting section (and a name "
                              "other than single, equal, grid)")
        sets = [_task_set(s, f"{path}: methods.{name}.task_sets entry") for s in entry.get("task_sets") or task_sets]
        _check_weighting(entry["weighting"], sets, f"{path}: methods.{name}")
        specs += [RunSpec(f"{name}-{set_name(s)}", name, s, dict(entry["weighting"])) for s in sets]
    specs += _controls(raw, specs, path)
    init_study = _init_study(raw.get("init_study"), methods, specs, path)
    specs += [s for s in init_study if s not in specs]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two configurations share a name; check grid and task_sets for duplicates")
    return Experiment(path, seeds, base, tuple(specs), task_sets, tuple(init_study))


def _controls(raw: Mapping[str, Any], specs: list[RunSpec], path: Path) -> list[RunSpec]:
    """The scale file's ``controls`` (default: both) for every uncertainty row."""
    from mtl_perception_training.experiments.controls import CONTROLS, control_specs

    which = raw.get("controls", list(CONTROLS))
    if not isinstance(which, list):
        raise ConfigError(f"{path}: controls must be a list from {list(CONTROLS)}, got {which!r}")
    try:
        return control_specs(specs, which)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def spec_named(experiment: Experiment, name: str) -> RunSpec:
    """The configuration called ``name`` (a control's source)."""
    return next(s for s in experiment.specs if s.name == name)


def _check_weighting(cfg: Mapping[str, Any], task_sets: Iterable[tuple[str, ...]], where: str) -> None:
    from mtl_perception_training.weighting import build_weighting

    for tasks in task_sets:
        try:
            build_weighting(cfg, tasks)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _grid_specs(grid: Mapping[str, Any], task_sets: tuple[tuple[str, ...], ...], path: Path) -> list[RunSpec]:
    specs = []
    shares = [_weight(w, f"{path}: grid.pair") for w in grid.get("pair") or []]
    if any(not w < 1 for w in shares):
        raise ConfigError(f"{path}: grid.pair weights are the first task's share, in (0, 1); got {grid['pair']!r}")
    for s in (s for s in task_sets if len(s) == 2):
        for w in shares:
            weights = (w, round(1 - w, 10))
            specs.append(RunSpec(_grid_name(s, weights), "grid", s, {"method": "fixed", "weights": dict(zip(s, weights))}))
    triple = tuple(TASKS)
    for point in grid.get("triple") or []:
        if not isinstance(point, (list, tuple)) or len(point) != 3:
            raise ConfigError(f"{path}: grid.triple entries are [semantic, instance, depth] weights, got {point!r}")
        weights = tuple(_weight(w, f"{path}: grid.triple") for w in point)
        if triple in task_sets:
            specs.append(RunSpec(_grid_name(triple, weights), "grid", triple, {"method": "fixed", "weights": dict(zip(triple, weights))}))
    return specs


def _init_study(cfg: Any, methods: Mapping[str, Any], specs: list[RunSpec], path: Path) -> list[RunSpec]:
    """Uncertainty weighting from each start value; the configured init reuses the table's run."""
    if not cfg:
        return []
    if "uncertainty" not in methods:
        raise ConfigError(f"{path}: init_study needs methods.uncertainty")
    tasks = _task_set(cfg.get("tasks"), f"{path}: init_study.tasks")
    inits = cfg.get("inits") or []
    weighting = dict(methods["uncertainty"]["weighting"])
    table_run = next((s for s in specs if s.method == "uncertainty" and s.tasks == tasks), None)
    out = []
    for init in inits:
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ConfigError(f"{path}: init_study.inits must be numbers, got {init!r}")
        if table_run is not None and float(init) == float(weighting.get("init", 0.0)):
            out.append(table_run)
        else:
            name = f"uncertainty-{set_name(tasks)}-init{init:+g}"
            out.append(RunSpec(name, "uncertainty", tasks, {**weighting, "init": float(init)}, in_table=False))
    return out


def select(specs: Iterable[RunSpec], patterns: Iterable[str]) -> list[RunSpec]:
    """Specs whose name matches any glob pattern (all when none given); a pattern matching nothing is an error."""
    specs, patterns = list(specs), list(patterns)
    if not patterns:
        return specs
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(s.name, pattern) for s in specs):
            raise UserError(f"--only {pattern!r} matches no configuration; list them with --list")
    return [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]


def training_config(
    experiment: Experiment, spec: RunSpec, data_root: Path, seed: int, out_dir: Path | None = None
) -> dict[str, Any]:
    """The resolved training config of one run: the base with this run's tasks, weighting and seed.

    A fixed-learned control takes its weights from its source run of the same seed in
    ``out_dir``; without ``out_dir`` (checking configs before anything trains) it gets
    placeholder weights.
    """
    from mtl_perception_training.experiments import controls
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


def run_dir(out_dir: Path, spec: RunSpec, seed: int) -> Path:
    return out_dir / "runs" / spec.name / f"seed{seed}"


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
    from mtl_perception_training.experiments.heldout import evaluate_test
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
    from mtl_perception_training.experiments.heldout import check_separate
    from mtl_perception_training.experiments.report import write_report

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

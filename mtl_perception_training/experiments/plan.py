"""The Table-1 experiment's plan: the scale file read and checked into its configurations.

What runs, not how: ``RunSpec`` per configuration (tasks and weighting), ``Experiment`` (the
base training config, the specs, the seeds), the run folder layout and the two controls of
every uncertainty run. ``table1`` trains them, ``report`` (over ``summary``) reads the results;
both build on this module, which imports neither (the experiments modules form no loop).
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from mtl_perception.config import apply_overrides, load_config
from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model.tasks import TASKS
from mtl_perception.share import share_root

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
    which = raw.get("controls", list(CONTROLS))
    if not isinstance(which, list):
        raise ConfigError(f"{path}: controls must be a list from {list(CONTROLS)}, got {which!r}")
    try:
        return control_specs(specs, which)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


FIXED_LEARNED, NORMALIZED = "fixed-learned", "normalized"
CONTROLS = (FIXED_LEARNED, NORMALIZED)


def control_specs(specs: Iterable[RunSpec], which: Iterable[str]) -> list[RunSpec]:
    """The controls named in ``which`` for every table row of the ``uncertainty`` method."""
    which = list(which)
    unknown = [c for c in which if c not in CONTROLS]
    if unknown:
        raise ConfigError(f"controls: unknown control(s) {unknown}; choose from {list(CONTROLS)}")
    out = []
    for spec in specs:
        if spec.method != "uncertainty" or not spec.in_table:
            continue
        if FIXED_LEARNED in which:
            out.append(RunSpec(f"{FIXED_LEARNED}-{set_name(spec.tasks)}", FIXED_LEARNED, spec.tasks, {"method": "fixed"},
                               source=spec.name))
        if NORMALIZED in which:
            out.append(RunSpec(f"{NORMALIZED}-{set_name(spec.tasks)}", NORMALIZED, spec.tasks, {"method": "normalized"}))
    return out


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


def run_dir(out_dir: Path, spec: RunSpec, seed: int) -> Path:
    return out_dir / "runs" / spec.name / f"seed{seed}"



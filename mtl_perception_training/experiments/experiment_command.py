"""``mtl-perception experiment table1``: the paper's Table 1 (and Figure 2) on one dataset and budget.

Trains every configuration of a scale file (single tasks, unweighted sum, fixed-weight grid,
uncertainty weighting and its two controls, DWA, GradNorm, the start-value study) over N seeds
into ``--out``, picks on the validation split, reports the held-out ``--test-data`` scenes and
writes table1.md, results.json and PNG figures there. Rerunning with the same ``--out``
skips finished runs and resumes an interrupted one, so a stopped experiment just continues.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_perception.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    sub.required = True
    table1 = sub.add_parser(
        "table1",
        help="Table 1 of Kendall et al. 2018: single tasks vs fixed, grid-searched and learned weights",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    table1.add_argument("--data", type=Path, help="dataset root in the Cityscapes layout (e.g. data/synth)")
    table1.add_argument("--scale", default="ci", help="ci (CPU, minutes), full (GPU, days) or a scale YAML file")
    table1.add_argument("--seeds", type=int, help="seeds per configuration (default: the scale file's)")
    table1.add_argument("--out", type=Path, help="output folder (default: runs/table1_<scale>)")
    table1.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only configurations whose name matches, e.g. 'uncertainty-*' (repeatable; see --list)",
    )
    table1.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the base training config of every run, e.g. --set optim.steps=50 (repeatable)",
    )
    table1.add_argument("--list", action="store_true", help="print the configuration names and exit")
    table1.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs, train nothing")
    table1.add_argument(
        "--test-data", type=Path, metavar="ROOT",
        help="held-out test scenes, only reported, never used for a choice (e.g. a synth root of another seed)",
    )
    table1.add_argument("--test-split", default="val", metavar="SPLIT", help="split of --test-data to score (default: val)")


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.errors import UserError

    from mtl_perception_training.experiments.heldout import TestSplit
    from mtl_perception_training.experiments.report import write_report
    from mtl_perception_training.experiments.plan import load_experiment, select
    from mtl_perception_training.experiments.table1 import run_experiment

    experiment = load_experiment(args.scale, args.overrides)
    if args.list:
        for spec in select(experiment.specs, args.only):
            print(spec.name)
        return 0
    seeds = experiment.seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    out = args.out or Path("runs") / f"table1_{experiment.source.stem}"
    if args.report_only:
        write_report(experiment, out, seeds)
        return 0
    if args.data is None:
        raise UserError("--data is required (a dataset root in the Cityscapes layout, e.g. data/synth)")
    if not args.data.is_dir():
        raise UserError(f"--data: dataset folder not found: {args.data}")
    test = TestSplit(args.test_data, args.test_split) if args.test_data is not None else None
    run_experiment(experiment, args.data, out, seeds, args.only, test=test)
    return 0


COMMAND = Command(
    help="run a multi-configuration experiment (table1: the paper's Table 1)",
    description="Experiments over many trainings; `table1` reproduces Table 1 and Figure 2 of Kendall et al. 2018.",
    add_arguments=_add_arguments,
    run=_run,
)

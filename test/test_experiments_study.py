"""The study of issue 20: test split discipline, the controls' weights, paired statistics, presets.

Statistics and the report's choices are checked on hand-made numbers; one tiny experiment
(32x64 images, 4 steps, 8-channel heads, 2 seeds) trains the uncertainty run and its two
controls for real on the session's synthetic data and scores them on a second synth root.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from mtl_perception.cli import main
from mtl_perception.errors import UserError
from mtl_perception_training.experiments import report, summary
from mtl_perception_training.experiments.comparisons import comparisons
from mtl_perception_training.experiments.stats import BETTER, UNKNOWN, WITHIN_NOISE, WORSE, paired_difference
from mtl_perception_training.experiments.plan import RESULT_FILE, load_experiment, run_dir
from mtl_perception_training.experiments.table1 import training_config

INS, DEP = "instance_err_px", "disparity_err_px"
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scale(tmp_path: Path, **changes) -> Path:
    raw = {
        "seeds": 2,
        "base": {
            "data": {"height": 32, "width": 64, "batch_size": 2, "workers": 0},
            "model": {"backbone": "resnet18", "aspp_channels": 8, "decoder_channels": 8, "decoder": "skip_shared"},
            "optim": {"steps": 4},
            "train": {"val_every": 2, "ckpt_every": 2, "device": "cpu"},
        },
        "task_sets": [["instance", "depth"]],
        "grid": {"pair": [0.25, 0.75]},
        "methods": {"uncertainty": {"weighting": {"method": "uncertainty", "init": 0.0, "lr": 5.0e-2}}},
        **changes,
    }
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ------------------------------------------------------------------------------ paired statistics
def test_paired_difference_on_hand_made_numbers():
    # Differences 0.5, 1.0, 1.0 (seed 3 has no partner): mean 5/6, sd 0.288675,
    # t_{0.975, 2} = 4.302653, half-width 4.302653 * 0.288675 / sqrt(3) = 0.717109.
    d = paired_difference({0: 1.0, 1: 2.0, 2: 3.0, 3: 9.0}, {0: 0.5, 1: 1.0, 2: 2.0})
    assert d.seeds == (0, 1, 2) and d.differences == (0.5, 1.0, 1.0)
    assert d.mean == pytest.approx(5 / 6)
    assert (d.low, d.high) == (pytest.approx(5 / 6 - 0.717109, abs=1e-6), pytest.approx(5 / 6 + 0.717109, abs=1e-6))
    assert d.verdict(higher_is_better=True) == BETTER and d.verdict(higher_is_better=False) == WORSE
    # Differences 1, -1, 0.5: the interval contains 0, whichever direction is better.
    noisy = paired_difference({0: 2.0, 1: 1.0, 2: 1.5}, {0: 1.0, 1: 2.0, 2: 1.0})
    assert noisy.low < 0 < noisy.high and noisy.verdict(True) == noisy.verdict(False) == WITHIN_NOISE
    # The pairing matters: a constant offset of 0.01 is certain even though each side's spread is large.
    tight = paired_difference({0: 1.01, 1: 5.01, 2: 9.01}, {0: 1.0, 1: 5.0, 2: 9.0})
    assert tight.mean == pytest.approx(0.01) and tight.high - tight.low == pytest.approx(0.0, abs=1e-9)
    one = paired_difference({0: 1.0}, {0: 0.0})
    assert one.mean == 1.0 and math.isnan(one.low) and one.verdict(True) == UNKNOWN
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


# ------------------------------------------------------------------------------ split discipline
def _fake(out: Path, spec, seed: int, val: dict, test: dict | None, final: dict | None = None) -> None:
    path = run_dir(out, spec, seed) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"name": spec.name, "status": "ok", "metrics": val, "final": final or {}}
    if test is not None:
        result["test"] = {"data": "data/synth_test", "split": "val", "model": "final weights", "metrics": test}
    path.write_text(json.dumps(result))


def _grid_results(exp, out: Path, test_values: dict[str, tuple[float, float]]) -> None:
    spec = {s.name: s for s in exp.specs}
    # On validation 0.75_0.25 wins both metrics; the test values are the caller's.
    val = {"grid-instance+depth-0.25_0.75": (3.0, 1.0), "grid-instance+depth-0.75_0.25": (2.0, 0.5)}
    for seed in (0, 1):
        for name, (i, d) in val.items():
            ti, td = test_values[name]
            _fake(out, spec[name], seed, {INS: i, DEP: d}, {INS: ti + seed, DEP: td})
        _fake(out, spec["uncertainty-instance+depth"], seed, {INS: 2.5, DEP: 0.8}, {INS: 2.6 + seed * 0.1, DEP: 0.9},
              {"w_instance": 0.1, "w_depth": 0.7})


def test_the_grid_pick_never_reads_the_test_split(tmp_path):
    exp = load_experiment(_scale(tmp_path))
    honest = {"grid-instance+depth-0.25_0.75": (3.1, 1.1), "grid-instance+depth-0.75_0.25": (2.1, 0.6)}
    # Poisoned: the test split says the other grid point is far better on both metrics.
    poisoned = {"grid-instance+depth-0.25_0.75": (0.01, 0.01), "grid-instance+depth-0.75_0.25": (99.0, 99.0)}
    picks = {}
    for label, test_values in (("honest", honest), ("poisoned", poisoned)):
        out = tmp_path / label
        _grid_results(exp, out, test_values)
        report.write_report(exp, out, seeds=2, log=lambda _m: None)
        summaries = summary.collect(exp, out, 2)
        saved = json.loads((out / "results.json").read_text())
        picks[label] = (saved["grid_pick"], summary.best_grid(summaries, ("instance", "depth")).spec.name,
                        summary.best_grid_value(summaries, ("instance", "depth"), INS).spec.name)
        assert saved["reported_split"] == "test"
        rows = {(r["config"], r["metric"]): r for r in comparisons(exp, summaries, summary.TEST)}
        chosen = rows[("uncertainty-instance+depth", INS)]["grid_chosen"]
        # The comparison is with the validation pick, and uses its test numbers.
        assert chosen["config"] == "grid-instance+depth-0.75_0.25"
        assert chosen["value"] == pytest.approx(test_values["grid-instance+depth-0.75_0.25"][0] + 0.5)
        md = (out / "table1.md").read_text()
        assert "**test split** (data/synth_test [val]" in md
    assert picks["honest"] == picks["poisoned"] == (
        {"instance+depth": "grid-instance+depth-0.75_0.25"}, "grid-instance+depth-0.75_0.25", "grid-instance+depth-0.75_0.25")
    # The main table reports the test numbers of the validation pick: 99 and 100 -> 99.500 ± 0.707.
    md = (tmp_path / "poisoned" / "table1.md").read_text()
    assert "| Approx. optimal weights (grid) | instance+depth | – / 0.75 / 0.25 | – | 99.500 ± 0.707 | 99.000 ± 0.000 |" in md


# ------------------------------------------------------------------------------------ controls
def test_fixed_learned_control_takes_each_seeds_final_learned_weights(tmp_path):
    exp = load_experiment(_scale(tmp_path))
    spec = {s.name: s for s in exp.specs}
    control, source = spec["fixed-learned-instance+depth"], spec["uncertainty-instance+depth"]
    assert control.source == source.name and spec["normalized-instance+depth"].weighting == {"method": "normalized"}
    assert [s.name for s in exp.specs].index(control.name) > [s.name for s in exp.specs].index(source.name)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="uncertainty-instance\\+depth seed 1"):
        training_config(exp, control, Path("/data"), 1, out)
    for seed, (wi, wd) in enumerate([(0.11, 0.72), (0.13, 0.69)]):
        _fake(out, source, seed, {INS: 3.0}, None, {"s_instance": 2.0, "w_instance": wi, "s_depth": 0.3, "w_depth": wd})
    for seed, weights in enumerate([{"instance": 0.11, "depth": 0.72}, {"instance": 0.13, "depth": 0.69}]):
        cfg = training_config(exp, control, Path("/data"), seed, out)
        assert cfg["weighting"] == {"method": "fixed", "weights": weights}
    # Before its source ran (checking every config up front) it gets placeholder weights.
    assert training_config(exp, control, Path("/data"), 0)["weighting"]["weights"] == {"instance": 1.0, "depth": 1.0}
    assert not [s for s in load_experiment(_scale(tmp_path, controls=[])).specs if s.method in ("fixed-learned", "normalized")]


# ------------------------------------------------------------------------------- the real thing
def test_tiny_study_trains_controls_after_their_source_and_scores_the_test_split(synth_root, tmp_path, capsys):
    from mtl_perception.data.synth import generate_dataset

    test_root = tmp_path / "synth_test"
    generate_dataset(test_root, train=0, val=4, height=64, width=128, seed=1)
    out, scale = tmp_path / "study", _scale(tmp_path)
    base = ["experiment", "table1", "--data", str(synth_root), "--scale", str(scale), "--out", str(out)]
    only = [a for n in ("uncertainty-*", "fixed-learned-*", "normalized-*") for a in ("--only", n)]

    # The validation split itself as the test split is refused before anything trains, and so is
    # a copy of it: a second synth root of the same seed.
    assert main([*base, "--test-data", str(synth_root), *only]) == 2
    assert "--test-data" in capsys.readouterr().err and not out.exists()
    copy_root = tmp_path / "same_seed"
    generate_dataset(copy_root, train=0, val=2, height=64, width=128, seed=0)
    assert main([*base, "--test-data", str(copy_root), *only]) == 2
    assert "is the same image as" in capsys.readouterr().err and not out.exists()
    # A control whose source has not run is skipped with the reason, not fatal for the others.
    assert main([*base, "--test-data", str(test_root), "--only", "fixed-learned-*"]) == 0
    assert capsys.readouterr().out.count("skipped, fixed-learned-instance+depth seed") == 2
    assert not (out / "runs" / "fixed-learned-instance+depth").exists()
    assert main([*base, "--test-data", str(test_root), *only]) == 0

    exp = load_experiment(scale)
    spec = {s.name: s for s in exp.specs}
    copied = []
    for seed in (0, 1):
        learned = json.loads((run_dir(out, spec["uncertainty-instance+depth"], seed) / RESULT_FILE).read_text())
        control = json.loads((run_dir(out, spec["fixed-learned-instance+depth"], seed) / RESULT_FILE).read_text())
        weights = control["config"]["weighting"]["weights"]
        copied.append(weights)
        assert weights == {t: learned["final"][f"w_{t}"] for t in ("instance", "depth")}
        assert control["final"]["w_instance"] == pytest.approx(weights["instance"])  # held fixed all run
        for result in (learned, control):
            test = result["test"]
            assert (test["data"], test["split"], test["model"]) == (str(test_root), "val", "final weights")
            assert {INS, DEP} <= test["metrics"].keys() and test["metrics"][INS] != result["metrics"][INS]
    assert copied[0] != copied[1]  # each seed copies its own source run, not seed 0's
    # The normalisation control's logged weights are 1 / (2 x the bias-corrected running mean of
    # its logged losses), momentum 0.99, recomputed here from train.csv.
    log = summary.read_log(run_dir(out, spec["normalized-instance+depth"], 1) / "train.csv")
    for task in ("instance", "depth"):
        losses = log[f"loss_{task}"]
        n = len(losses)
        mean = sum(0.01 * 0.99 ** (n - 1 - k) * loss for k, loss in enumerate(losses)) / (1 - 0.99 ** n)
        assert n == 4 and log[f"w_{task}"][-1] == pytest.approx(0.5 / mean, rel=1e-5)

    md = (out / "table1.md").read_text()
    assert "Control: uncertainty's final weights, fixed" in md and "vs loss normalisation |" in md
    saved = json.loads((out / "results.json").read_text())
    row = next(r for r in saved["comparisons"] if r["config"] == "uncertainty-instance+depth" and r["metric"] == DEP)
    assert row["fixed-learned"]["seeds"] == [0, 1] and row["fixed-learned"]["verdict"] in (BETTER, WORSE, WITHIN_NOISE)
    assert (out / "curves_instance_depth.png").read_bytes().startswith(PNG)  # val_every 2 of 4 steps: 2 points
    # No start-value study here: the weights figure shows the learned and normalised weights of
    # the task set that has them, not the fixed-learned control's constant ones.
    assert (out / "weights_over_training.png").read_bytes().startswith(PNG)
    assert saved["figures"].keys() == {"curves_instance_depth.png", "weights_over_training.png"}
    # A rerun skips the finished runs; another test split into the same --out is refused.
    capsys.readouterr()
    assert main([*base, "--test-data", str(test_root), *only]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 6
    other = tmp_path / "other_test"
    generate_dataset(other, train=0, val=2, height=64, width=128, seed=2)
    assert main([*base, "--test-data", str(other), *only]) == 2
    assert "was scored on the test split" in capsys.readouterr().err
    ranking = md.split("## Is the ranking still moving?")[1].split("##")[0]
    assert ranking.count("| 2 | ") == ranking.count("| 4 | ") == 2 and ranking.count("Order ") == 2  # two metrics
    assert "> fixed-learned (" in ranking or "| fixed-learned (" in ranking


def test_study_presets_are_three_seeds_uncapped_with_controls_and_curves():
    for scale in ("cpu", "gpu"):
        exp = load_experiment(scale)
        cfg = training_config(exp, exp.specs[0], Path("/data"), 0)
        assert exp.seeds == 3 and cfg["model"]["decoder"] == "skip_shared"
        assert (cfg["data"]["height"], cfg["data"]["width"]) == (128, 256)
        assert 2 <= cfg["optim"]["steps"] // cfg["train"]["val_every"] <= 10  # a learning curve of a few points
        methods = {s.method for s in exp.specs}
        assert {"single", "equal", "grid", "uncertainty", "fixed-learned", "normalized"} <= methods
    assert load_experiment("gpu").base["optim"]["steps"] > load_experiment("cpu").base["optim"]["steps"]

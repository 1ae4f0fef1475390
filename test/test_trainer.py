"""The trainer: it learns, resumes exactly, stops cleanly, refuses NaN, and matches itself under DDP.

Every run is tiny (ResNet-18 with 32-channel heads, 32x64 images, a few steps, no DataLoader
workers) on the session's synthetic dataset, and uses deterministic kernels so that
"the same weights" can mean ``torch.equal``.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mtl_perception.cli import main
from mtl_perception.config import apply_overrides, load_config
from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model.checkpoint import load_model, read_checkpoint
from mtl_perception_training import checkpoint_io, trainer as trainer_module
from mtl_perception_training.optim import build_optimizer
from mtl_perception_training.release import make_release
from mtl_perception_training.schedule import build_poly_schedule
from mtl_perception_training.train_config import resolve_train_config
from mtl_perception_training.trainer import Trainer, TrainingDiverged
from mtl_perception_training.weighting import build_weighting

REPO = Path(__file__).resolve().parents[1]
TASKS = ("semantic", "instance", "depth")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core CI machine OpenMP's spinning threads make
    contended runs several times slower than a single thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(root: Path, *overrides: str) -> dict:
    cfg = {
        "data": {
            "root": str(root),
            "height": 32,
            "width": 64,
            "workers": 0,
            "batch_size": 4,
            "augment": {"scale": [0.8, 1.2], "flip": True, "color_jitter": 0.2},
        },
        "model": {
            "backbone": "resnet18",
            "output_stride": 16,
            "aspp_channels": 32,
            "decoder_channels": 32,
            "disparity_bias": 2.0,
        },
        "weighting": {"method": "uncertainty", "form": "paper", "lr": 0.1},
        "optim": {"name": "adam", "lr": 1e-3, "steps": 40},
        "train": {"log_every": 5, "val_every": 20, "ckpt_every": 10, "deterministic": True, "device": "cpu"},
    }
    return apply_overrides(cfg, overrides)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def fit(cfg: dict, out: Path, **kwargs):
    return Trainer(resolve_train_config(cfg), out, **kwargs).fit()


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------- learning
def test_training_lowers_every_task_loss_and_learns_a_weight_per_task(synth_root, tmp_path):
    out = tmp_path / "run"
    result = fit(tiny_config(synth_root), out)
    assert result.step == 40

    rows = read_csv(out / "train.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    for task in TASKS:
        first = sum(float(r[f"loss_{task}"]) for r in rows[:8]) / 8
        last = sum(float(r[f"loss_{task}"]) for r in rows[-8:]) / 8
        assert last < first, f"{task} loss did not go down: {first:.4f} -> {last:.4f}"
    # Learned log-variances part ways: tasks of different scale get different weights.
    s = {t: float(rows[-1][f"s_{t}"]) for t in TASKS}
    assert min(abs(s[a] - s[b]) for a, b in [("semantic", "instance"), ("semantic", "depth"), ("instance", "depth")]) > 0.1, s
    for t in TASKS:  # the logged effective weight is the factor in front of the loss
        factor = 1.0 if t == "semantic" else 0.5
        assert float(rows[-1][f"w_{t}"]) == pytest.approx(factor * torch.exp(torch.tensor(-s[t])).item(), rel=1e-5)
    assert {"lr", "loss", "images_per_s", "epoch"} <= rows[0].keys()
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # poly decay

    val = read_csv(out / "val.csv")
    assert [int(r["step"]) for r in val] == [20, 40]
    assert {"miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px", "iou_road"} <= val[0].keys()
    assert list((out / "tb").glob("events.out.tfevents.*"))

    # best.pt and last.pt rebuild the model from the file alone; the checkpoint loads weights-only.
    best = read_checkpoint(out / "best.pt")
    assert best["best"]["metric"] == "miou" and best["step"] in (20, 40)
    model, config = load_model(out / "last.pt")
    assert config["model"]["aspp_channels"] == 32 and model.tasks == TASKS
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["step"] == 40 and len(last["rng"]) == 1


# ------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("recipe", [(), ("optim.warmup_steps=2", "train.ema_decay=0.9", "loss.semantic_hard_pixels=0.3")],
                         ids=["paper", "warmup_ema_hard_pixels"])
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(synth_root, tmp_path, recipe):
    # Batch 2 of 8 images: 4 steps per epoch, so stopping after step 3 resumes mid-epoch.
    cfg = tiny_config(synth_root, "data.batch_size=2", "optim.steps=6", "train.val_every=0", "train.ckpt_every=100", *recipe)
    fit(cfg, tmp_path / "straight")
    paused = fit(cfg, tmp_path / "resumed", stop_after=3)
    assert paused.step == 3
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["step"] == 3
    fit(cfg, tmp_path / "resumed", resume=True)

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    assert_same_state(a["model"], b["model"])
    assert_same_state(a["weighting"], b["weighting"])
    if recipe:  # the weight average is resumed too
        assert_same_state(a["ema"], b["ema"])
    # The resumed log holds each step once, with the uninterrupted run's losses.
    def logged(run: str) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in read_csv(tmp_path / run / "train.csv")]

    assert logged("resumed") == logged("straight")


def test_resume_refuses_a_changed_config(synth_root, tmp_path):
    cfg = tiny_config(synth_root, "optim.steps=2", "train.val_every=0")
    fit(cfg, tmp_path / "run", stop_after=1)
    with pytest.raises(ConfigError, match="optim.lr"):
        fit(apply_overrides(cfg, ["optim.lr=0.5"]), tmp_path / "run", resume=True)


def test_init_from_starts_with_the_given_weights_and_a_fresh_schedule(synth_root, tmp_path):
    cfg = tiny_config(synth_root, "optim.steps=3", "train.val_every=0")
    fit(cfg, tmp_path / "first")
    first = torch.load(tmp_path / "first" / "last.pt", weights_only=True)
    # Zero steps of training on: the run saves exactly the weights it started from.
    on = apply_overrides(cfg, [f"train.init_from={tmp_path / 'first' / 'last.pt'}", "optim.steps=1", "optim.lr=1.0e-12"])
    on["weighting"]["lr"] = 1e-12
    fit(on, tmp_path / "on")
    second = torch.load(tmp_path / "on" / "last.pt", weights_only=True)
    for key, value in first["model"].items():
        if value.is_floating_point() and "running" not in key:  # BatchNorm statistics move in train mode
            torch.testing.assert_close(second["model"][key], value, rtol=0, atol=1e-6, msg=key)
    torch.testing.assert_close(second["weighting"]["log_vars.depth"], first["weighting"]["log_vars.depth"], rtol=0, atol=1e-6)
    assert second["step"] == 1 and second["optimizer"]["state"][0]["step"] == 1  # fresh optimiser
    # From the release file of that run: the learned task weights come with it too.
    released = tmp_path / "release.pt"
    make_release(tmp_path / "first" / "last.pt", released)
    on["train"]["init_from"] = str(released)
    fit(on, tmp_path / "from_release")
    third = torch.load(tmp_path / "from_release" / "last.pt", weights_only=True)
    for key, value in first["weighting"].items():
        torch.testing.assert_close(third["weighting"][key], value, rtol=0, atol=1e-6, msg=key)

    # A run with a head the file lacks starts that head from scratch; another architecture is refused.
    two = tiny_config(synth_root, "optim.steps=1", "train.val_every=0", "model.tasks=[semantic,depth]")
    fit(two, tmp_path / "two")
    fit(apply_overrides(cfg, [f"train.init_from={tmp_path / 'two' / 'last.pt'}", "optim.steps=1"]), tmp_path / "three")
    wide = apply_overrides(cfg, [f"train.init_from={tmp_path / 'two' / 'last.pt'}", "model.aspp_channels=64"])
    with pytest.raises(UserError, match="different architecture"):
        fit(wide, tmp_path / "wide")


@pytest.mark.parametrize("decoder", ["skip", "skip_shared"])
def test_init_from_a_paper_model_into_a_skip_decoder(synth_root, tmp_path, decoder):
    """A skip-decoder run from a paper-decoder file: backbone and ASPP come from the file, every
    decoder layer (skip fusions and heads) starts from its fresh initialisation."""
    cfg = tiny_config(synth_root, "optim.steps=1", "train.val_every=0", "optim.lr=1.0e-12")
    fit(cfg, tmp_path / "paper")
    paper = torch.load(tmp_path / "paper" / "last.pt", weights_only=True)["model"]
    skip = apply_overrides(cfg, [f"train.init_from={tmp_path / 'paper' / 'last.pt'}", f"model.decoder={decoder}"])
    fit(skip, tmp_path / "skip")
    fresh = apply_overrides(cfg, [f"model.decoder={decoder}"])  # same seed, no init_from
    fit(fresh, tmp_path / "fresh")
    got = torch.load(tmp_path / "skip" / "last.pt", weights_only=True)["model"]
    scratch = torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)["model"]
    encoder = [k for k in got if k.startswith(("backbone.", "aspp.")) and got[k].is_floating_point() and "running" not in k]
    assert encoder and all(k in paper for k in encoder)
    for key in encoder:
        torch.testing.assert_close(got[key], paper[key], rtol=0, atol=1e-6, msg=key)
    decoders = [k for k in got if k.startswith(("decoders.", "fusion.")) and got[k].is_floating_point() and "running" not in k]
    assert any(".fusion." in k or k.startswith("fusion.") for k in decoders)
    for key in decoders:
        torch.testing.assert_close(got[key], scratch[key], rtol=0, atol=1e-6, msg=key)


def test_init_from_the_shipped_model_into_a_skip_decoder(synth_root, tmp_path):
    """The shipped default model's encoder starts a skip-decoder model of its architecture."""
    from conftest import SHIPPED_MODEL

    if not SHIPPED_MODEL.is_file():
        pytest.skip("no shipped model in this checkout")
    shipped, shipped_cfg = load_model(SHIPPED_MODEL)
    model_keys = {k: v for k, v in shipped_cfg["model"].items() if k != "backbone_weights"}
    cfg = tiny_config(synth_root, "optim.steps=1", "train.val_every=0", "optim.lr=1.0e-12")
    cfg["model"] = {**model_keys, "decoder": "skip", "decoder_channels": 32}
    cfg["weighting"]["lr"] = 1e-12
    cfg["train"]["init_from"] = str(SHIPPED_MODEL)
    fit(cfg, tmp_path / "detail")
    got = torch.load(tmp_path / "detail" / "last.pt", weights_only=True)["model"]
    expected = shipped.state_dict()
    encoder = [k for k in expected if k.startswith(("backbone.", "aspp.")) and expected[k].is_floating_point() and "running" not in k]
    for key in encoder:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)
    assert "decoders.semantic.fusion.fuse.4.0.weight" in got


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    state = checkpoint_io.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    checkpoint_io.save_checkpoint(tmp_path / "c.pt", {"model": {}, "config": {"model": {}}, "rng": [state]})
    random.random(), np.random.rand(), torch.rand(3)  # move every generator on
    checkpoint_io.restore_rng_state(read_checkpoint(tmp_path / "c.pt")["rng"][0])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


# ------------------------------------------------------------------------ stopping and NaN
def test_sigterm_saves_last_checkpoint_and_exits_143(synth_root, tmp_path):
    cfg = tiny_config(synth_root, "optim.steps=10000", "train.val_every=0", "train.ckpt_every=10000")
    config = write_config(tmp_path / "cfg.yaml", cfg)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtl_perception.cli", "train", "--config", str(config), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "train.csv").is_file() and len(read_csv(out / "train.csv")) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM" in err and "--resume" in err
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step == len(read_csv(out / "train.csv")) >= 2
    # The run continues from there, its config taken from the checkpoint.
    assert main(["train", "--resume", "--out", str(out), "--stop-after", str(step + 1)]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == step + 1


def test_nan_loss_stops_and_leaves_the_last_good_checkpoint(synth_root, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real_losses = trainer_module.task_losses

    def losses_nan_at_step_4(outputs, batch, tasks, settings=None):
        calls["n"] += 1
        losses = real_losses(outputs, batch, tasks, settings)
        if calls["n"] == 4:
            losses["depth"] = losses["depth"] * float("nan")
        return losses

    monkeypatch.setattr(trainer_module, "task_losses", losses_nan_at_step_4)
    cfg = tiny_config(synth_root, "optim.steps=10", "train.val_every=0", "train.ckpt_every=2")
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"not finite at step 4 .*last\.pt \(step 2\)"):
        fit(cfg, out)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())

    # Through the command: one line on stderr, exit status 2.
    calls["n"] = 0
    config = write_config(tmp_path / "cfg.yaml", cfg)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "cli")]) == 2
    err_lines = [l for l in capsys.readouterr().err.splitlines() if "error:" in l]
    assert len(err_lines) == 1 and "not finite" in err_lines[0]


# --------------------------------------------------------------------------------------- DDP
# Both runs compute in float64 and without dropout. Dropout draws differ between one process
# with batch B and two with B/2. float32 rounding differs too (BatchNorm over B/2 images, conv
# kernels chosen per batch size), and BatchNorm's backward on such tiny batches amplifies it
# about 1e4-fold per step, by an amount that depends on the CPU (3 steps: within 1e-4 on one CI
# machine, 6e-4 apart on an AMD EPYC one). In float64 the same rounding stays far below any
# real difference, so the comparison checks the arithmetic of data parallelism (sampler
# sharding, synchronised BatchNorm, gradient averaging, the masked-mean rescaling, rank-0
# checkpoints), all of it the trainer's own code path.
_FLOAT64_NO_DROPOUT = """
import torch
import mtl_perception.evaluation.evaluator as evaluator
import mtl_perception_training.trainer as trainer

torch.set_default_dtype(torch.float64)
torch.nn.Dropout.forward = lambda self, x: x
_batch_to_device = evaluator.batch_to_device


def batch_to_float64(batch, device):
    moved = _batch_to_device(batch, device)
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in moved.items()}


evaluator.batch_to_device = trainer.batch_to_device = batch_to_float64
"""
_DDP_MAIN = _FLOAT64_NO_DROPOUT + """
import sys
from mtl_perception.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_cpu_processes_match_one_process_on_the_same_global_batch(synth_root, tmp_path):
    cfg = tiny_config(
        synth_root, "optim.name=sgd", "optim.lr=0.002", "weighting.lr=null", "optim.steps=3", "data.augment=null",
        "train.val_every=3",
    )
    script = tmp_path / "train_float64_no_dropout.py"
    script.write_text(_DDP_MAIN)
    config = write_config(tmp_path / "cfg.yaml", cfg)
    for name, nproc in [("one", 1), ("two", 2)]:
        run = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(script),
             "train", "--config", str(config), "--out", str(tmp_path / name)],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO, timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]

    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3 and len(a["rng"]) == 1 and len(b["rng"]) == 2
    assert a["model"]["backbone.conv1.weight"].dtype == torch.float64
    # The losses themselves are float32 (mtl_perception_training/losses.py casts for AMP): measured 5e-9 apart
    # after 3 steps; a real flaw (a wrong rescaling, unsynchronised BatchNorm) moves them >1e-5.
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, atol=1e-7, rtol=0, msg=lambda m, key=key: f"{key}: {m}")
    for key, value in a["weighting"].items():
        torch.testing.assert_close(b["weighting"][key], value, atol=1e-9, rtol=0)
    # Validation is sharded over the processes and summed: the same metrics.
    assert b["metrics"]["miou"] == pytest.approx(a["metrics"]["miou"], abs=1e-9)
    assert b["metrics"]["disparity_err_px"] == pytest.approx(a["metrics"]["disparity_err_px"], rel=1e-9)


# ------------------------------------------------------------------- optimiser and schedule
def test_poly_schedule_and_parameter_groups():
    from mtl_perception.model import build_model

    model = build_model({"backbone": "resnet18", "output_stride": 16, "aspp_channels": 8, "decoder_channels": 8})
    weighting = build_weighting({"method": "uncertainty", "lr": 0.05}, model.tasks)
    opt = build_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}, model, weighting)
    groups = {g.get("name", "weighting"): g for g in opt.param_groups}
    assert groups["network"]["weight_decay"] == 1e-4
    assert groups["network_no_decay"]["weight_decay"] == 0.0 and all(p.ndim <= 1 for p in groups["network_no_decay"]["params"])
    assert groups["weighting"]["weight_decay"] == 0.0 and groups["weighting"]["lr"] == 0.05
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters())) + 3

    sched = build_poly_schedule(opt, steps=10, power=0.9)
    for step in range(1, 6):
        opt.step()
        sched.step()
        assert groups["network"]["lr"] == pytest.approx(0.1 * (1 - step / 10) ** 0.9)
        assert groups["weighting"]["lr"] == pytest.approx(0.05 * (1 - step / 10) ** 0.9)


def test_warm_up_ramps_to_the_rate_then_decays_to_zero():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_poly_schedule(opt, steps=10, power=1.0, warmup_steps=4)
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(10):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.001)  # 1% of the rate at the first step
    assert rates[:5] == sorted(rates[:5]) and rates[4] == pytest.approx(0.1)  # up to the rate at the warm-up's end
    assert rates[4:] == sorted(rates[4:], reverse=True) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert rates[7] == pytest.approx(0.1 * (1 - 3 / 6))  # poly (power 1) over the 6 steps left


def test_weight_averaging_is_what_validation_scores_and_best_pt_keeps(synth_root, tmp_path):
    cfg = tiny_config(synth_root, "optim.steps=4", "train.val_every=4", "train.ema_decay=0.5", "optim.lr=0.01")
    fit(cfg, tmp_path / "run")
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    average = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert_same_state(best["model"], average)
    weight = "backbone.conv1.weight"
    assert not torch.equal(last["model"][weight], average[weight])  # the raw weights moved on past the average


# ------------------------------------------------------------------------ configs and CLI
def test_shipped_configs_resolve():
    synthetic = resolve_train_config(load_config(REPO / "config/train/synthetic.yaml"))
    assert synthetic["model"]["backbone"] == "resnet18" and synthetic["model"]["output_stride"] == 16
    assert (synthetic["data"]["height"], synthetic["data"]["width"]) == (128, 256)
    assert synthetic["optim"]["name"] == "adam" and synthetic["weighting"]["method"] == "uncertainty"
    paper = resolve_train_config(load_config(REPO / "config/train/tiny_cityscapes.yaml"))
    assert paper["model"]["backbone"] == "resnet101" and paper["model"]["output_stride"] == 8
    assert (paper["data"]["height"], paper["data"]["width"]) == (128, 256)
    assert paper["optim"]["steps"] == 50000 and paper["optim"]["name"] == "sgd"
    assert paper["weighting"] == {"method": "uncertainty", "form": "paper", "init": 0.0}
    shipped = resolve_train_config(load_config(REPO / "config/train/skip_decoder.yaml"))  # the shipped model's recipe
    assert shipped["model"]["decoder"] == "skip_shared" and shipped["loss"]["semantic_hard_pixels"] == 0.25
    assert shipped["train"]["ema_decay"] > 0 and 0 < shipped["optim"]["warmup_steps"] < shipped["optim"]["steps"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "does/not/exist.yaml", "--out", "{out}"], "config file not found"),
        (["--config", "{cfg}", "--set", "optim.lr", "--out", "{out}"], "key=value"),
        (["--config", "{cfg}", "--set", "train.colour=red", "--out", "{out}"], "train: unknown key"),
        (["--config", "{cfg}", "--set", "optim.lr=-1", "--out", "{out}"], "optim.lr must be"),
        (["--config", "{cfg}", "--set", "model.backbone=resnet7", "--out", "{out}"], "model.backbone"),
        (["--config", "{cfg}", "--set", "data.augment.rotate=5", "--out", "{out}"], "augment: unknown key"),
        (["--config", "{cfg}", "--set", "weighting.intit=1", "--out", "{out}"], "weighting"),
        (["--config", "{cfg}", "--set", "data.root=/no/such/dir", "--out", "{out}"], "/no/such/dir"),
        (["--config", "{cfg}", "--resume", "--out", "{out}"], "no checkpoint to resume"),
        (["--resume"], "--resume without --config needs --out"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(args, message, tmp_path, capsys):
    cfg = write_config(tmp_path / "cfg.yaml", tiny_config(tmp_path))
    args = [a.format(cfg=cfg, out=tmp_path / "run") for a in args]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtl-perception train: error:") and message in err[0], err

"""Issue 16, command-line half: a user's mistake or a damaged input ends in one line and exit 2.

Every case goes through the real entry point (``mtl_perception.cli.main``, or the installed
command in a subprocess where process exit itself is what broke), with real files: damaged
PNGs, ONNX exports, torch checkpoints, a real malicious pickle, rosbag2 bags.
"""
from __future__ import annotations

import errno
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from inference_helpers import shared_checkpoint, shared_onnx
from mtl_perception.cli import main
from mtl_perception.data.loading import original_message
from mtl_perception.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mtl_perception.cli"]


def one_line_error(capsys, *needles: str) -> str:
    """The single stderr line of a refused command, checked to contain every needle."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "step/s" not in line]
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder nobody may create files in: a chmod 555 folder, or for root (whom permissions do
    not stop) sysfs, which refuses new files to everyone."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def damaged_copy(root: Path, dest: Path, split: str) -> Path:
    shutil.copytree(root, dest)
    image = sorted((dest / "leftImg8bit" / split).rglob("*.png"))[0]
    image.write_bytes(image.read_bytes()[:100])  # a truncated PNG
    return dest


def tiny_train_config(root: Path, path: Path, **data) -> Path:
    cfg = {
        "data": {"root": str(root), "height": 32, "width": 64, "workers": 0, "batch_size": 4, **data},
        "model": {"backbone": "resnet18", "output_stride": 16, "aspp_channels": 16, "decoder_channels": 16},
        "optim": {"name": "adam", "lr": 1e-3, "steps": 4},
        "train": {"log_every": 1, "val_every": 2, "ckpt_every": 2, "device": "cpu"},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


# ----------------------------------------------------------------- broken 2: damaged samples
@pytest.mark.parametrize("split", ["train", "val"])
def test_training_with_workers_ends_at_once_on_a_damaged_sample(split, synth_root, tmp_path):
    """Before: the error was printed with the worker's traceback, then the process hung in
    multiprocessing's exit handler waiting for workers that ignore SIGTERM."""
    root = damaged_copy(synth_root, tmp_path / "data", split)
    config = tiny_train_config(root, tmp_path / "cfg.yaml", workers=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run(
            [*CLI, "train", "--config", str(config), "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=240, env=env, start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"train hung after a damaged {split} sample: {exc.stderr}")
    assert out.returncode == 2, out.stderr
    err = [line for line in out.stderr.splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and "cannot decode PNG" in err[0] and "Traceback" not in out.stderr, out.stderr


def test_evaluate_with_workers_reports_a_damaged_sample_in_one_line(synth_root, tmp_path, tmp_path_factory, capsys):
    root = damaged_copy(synth_root, tmp_path / "data", "val")
    model = shared_checkpoint(tmp_path_factory)
    args = ["evaluate", "--data", str(root), "--model", str(model), "--workers", "2", "--device", "cpu"]
    assert main(args) == 2
    one_line_error(capsys, "cannot decode PNG", str(root))


def test_original_message_recovers_the_workers_line():
    wrapped = DatasetError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nmtl_perception.errors.DatasetError: missing file: a.png\n'
    )
    assert original_message(wrapped) == "missing file: a.png"
    assert original_message(DatasetError("plain")) == "plain"


# --------------------------------------------------------- broken 3: fixed-batch ONNX evaluate
def test_evaluate_runs_a_fixed_batch_onnx_at_the_default_batch_size(synth_root, tmp_path, tmp_path_factory, capsys):
    """Before: onnxruntime's 'Got invalid dimensions for input: image ... Got: 4 Expected: 1' traceback."""
    fixed = shared_onnx(tmp_path_factory, dynamic=False)
    checkpoint = shared_checkpoint(tmp_path_factory)
    common = ["evaluate", "--data", str(synth_root), "--device", "cpu", "--workers", "0", "--height", "64", "--width", "128"]
    assert main([*common, "--model", str(fixed), "--backend", "onnxruntime", "--json", str(tmp_path / "onnx.json")]) == 0
    assert main([*common, "--model", str(checkpoint), "--backend", "torch", "--json", str(tmp_path / "torch.json")]) == 0
    capsys.readouterr()
    onnx_metrics = yaml.safe_load((tmp_path / "onnx.json").read_text())
    torch_metrics = yaml.safe_load((tmp_path / "torch.json").read_text())
    assert onnx_metrics["images"] == 4
    for key in ("miou", "instance_err_px", "disparity_err_px"):
        assert math.isclose(onnx_metrics[key], torch_metrics[key], rel_tol=1e-3, abs_tol=1e-4), key


# ------------------------------------------------------------ broken 6: one line, not a traceback
def test_onnx_metadata_that_is_not_json_is_one_line(synth_root, tmp_path, tmp_path_factory, capsys):
    import onnx

    model = onnx.load(str(shared_onnx(tmp_path_factory, dynamic=True)))
    for prop in model.metadata_props:
        if prop.key == "mtl_perception.tasks":
            prop.value = "[semantic, instance"  # hand-edited, not JSON
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    assert main(["evaluate", "--data", str(synth_root), "--model", str(path), "--backend", "onnxruntime", "--device", "cpu"]) == 2
    one_line_error(capsys, "not valid JSON", "mtl_perception.tasks")


def test_train_out_on_a_file_or_unwritable_folder_is_refused(synth_root, tmp_path, unwritable_folder, capsys):
    config = tiny_train_config(synth_root, tmp_path / "cfg.yaml")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["train", "--config", str(config), "--out", str(a_file)]) == 2
    one_line_error(capsys, "--out", "is a file")
    assert main(["train", "--config", str(config), "--out", str(unwritable_folder / "run")]) == 2
    one_line_error(capsys, "--out", "cannot write")


def test_train_config_that_is_a_binary_file_is_one_line(tmp_path, capsys):
    binary = tmp_path / "model.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["train", "--config", str(binary), "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "not a text file")


def test_resume_from_an_empty_or_not_resumable_last_pt(synth_root, tmp_path, capsys):
    config = tiny_train_config(synth_root, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    assert main(["train", "--config", str(config), "--out", str(run), "--resume"]) == 2
    one_line_error(capsys, "empty")
    trained = tmp_path / "trained"
    assert main(["train", "--config", str(config), "--out", str(trained), "--stop-after", "2"]) == 0
    shutil.copy(trained / "best.pt", run / "last.pt")  # weights, config, metrics: no optimiser state
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume"]) == 2
    one_line_error(capsys, "not resumable", "train.init_from")


def _refuse_work(*_args, **_kwargs):
    raise AssertionError("the work started before the output path was checked")


@pytest.mark.parametrize(
    "command, work",
    [
        ("evaluate --data {data} --model {ckpt} --json {out}", "mtl_perception.inference.factory.create_backend"),
        ("release --checkpoint {ckpt} --out {out}", "mtl_perception_training.release.make_release"),
        ("export --checkpoint {ckpt} --onnx {out}", "mtl_perception_training.export.export"),
        ("bag make --data {data} --out {out}", "mtl_perception.bag.make.make_bag"),
        ("bag eval --bag {data} --model {ckpt} --report {out}", "mtl_perception.bag.offline_eval.evaluate_offline"),
        ("bag eval --bag {data} --model {ckpt} --out {out}", "mtl_perception.bag.offline_eval.evaluate_offline"),
    ],
)
@pytest.mark.parametrize("where", ["unwritable", "under_a_file"])
def test_unwritable_outputs_are_refused_before_the_work(
    command, work, where, synth_root, tmp_path, tmp_path_factory, unwritable_folder, monkeypatch, capsys
):
    module, name = work.rsplit(".", 1)
    monkeypatch.setattr(__import__(module, fromlist=[name]), name, _refuse_work)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    out = (unwritable_folder if where == "unwritable" else blocker) / "output"
    argv = command.format(data=synth_root, ckpt=shared_checkpoint(tmp_path_factory), out=out).split()
    assert main(argv) == 2
    one_line_error(capsys, str(out))


# ------------------------------------------------------------------ broken 7: export's camera
@pytest.mark.parametrize("flag, value", [("--fx", "-5"), ("--baseline", "0"), ("--fx", "nan"), ("--baseline", "inf")])
def test_export_refuses_an_impossible_training_camera(flag, value, tmp_path, tmp_path_factory, monkeypatch, capsys):
    import mtl_perception_training.export as export_module

    monkeypatch.setattr(export_module, "export", _refuse_work)
    argv = ["export", "--checkpoint", str(shared_checkpoint(tmp_path_factory)), "--onnx", str(tmp_path / "m.onnx"),
            "--width", "128", "--height", "64", flag, value]
    assert main(argv) == 2
    one_line_error(capsys, flag, "finite positive")


# -------------------------------------------------------- weak: hostile and corrupt checkpoints
class _Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint does under a plain torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "legacy_pickle"])
@pytest.mark.parametrize("command", ["evaluate", "release", "export", "resume"])
def test_a_malicious_checkpoint_is_refused_and_never_runs(container, command, synth_root, tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "run" / "last.pt"
    evil.parent.mkdir()
    payload = {"config": {"model": {}}, "model": _Payload(marker)}
    if container == "torch_zip":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    argv = {
        "evaluate": ["evaluate", "--data", str(synth_root), "--model", str(evil), "--device", "cpu"],
        "release": ["release", "--checkpoint", str(evil), "--out", str(tmp_path / "rel.pt")],
        "export": ["export", "--checkpoint", str(evil), "--onnx", str(tmp_path / "m.onnx")],
        "resume": ["train", "--out", str(evil.parent), "--resume"],
    }[command]
    assert main(argv) == 2
    line = one_line_error(capsys, "refused: unsafe content")
    assert "weights_only=False" not in line
    assert not marker.exists()


def test_a_corrupt_checkpoint_is_one_line(tmp_path, tmp_path_factory, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(shared_checkpoint(tmp_path_factory).read_bytes()[:5000])
    assert main(["release", "--checkpoint", str(corrupt), "--out", str(tmp_path / "rel.pt")]) == 2
    one_line_error(capsys, "not a checkpoint or corrupt")


# ------------------------------------------------------------ weak: disk full, stale temporaries
def test_a_full_disk_keeps_last_pt_and_says_so_and_resume_removes_stale_temporaries(synth_root, tmp_path, monkeypatch, capsys):
    config = tiny_train_config(synth_root, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--stop-after", "2"]) == 0
    before = (run / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk_save(obj, f, *args, **kwargs):
        if Path(f).name.startswith(".last.pt."):
            Path(f).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_save)
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--out", str(run), "--resume"]) == 2
    one_line_error(capsys, "no space left writing last.pt")
    assert (run / "last.pt").read_bytes() == before
    assert not list(run.glob(".last.pt.*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)

    stale = run / ".last.pt.k1ll3d.tmp"  # what a write killed by SIGKILL leaves behind
    stale.write_bytes(b"partial")
    assert main(["train", "--config", str(config), "--out", str(run), "--resume"]) == 0
    assert not stale.exists()
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4


# --------------------------------------------------------------------- weak: NaN model outputs
def test_evaluate_fails_on_a_model_whose_outputs_are_nan(synth_root, tmp_path, tmp_path_factory, capsys):
    ckpt = torch.load(shared_checkpoint(tmp_path_factory), weights_only=True)
    ckpt["model"] = {k: torch.full_like(v, math.nan) if k.startswith("decoders.depth") and v.is_floating_point() else v
                     for k, v in ckpt["model"].items()}
    broken = tmp_path / "nan.pt"
    torch.save(ckpt, broken)
    assert main(["evaluate", "--data", str(synth_root), "--model", str(broken), "--device", "cpu", "--workers", "0"]) == 2
    one_line_error(capsys, "depth", "not finite")


# -------------------------------------------------------------- weak: bag with an empty image topic
def test_bag_eval_of_an_image_topic_without_messages_fails(tmp_path, tmp_path_factory, capsys):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from mtl_perception.bag import messages

    bag = tmp_path / "empty_bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/camera/image", messages.IMAGE, typestore=messages.TYPESTORE)
    argv = ["bag", "eval", "--bag", str(bag), "--model", str(shared_checkpoint(tmp_path_factory)), "--device", "cpu"]
    assert main(argv) == 2
    one_line_error(capsys, "no usable image on /camera/image")

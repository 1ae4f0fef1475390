"""`mtl-perception release`: compact (int8 / fp16) weights that load back into the same network."""
from __future__ import annotations

import stat

import torch

from mtl_perception.cli import main
from mtl_perception.model import build_model
from mtl_perception.model.checkpoint import load_model
from mtl_perception.model.compact import compact_state_dict, expand_state_dict


def test_int8_round_trip_error_is_within_half_a_quantisation_step():
    torch.manual_seed(0)
    weight = torch.randn(8, 64, 3, 3)
    packed = compact_state_dict({"w": weight, "b": torch.randn(8), "n": torch.tensor(3)})
    assert packed["w::int8"].dtype == torch.int8 and packed["b"].dtype == torch.float16
    restored = expand_state_dict(packed)
    step = weight.abs().reshape(8, -1).amax(1) / 127
    assert ((restored["w"] - weight).abs().reshape(8, -1).amax(1) <= step / 2 + 1e-7).all()
    assert restored["n"].item() == 3 and restored["b"].dtype == torch.float32


def test_release_file_is_small_loads_and_predicts_like_the_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = {"backbone": "resnet18", "output_stride": 16, "aspp_channels": 32, "decoder_channels": 32}
    model = build_model(cfg).eval()
    ckpt = tmp_path / "last.pt"
    weighting = {"log_vars.semantic": torch.tensor(-0.3), "log_vars.instance": torch.tensor(1.4)}
    torch.save({"config": {"model": cfg}, "model": model.state_dict(), "optimizer": {}, "step": 7, "weighting": weighting}, ckpt)
    out = tmp_path / "release.pt"
    assert main(["release", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert "int8 weights, step 7" in capsys.readouterr().out
    assert out.stat().st_size < 0.35 * ckpt.stat().st_size
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by the node's user, not only the owner
    # The learned task weights travel with it (train.init_from carries them over); the optimiser does not.
    kept = torch.load(out, weights_only=True)
    assert kept["weighting"] == weighting and "optimizer" not in kept

    released, _ = load_model(out)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        ref, got = model(x), released(x)
    for task in ref:
        scale = ref[task].abs().max()
        assert (got[task] - ref[task]).abs().max() < 0.1 * scale, task


def test_release_refuses_to_overwrite_the_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x")
    assert main(["release", "--checkpoint", str(ckpt), "--out", str(ckpt)]) == 2
    assert "must differ" in capsys.readouterr().err

"""The network: torchvision weight compatibility, dilation, shapes, config errors, checkpoints."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model import build_model
from mtl_perception.model.checkpoint import load_model
from mtl_perception.model.resnet import build_resnet
from mtl_perception.model.tasks import TASKS

TINY = {"backbone": "resnet18", "output_stride": 16, "aspp_channels": 16, "decoder_channels": 16}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """On the small shared CI machine, two intra-op threads competing with other processes made
    these tiny convolutions 10-20x slower than one thread; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torchvision_resnet_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``torchvision.models.<name>().state_dict()``, written from torchvision's
    architecture (not from our module), so a naming or shape drift in our ResNet fails."""
    layers = {
        "resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)
    }[name]
    bottleneck = name in ("resnet50", "resnet101")
    expansion = 4 if bottleneck else 1
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
                shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                bn(f"{p}.bn3", planes * 4)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
            if b == 0 and (li > 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (1000, 512 * expansion)
    shapes["fc.bias"] = (1000,)
    return shapes


def fake_torchvision_state(name: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        k: torch.tensor(7, dtype=torch.long) if k.endswith("num_batches_tracked") else torch.randn(s, generator=gen)
        for k, s in torchvision_resnet_shapes(name).items()
    }


# Published sizes of torchvision's ImageNet ResNets (state-dict entries, parameters): they check
# the reference above, which in turn checks our model.
@pytest.mark.parametrize(
    "name, entries, params",
    [
        ("resnet18", 122, 11_689_512),
        ("resnet34", 218, 21_797_672),
        ("resnet50", 320, 25_557_032),
        ("resnet101", 626, 44_549_160),
    ],
)
def test_reference_matches_published_torchvision_sizes(name, entries, params):
    shapes = torchvision_resnet_shapes(name)
    assert len(shapes) == entries
    assert sum(math.prod(s) for k, s in shapes.items() if "running" not in k and "num_batches" not in k) == params


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_state_dict_loads_strictly(name, tmp_path):
    state = fake_torchvision_state(name)
    classifier = build_resnet(name, num_classes=1000)  # with fc: the whole dict, strictly
    classifier.load_state_dict(state, strict=True)
    assert {k: tuple(v.shape) for k, v in classifier.state_dict().items()} == torchvision_resnet_shapes(name)

    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    model = build_model({**TINY, "backbone": name, "backbone_weights": str(path)})
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    for key in ("conv1.weight", "layer4.1.bn2.running_var", "layer3.0.downsample.0.weight"):
        assert torch.equal(loaded[key], state[key])


def test_backbone_weights_errors(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError, match="not found.*nope.pth"):
        build_model({**TINY, "backbone_weights": str(missing)})

    wrong = tmp_path / "r50.pth"
    torch.save(fake_torchvision_state("resnet50"), wrong)
    with pytest.raises(UserError, match=r"r50.pth does not match a torchvision resnet18: \d+ missing"):
        build_model({**TINY, "backbone_weights": str(wrong)})

    reshaped = fake_torchvision_state("resnet18")
    reshaped["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(reshaped, bad_shape)
    with pytest.raises(UserError, match="(?s)bad_shape.pth does not fit resnet18.*conv1.weight"):
        build_model({**TINY, "backbone_weights": str(bad_shape)})

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read .*garbage.pth"):
        build_model({**TINY, "backbone_weights": str(garbage)})


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("stride", [8, 16])
def test_feature_stride(name, stride):
    backbone = build_resnet(name, stride).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 64, 96))
        odd = backbone(torch.randn(1, 3, 65, 97))
    assert features.shape == (1, backbone.out_channels, 64 // stride, 96 // stride)
    assert odd.shape[-2:] == (math.ceil(65 / stride), math.ceil(97 / stride))
    assert backbone.output_stride == stride


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("stride", [8, 16])
def test_backbone_features_give_low_level_skips(name, stride):
    """features() returns layer4 (as forward) and layer1/layer2 at strides 4 and 8, with the
    channels skip_channels announces; the parameter names stay torchvision's."""
    backbone = build_resnet(name, stride).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        deep, low = backbone.features(x)
        assert torch.equal(deep, backbone(x))
    assert set(low) == {4, 8}
    for s, feature in low.items():
        assert feature.shape == (1, backbone.skip_channels[s], 64 // s, 96 // s)
    expected = {k for k in torchvision_resnet_shapes(name) if not k.startswith("fc.")}
    assert set(backbone.state_dict()) == expected


@pytest.mark.parametrize("decoder", ["skip", "skip_shared"])
def test_skip_decoders_see_stride_4_detail(decoder):
    """A skip decoder's output changes within a 4x4 block of the input (it sees stride-4
    features); the paper decoder's output at OS 16 is a smooth upsampling of a 1/16 grid."""
    torch.manual_seed(0)
    model = build_model({**TINY, "decoder": decoder}).eval()
    assert (model.fusion is not None) == (decoder == "skip_shared")
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        out = model(x)
        assert {t: v.shape[1:] for t, v in out.items()} == {"semantic": (19, 64, 128), "instance": (2, 64, 128), "depth": (1, 64, 128)}
        poked = x.clone()
        poked[..., 30:34, 60:64] += 5.0
        changed = (model(poked)["semantic"] - out["semantic"]).abs().amax(1)[0]
    # Within 4 px of the change the effect is far larger than 16 px away: detail survives.
    assert changed[28:36, 58:66].mean() > 3 * changed[:, :40].mean()
    assert model.decoders["depth"].head.bias.allclose(torch.zeros(1))


def test_dilation_follows_torchvision():
    """torchvision: a dilated layer's first block keeps the previous dilation, its stride becomes 1."""
    r = build_resnet("resnet50", 8)
    assert (r.layer2[0].conv2.stride, r.layer2[0].conv2.dilation) == ((2, 2), (1, 1))
    assert (r.layer3[0].conv2.stride, r.layer3[0].conv2.dilation) == ((1, 1), (1, 1))
    assert r.layer3[0].downsample[0].stride == (1, 1)
    assert [b.conv2.dilation for b in r.layer3[1:]] == [(2, 2)] * 5
    assert [b.conv2.dilation for b in r.layer4] == [(2, 2), (4, 4), (4, 4)]
    assert all(b.conv2.padding == b.conv2.dilation for b in r.layer4)
    r16 = build_resnet("resnet18", 16)
    assert r16.layer3[0].conv1.stride == (2, 2)
    assert [(b.conv1.dilation, b.conv2.dilation) for b in r16.layer4] == [((1, 1), (1, 1)), ((2, 2), (2, 2))]


@pytest.mark.parametrize("stride", [8, 16])
@pytest.mark.parametrize("size", [(64, 128), (65, 97)])
def test_outputs_at_input_resolution(stride, size):
    model = build_model({**TINY, "output_stride": stride}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert list(out) == list(TASKS)
    assert out["semantic"].shape == (2, 19, *size)
    assert out["instance"].shape == (2, 2, *size)
    assert out["depth"].shape == (2, 1, *size)


@pytest.mark.parametrize(
    "tasks", [list(c) for n in (1, 2, 3) for c in itertools.combinations(TASKS, n)], ids=lambda t: "+".join(t)
)
def test_any_subset_of_tasks(tasks):
    model = build_model({**TINY, "tasks": list(reversed(tasks))}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 48))
    assert list(out) == tasks  # canonical order whatever the config order
    assert set(model.decoders) == set(tasks)


def test_disparity_bias_sets_initial_prediction():
    model = build_model({**TINY, "tasks": ["depth"], "disparity_bias": 12.5})
    assert model.decoders["depth"][-1].bias.item() == 12.5


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"backbone": "resnet152"}, "model.backbone: unknown backbone 'resnet152'"),
        ({"output_stride": 32}, "model.output_stride must be one of \\[8, 16\\], got 32"),
        ({"output_stride": True}, "model.output_stride"),
        ({"tasks": ["semantic", "depht"]}, "model.tasks: unknown task 'depht'"),
        ({"tasks": []}, "model.tasks must be a non-empty list"),
        ({"tasks": "depth"}, "model.tasks must be a non-empty list"),
        ({"tasks": ["depth", "depth"]}, "lists a task twice"),
        ({"num_classes": 0}, "model.num_classes must be a positive integer"),
        ({"aspp_channel": 8}, "unknown key\\(s\\) \\['aspp_channel'\\]"),
        ({"backbone_weights": 3}, "model.backbone_weights must be a file path"),
        ({"disparity_bias": float("nan")}, "model.disparity_bias"),
        ({"decoder": "unet"}, "model.decoder must be one of \\['paper', 'skip', 'skip_shared'\\], got 'unet'"),
        ([1, 2], "model section must be a mapping"),
    ],
)
def test_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_model(cfg)


def _trained_tiny_model() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    cfg = {**TINY, "tasks": ["semantic", "depth"]}
    model = build_model(cfg)
    with torch.no_grad():  # move BN running stats away from their defaults so they matter
        model.train()(torch.randn(2, 3, 32, 48) * 3 + 1)
    return model.eval(), cfg


def test_checkpoint_round_trip(tmp_path):
    model, cfg = _trained_tiny_model()
    config = {"model": {**cfg, "backbone_weights": str(tmp_path / "gone.pth")}, "train": {"lr": 1e-3}}
    path = tmp_path / "ckpt.pt"
    ckpt = {"config": config, "model": model.state_dict(), "weighting": {}, "step": 3, "metrics": {"miou": 0.1}}
    torch.save(ckpt, path)

    loaded, loaded_config = load_model(path)
    assert loaded_config == config
    assert not loaded.training
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    assert list(got) == ["semantic", "depth"]
    for task in expected:
        assert torch.equal(expected[task], got[task])


def test_fp16_and_wrapped_checkpoints_load(tmp_path):
    model, cfg = _trained_tiny_model()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "half.pt"
    torch.save({"config": {"model": cfg}, "model": {f"_orig_mod.module.{k}": v for k, v in half.items()}}, path)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.state_dict().values() if p.is_floating_point())

    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x)["semantic"], loaded(x)["semantic"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found: .*missing.pt"):
        load_model(tmp_path / "missing.pt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="cannot read checkpoint .*garbage.pt"):
        load_model(garbage)

    weights_only = tmp_path / "resnet18.pth"
    torch.save(fake_torchvision_state("resnet18"), weights_only)
    with pytest.raises(UserError, match="resnet18.pth is not an mtl_perception checkpoint"):
        load_model(weights_only)

    model, cfg = _trained_tiny_model()
    mismatched = tmp_path / "mismatched.pt"
    torch.save({"config": {"model": {**cfg, "tasks": list(TASKS)}}, "model": model.state_dict()}, mismatched)
    with pytest.raises(UserError, match="(?s)mismatched.pt: weights do not match.*decoders.instance"):
        load_model(mismatched)

    bad_config = tmp_path / "bad_config.pt"
    torch.save({"config": {"model": {**cfg, "backbone": "vgg"}}, "model": model.state_dict()}, bad_config)
    with pytest.raises(ConfigError, match="bad_config.pt: model.backbone: unknown backbone 'vgg'"):
        load_model(bad_config)


def _toy_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two 64x64 scenes: road, a sky band (disparity 0) and two bright boxes (a car and a
    person) whose pixels vote for their centroids; a strip of ignored / invalid pixels."""
    gen = torch.Generator().manual_seed(seed)
    b, h, w = 2, 64, 64
    image = torch.randn(b, 3, h, w, generator=gen) * 0.1
    semantic = torch.zeros(b, h, w, dtype=torch.long)
    instance = torch.zeros(b, 2, h, w)
    instance_mask = torch.zeros(b, h, w, dtype=torch.bool)
    rows = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    cols = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    disparity = (rows / 4).expand(b, h, w).clone()
    semantic[:, :12] = 10  # sky
    disparity[:, :12] = 0
    image[:, 2, :12] += 1.5
    boxes = [[(20, 44, 5, 30, 13), (30, 60, 38, 56, 11)], [(16, 40, 30, 60, 13), (36, 62, 4, 20, 11)]]
    for i, scene in enumerate(boxes):
        for y0, y1, x0, x1, cls in scene:
            semantic[i, y0:y1, x0:x1] = cls
            image[i, 0 if cls == 13 else 1, y0:y1, x0:x1] += 2.0
            cy, cx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2
            instance[i, 0, y0:y1, x0:x1] = cx - cols[y0:y1, x0:x1]
            instance[i, 1, y0:y1, x0:x1] = cy - rows[y0:y1, x0:x1]
            instance_mask[i, y0:y1, x0:x1] = True
            disparity[i, y0:y1, x0:x1] = y1 / 3
    semantic[:, :, -3:] = 255
    disparity_mask = torch.ones(b, h, w, dtype=torch.bool)
    disparity_mask[:, :, -3:] = False
    disparity[~disparity_mask] = 0
    return {"image": image, "semantic": semantic, "instance": instance, "instance_mask": instance_mask,
            "disparity": disparity, "disparity_mask": disparity_mask}


@pytest.mark.parametrize("decoder", ["paper", "skip"])
def test_tiny_overfit_lowers_every_loss(decoder):
    from mtl_perception_training.losses import task_losses

    torch.manual_seed(0)
    model = build_model({**TINY, "aspp_channels": 32, "decoder_channels": 32, "decoder": decoder}).train()
    batch = _toy_batch()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = task_losses(model(batch["image"]), batch, TASKS)
        history.append({t: v.item() for t, v in losses.items()})
        optimiser.zero_grad()
        sum(losses.values()).backward()
        optimiser.step()
    first, last = history[0], history[-1]
    for task in TASKS:
        assert math.isfinite(last[task])
        assert last[task] < 0.6 * first[task], (task, first[task], last[task])

"""Everything around TensorRT that runs without it: cache key, sidecar checks, build plan,
shape profile, trtexec line, the missing-TensorRT message and the cache's rebuild logic."""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from inference_helpers import tiny_config
from mtl_perception.errors import UserError
from mtl_perception.inference import engine_cache, tensorrt_backend
from mtl_perception.inference.engine_cache import EngineCache, EngineKey, check_platform, read_sidecar, write_sidecar
from mtl_perception.inference.metadata import ModelMetadata
from mtl_perception.inference.trt_builder import (
    BuildPlan,
    ShapeProfile,
    import_tensorrt,
    plan_build,
    trtexec_command,
)

KEY = EngineKey("0123abcd", "NVIDIA Jetson AGX Orin", "8.7", "10.3.0", "fp16", "1x3x256x512")
META = ModelMetadata.from_config(tiny_config(), dynamic=True)


def test_key_digest_is_stable_and_changes_with_every_component():
    assert KEY.digest() == EngineKey(**dataclasses.asdict(KEY)).digest()
    assert re.fullmatch(r"[0-9a-f]{16}", KEY.digest())
    changed = {
        "model_hash": "ffff0000",
        "gpu": "NVIDIA GeForce RTX 4090",
        "compute_capability": "8.9",
        "tensorrt": "10.4.0",
        "precision": "fp32",
        "input_shape": "1x3x512x1024",
    }
    digests = {KEY.digest()}
    for name, value in changed.items():
        other = dataclasses.replace(KEY, **{name: value})
        digests.add(other.digest())
        assert KEY.differences(other) == [f"{engine_cache._FIELD_NAMES[name]} {getattr(KEY, name)} -> {value}"]
    assert len(digests) == 1 + len(changed)


def test_cache_stores_and_finds_an_engine_only_for_its_exact_key(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    assert cache.lookup(KEY, "model") is None
    path = cache.store(KEY, "model", b"serialized engine", META)
    assert path.read_bytes() == b"serialized engine"
    assert cache.lookup(KEY, "model") == path
    newer = dataclasses.replace(KEY, tensorrt="10.4.0")
    with caplog.at_level(logging.INFO, logger="mtl_perception.inference.engine_cache"):
        assert cache.lookup(newer, "model") is None
    assert "TensorRT 10.3.0 -> 10.4.0" in caplog.text


def test_sidecar_round_trip_and_clear_errors(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(UserError, match="no m.engine.json next to it"):
        read_sidecar(engine)
    write_sidecar(engine, KEY, META)
    assert read_sidecar(engine) == (KEY, META)
    Path(str(engine) + ".json").write_text(json.dumps({"key": {"gpu": "x"}}))
    with pytest.raises(UserError, match="corrupt"):
        read_sidecar(engine)
    with pytest.raises(UserError, match="engine not found"):
        read_sidecar(tmp_path / "missing.engine")


def test_foreign_engine_gives_one_clear_message():
    here = dataclasses.replace(KEY, gpu="NVIDIA A100-SXM4-80GB", compute_capability="8.0", tensorrt="10.4.0")
    with pytest.raises(UserError) as exc:
        check_platform(KEY, here, "m.engine")
    message = str(exc.value)
    assert "\n" not in message
    for text in ("m.engine", "NVIDIA Jetson AGX Orin (here: NVIDIA A100-SXM4-80GB)", "8.7 (here: 8.0)",
                 "TensorRT 10.3.0 (here: 10.4.0)"):
        assert text in message
    check_platform(KEY, dataclasses.replace(KEY, model_hash="", precision="", input_shape=""), "m.engine")


@pytest.mark.parametrize(
    "version, graph, precision, expected",
    [
        ("10.3.0", "fp32", "fp32", BuildPlan(strongly_typed=False, fp16_flag=False, tf32=False)),
        ("10.3.0", "fp32", "fp16", BuildPlan(strongly_typed=False, fp16_flag=True, tf32=True)),
        ("10.3.0", "fp16", "fp16", BuildPlan(strongly_typed=True, fp16_flag=False, tf32=False)),
        ("11.1.0", "fp32", "fp32", BuildPlan(strongly_typed=True, fp16_flag=False, tf32=False)),
        ("11.1.0", "fp16", "fp16", BuildPlan(strongly_typed=True, fp16_flag=False, tf32=False)),
    ],
)
def test_build_plan_per_tensorrt_version(version, graph, precision, expected):
    assert plan_build(version, graph, precision) == expected


def test_build_plan_refusals_say_what_to_do():
    with pytest.raises(UserError, match="export --precision fp16"):
        plan_build("11.0.0", "fp32", "fp16")
    with pytest.raises(UserError, match="half precision"):
        plan_build("10.3.0", "fp16", "fp32")
    with pytest.raises(UserError, match="fp32 or fp16"):
        plan_build("10.3.0", "fp32", "int8")


def test_shape_profile_follows_the_model_layout_and_size():
    dynamic = ShapeProfile.for_model(META, 256, 512, max_batch=4)
    assert (dynamic.min, dynamic.opt, dynamic.max) == ((1, 3, 256, 512), (4, 3, 256, 512), (4, 3, 256, 512))
    assert dynamic.describe() == "1x3x256x512:4x3x256x512:4x3x256x512"
    raw_fixed = dataclasses.replace(META, raw_input=True, dynamic=False)
    fixed = ShapeProfile.for_model(raw_fixed, META.height, META.width)
    assert fixed.is_fixed and fixed.describe() == f"1x{META.height}x{META.width}x3"
    with pytest.raises(UserError, match="fixed at"):
        ShapeProfile.for_model(raw_fixed, 256, 512)
    with pytest.raises(UserError, match="--dynamic"):
        ShapeProfile.for_model(raw_fixed, META.height, META.width, max_batch=2)


def test_trtexec_command_matches_the_build():
    profile = ShapeProfile.for_model(META, 256, 512, max_batch=2)
    line = trtexec_command("m.onnx", "out dir/m.engine", plan_build("10.3.0", "fp32", "fp16"), profile, "image",
                           "cache/t.cache", dynamic=True)
    assert line.startswith("trtexec --onnx=m.onnx '--saveEngine=out dir/m.engine' --timingCacheFile=cache/t.cache ")
    for flag in ("--minShapes=image:1x3x256x512", "--optShapes=image:2x3x256x512", "--maxShapes=image:2x3x256x512",
                 "--fp16", "--skipInference"):
        assert flag in line.split()
    assert "--stronglyTyped" not in line and "--noTF32" not in line
    strict = trtexec_command("m.onnx", "m.engine", plan_build("11.0.0", "fp32", "fp32"), profile, "image", "t", False)
    assert "--stronglyTyped" in strict and "--noTF32" in strict and "Shapes" not in strict and "--fp16" not in strict


def test_missing_tensorrt_is_one_line_that_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(UserError) as exc:
        import_tensorrt()
    assert "pip install tensorrt" in str(exc.value) and "\n" not in str(exc.value)


def test_only_the_two_tensorrt_modules_import_tensorrt():
    root = Path(__file__).resolve().parents[1]
    importers = {
        p.relative_to(root).as_posix()
        for folder in ("mtl_perception", "mtl_perception_training")
        for p in (root / folder).rglob("*.py")
        if re.search(r"^\s*(import tensorrt|from tensorrt)", p.read_text(), re.M)
    }
    assert importers <= {"mtl_perception/inference/trt_builder.py", "mtl_perception/inference/tensorrt_backend.py"}
    for p in importers:  # and only lazily, inside functions
        assert not re.search(r"^(import tensorrt|from tensorrt)", (root / p).read_text(), re.M)


def test_open_engine_builds_once_per_key_and_rebuilds_when_tensorrt_changes(tmp_path, monkeypatch):
    """The cache logic of ``open_engine`` with TensorRT, the GPU and the build replaced by fakes."""
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    version = {"v": "10.3.0"}
    builds = []
    monkeypatch.setattr(tensorrt_backend, "import_tensorrt", lambda: SimpleNamespace(__version__=version["v"]))
    monkeypatch.setattr(tensorrt_backend, "read_onnx_metadata", lambda path: META)
    monkeypatch.setattr(
        tensorrt_backend,
        "platform_key",
        lambda trt, device, h="", p="", s="": EngineKey(h, "NVIDIA Jetson AGX Orin", "8.7", trt, p, s),
    )

    def fake_build(path, plan, profile, timing_cache, log=None):
        builds.append((Path(path).name, plan, profile.describe()))
        return b"engine for TensorRT " + version["v"].encode()

    monkeypatch.setattr(tensorrt_backend, "build_engine", fake_build)
    first = tensorrt_backend.open_engine(onnx_path, None, "fp16", tmp_path / "cache", 256, 512)
    again = tensorrt_backend.open_engine(onnx_path, None, "fp16", tmp_path / "cache", 256, 512)
    assert first == again and len(builds) == 1
    assert builds[0] == ("model.onnx", plan_build("10.3.0", "fp32", "fp16"), "1x3x256x512")
    key, meta = read_sidecar(first)
    assert (key.tensorrt, key.precision, meta) == ("10.3.0", "fp16", META)

    version["v"] = "10.4.0"
    rebuilt = tensorrt_backend.open_engine(onnx_path, None, "fp16", tmp_path / "cache", 256, 512)
    assert rebuilt != first and len(builds) == 2 and rebuilt.read_bytes().endswith(b"10.4.0")
    onnx_path.write_bytes(b"retrained onnx bytes")
    tensorrt_backend.open_engine(onnx_path, None, "fp16", tmp_path / "cache", 256, 512)
    assert len(builds) == 3
    # An explicitly given engine built under the old TensorRT is refused with the clear message.
    with pytest.raises(UserError, match=r"TensorRT 10.3.0 \(here: 10.4.0\)"):
        tensorrt_backend.open_engine(first, None, None, tmp_path / "cache")

    # export --engine takes the same build path: same key, plan and timing cache, its own file.
    from mtl_perception.inference import backend as backend_module
    from mtl_perception_training.export import build_engine_file

    monkeypatch.setattr(backend_module, "resolve_device", lambda name: None)
    engine, command = build_engine_file(onnx_path, tmp_path / "mine.engine", "fp16", 1, tmp_path / "cache", lambda m: None)
    cached_key, _ = read_sidecar(tensorrt_backend.open_engine(onnx_path, None, "fp16", tmp_path / "cache"))
    assert len(builds) == 5 and builds[-1] == builds[-2]  # at the model's own size, as export builds
    assert read_sidecar(engine)[0] == cached_key and str(tmp_path / "cache" / "timing") in command


def test_an_engine_takes_its_fixed_batch_or_its_profile_maximum():
    """What a multi-camera node batches up to, read from the engine as TensorRT reports it:
    ``get_tensor_shape`` (-1 for a dynamic dimension) and ``get_tensor_profile_shape`` (min,
    opt, max of profile 0)."""

    def engine(shape, profile=None):
        return SimpleNamespace(
            get_tensor_shape=lambda name: shape,
            get_tensor_profile_shape=lambda name, index: profile if (name, index) == ("image", 0) else None,
        )

    assert tensorrt_backend.engine_max_batch(engine((1, 3, 64, 128)), "image") == 1
    dynamic = engine((-1, 3, 64, 128), [(1, 3, 64, 128), (4, 3, 64, 128), (4, 3, 64, 128)])
    assert tensorrt_backend.engine_max_batch(dynamic, "image") == 4


def test_engines_are_built_for_the_callers_batch_where_the_graph_takes_one(tmp_path_factory, caplog):
    from inference_helpers import shared_onnx
    from mtl_perception.inference.factory import _engine_batch

    dynamic, fixed = shared_onnx(tmp_path_factory, dynamic=True), shared_onnx(tmp_path_factory, dynamic=False)
    assert _engine_batch(dynamic, 4) == 4 and _engine_batch(dynamic, 1) == 1
    with caplog.at_level(logging.WARNING):
        assert _engine_batch(fixed, 4) == 1
    assert "export with --dynamic" in caplog.text
    assert _engine_batch(Path("prebuilt.engine"), 4) == 1  # a built engine takes what its profile says

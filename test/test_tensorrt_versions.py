"""The TensorRT version branches (8.6, 10.x, 11.x, and the refusal below 8.6), with stand-ins.

TensorRT cannot be installed here (its libraries are not on PyPI for this machine and it needs
a GPU), so these tests put a stand-in ``tensorrt`` module into ``sys.modules`` with the
attributes each version really has, and run the real ``build_engine`` against it:

- 8.6: ``NetworkDefinitionCreationFlag`` has ``EXPLICIT_BATCH`` but no ``STRONGLY_TYPED``; a
  network created without ``EXPLICIT_BATCH`` is implicit-batch and the ONNX parser rejects it
  (as the real 8.x parser does); no ``IProgressMonitor``.
- 10.x: ``EXPLICIT_BATCH`` (deprecated, ignored) and ``STRONGLY_TYPED``; ``BuilderFlag.FP16``;
  ``IProgressMonitor``.
- 11.x: every network strongly typed; ``EXPLICIT_BATCH`` is gone and ``STRONGLY_TYPED`` is
  renumbered to 0 and ignored, so no flag is passed; no ``BuilderFlag.FP16`` (weak typing removed).
What these tests cannot show is that the real library builds and runs the engine: that needs
a GPU with TensorRT (test/test_gpu.py's territory).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from mtl_perception.errors import UserError
from mtl_perception.inference import tensorrt_backend
from mtl_perception.inference.trt_builder import (
    BuildPlan,
    ShapeProfile,
    build_engine,
    import_tensorrt,
    onnx_precision_for,
    plan_build,
)

FIXED = ShapeProfile((1, 3, 64, 128), (1, 3, 64, 128), (1, 3, 64, 128))


class _Enum:
    """An enum-like namespace whose members are ints (as pybind11 enums convert with ``int()``)."""

    def __init__(self, **members: int) -> None:
        self.__dict__.update(members)


def stand_in(version: str) -> types.ModuleType:
    """A ``tensorrt`` module with the builder API of ``version``, recording what the code asks of it."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = calls = {"network_flags": None, "set": set(), "cleared": set(), "monitor": False}
    # 8.6: EXPLICIT_BATCH = 0; 10: EXPLICIT_BATCH = 0, STRONGLY_TYPED = 1; 11: STRONGLY_TYPED = 0 (ignored).
    creation = {"EXPLICIT_BATCH": 0} if major < 10 else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    if major >= 11:
        creation = {"STRONGLY_TYPED": 0}
    trt.NetworkDefinitionCreationFlag = _Enum(**creation)
    trt.BuilderFlag = _Enum(TF32=7, **({"FP16": 0} if major < 11 else {}))

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            pass

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags

        def get_input(self, index: int) -> types.SimpleNamespace:
            return types.SimpleNamespace(name="image")

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network
            self.errors: list[str] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> str:
            return self.errors[index]

        def parse_from_file(self, path: str) -> bool:
            explicit = major >= 10 or self.network.flags & (1 << creation["EXPLICIT_BATCH"])
            if not explicit:
                self.errors.append("Network must have explicit batch (the ONNX parser supports only explicit batch)")
            return bool(explicit)

    class TimingCache:
        def serialize(self) -> bytes:
            return b"timing"

    class Config:
        def set_flag(self, flag: int) -> None:
            calls["set"].add(flag)

        def clear_flag(self, flag: int) -> None:
            calls["cleared"].add(flag)

        def add_optimization_profile(self, profile: object) -> None:
            pass

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache()

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> None:
            pass

        def get_timing_cache(self) -> TimingCache:
            return TimingCache()

        def __setattr__(self, name: str, value: object) -> None:
            assert name == "progress_monitor" and major >= 10, f"TensorRT {version}'s IBuilderConfig has no {name}"
            calls["monitor"] = True

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int) -> Network:
            known = sum(1 << bit for bit in creation.values())
            assert flags & ~known == 0, f"TensorRT {version} has no network flag bits {flags & ~known:#x}"
            calls["network_flags"] = flags
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            return b"engine-" + version.encode()

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    if major >= 10:

        class IProgressMonitor:
            def __init__(self) -> None:
                pass

        trt.IProgressMonitor = IProgressMonitor
    return trt


@pytest.fixture
def install(monkeypatch):
    """Make ``import tensorrt`` return the stand-in of a version."""

    def _install(version: str) -> types.ModuleType:
        trt = stand_in(version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    return _install


def _build(trt: types.ModuleType, graph: str, precision: str, tmp_path: Path) -> bytes:
    plan = plan_build(trt.__version__, graph, precision)
    return build_engine(tmp_path / "m.onnx", plan, FIXED, tmp_path / "timing.cache", log=lambda line: None)


EXPLICIT, STRONG = 1 << 0, 1 << 1
FP16, TF32 = 0, 7


@pytest.mark.parametrize(
    "version, graph, precision, flags, set_, cleared, monitor",
    [
        ("8.6.2.3", "fp32", "fp32", EXPLICIT, set(), {TF32}, False),
        ("8.6.2.3", "fp32", "fp16", EXPLICIT, {FP16}, set(), False),
        ("8.6.2.3", "fp16", "fp16", EXPLICIT, {FP16}, {TF32}, False),
        ("10.3.0", "fp32", "fp32", 0, set(), {TF32}, True),
        ("10.3.0", "fp32", "fp16", 0, {FP16}, set(), True),
        ("10.3.0", "fp16", "fp16", STRONG, set(), {TF32}, True),
        ("11.0.0", "fp32", "fp32", 0, set(), {TF32}, True),
        ("11.0.0", "fp16", "fp16", 0, set(), {TF32}, True),
    ],
)
def test_build_engine_asks_each_version_for_what_it_has(install, tmp_path, version, graph, precision, flags, set_,
                                                        cleared, monitor):
    trt = install(version)
    assert _build(trt, graph, precision, tmp_path) == b"engine-" + version.encode()
    assert trt.calls["network_flags"] == flags
    assert (trt.calls["set"], trt.calls["cleared"], trt.calls["monitor"]) == (set_, cleared, monitor)
    assert (tmp_path / "timing.cache").read_bytes() == b"timing"


def test_tensorrt_8_6_builds_explicit_batch_or_its_onnx_parser_refuses(install, tmp_path):
    """The stand-in's parser rejects an implicit-batch network, as TensorRT 8.x's does."""
    trt = install("8.6.1")
    network = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_network(0)
    assert not trt.OnnxParser(network, None).parse_from_file("m.onnx")
    _build(trt, "fp32", "fp32", tmp_path)  # the real code passes EXPLICIT_BATCH, so it parses
    assert trt.calls["network_flags"] & EXPLICIT


def test_plans_per_version_and_tensorrt_11_wants_a_half_precision_onnx_for_fp16():
    assert plan_build("8.6.2", "fp16", "fp16") == BuildPlan(strongly_typed=False, fp16_flag=True, tf32=False)
    assert plan_build("10.3.0", "fp16", "fp16") == BuildPlan(strongly_typed=True, fp16_flag=False, tf32=False)
    with pytest.raises(UserError, match="half-precision ONNX"):
        plan_build("11.0.0", "fp32", "fp16")
    assert [onnx_precision_for(v, "fp16") for v in ("8.6.2", "10.3.0", "11.0.0")] == ["fp32", "fp32", "fp16"]
    assert [onnx_precision_for(v, p) for v in ("11.0.0",) for p in ("fp32", None)] == ["fp32", "fp32"]


@pytest.mark.parametrize("version", ["8.5.2.2", "8.4.1", "7.1.3"])
def test_tensorrt_older_than_8_6_is_refused_in_one_line_everywhere(install, tmp_path, version):
    install(version)
    entry_points = [
        import_tensorrt,
        lambda: plan_build(version, "fp32", "fp32"),
        lambda: tensorrt_backend.open_engine(tmp_path / "m.onnx", None, None, tmp_path / "cache"),
        lambda: tensorrt_backend.TensorRTBackend(tmp_path / "m.engine", None),
    ]
    for call in entry_points:
        with pytest.raises(UserError) as exc:
            call()
        message = str(exc.value)
        assert f"TensorRT {version} is too old" in message and "8.6" in message and "\n" not in message


def test_an_unreadable_version_is_one_line(install):
    install("8.6.2")
    sys.modules["tensorrt"].__version__ = "unknown"
    with pytest.raises(UserError, match="cannot read the TensorRT version 'unknown'"):
        import_tensorrt()

"""Build TensorRT engines from ONNX with the TensorRT Python API (8.6, 10.x and 11.x).

This module and ``tensorrt_backend.py`` are the only ones that import ``tensorrt``, and only
inside functions, so everything else (and this module's pure parts: the build plan, the
shape profile, the ``trtexec`` command line) imports and is tested without TensorRT. The real
library cannot be installed on the machines this was written on: the version branches are
tested with stand-in ``tensorrt`` modules that have each version's attributes.

What differs between versions lives in this module, nowhere else:
- below 8.6 (JetPack 5's 8.5 and older): refused with one line by ``import_tensorrt``;
- 8.6 (JetPack 6.0): networks are implicit-batch unless created with ``EXPLICIT_BATCH``, which
  the ONNX parser requires; there are no strongly typed networks and no progress monitor;
- 10.x (JetPack 6.1/6.2, x86): always explicit batch (the flag is deprecated and ignored, so
  it is not passed); weak typing with the FP16 flag, or strongly typed;
- 11.x (x86): strongly typed only (no creation flags needed); the FP16 builder flag is gone.
The runtime's named-tensor API (``set_tensor_address``, ``execute_async_v3``) exists in all of
them (since 8.5), so ``tensorrt_backend.py`` has no version branches.

Precision support:
- ``fp32``: the fp32 ONNX, TF32 disabled (so "fp32" means fp32; ``--noTF32`` in trtexec).
- ``fp16`` on TensorRT 8.6 and 10: the fp32 ONNX with the FP16 builder flag (weak typing:
  TensorRT picks fp16 kernels where they are faster, keeps fp32 elsewhere).
- ``fp16`` on TensorRT 11+: there is no FP16 flag (weak typing was removed); the engine is
  built strongly typed from a half-precision ONNX (``mtl-perception export --precision fp16``).
  A half-precision ONNX is also built strongly typed on TensorRT 10, and with the FP16 flag
  on 8.6 (which has no strong typing).
INT8/FP8 (explicit Q/DQ quantisation) is not supported.
"""
from __future__ import annotations

import logging
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mtl_perception.errors import UserError
from mtl_perception.inference.metadata import ModelMetadata
from mtl_perception.io_utils import atomic_write

LOG = logging.getLogger(__name__)
INSTALL_HINT = (
    "TensorRT is needed but its Python package is not installed: `pip install tensorrt` (x86-64, CUDA 12/13) "
    "or `sudo apt install python3-libnvinfer` (Jetson, JetPack); without it, use the torch or onnxruntime backend"
)


# --- TensorRT versions --------------------------------------------------------------------

#: The oldest TensorRT this code supports (JetPack 6.0 ships 8.6.2).
MIN_VERSION = (8, 6)


def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of a ``tensorrt.__version__`` such as ``8.6.2.3`` or ``10.3.0``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise UserError(f"cannot read the TensorRT version {version!r}")
    return int(match.group(1)), int(match.group(2))


def check_version(version: str) -> int:
    """The major version; one-line ``UserError`` below ``MIN_VERSION``."""
    found = parse_version(version)
    if found < MIN_VERSION:
        raise UserError(
            f"TensorRT {version} is too old: mtl_perception needs TensorRT {MIN_VERSION[0]}.{MIN_VERSION[1]} or "
            "later (JetPack 6 or a current x86 TensorRT); use the torch or onnxruntime backend on this machine"
        )
    return found[0]


def import_tensorrt() -> Any:
    """``tensorrt`` at a supported version, or the one-line ``UserError`` that says what to do."""
    try:
        import tensorrt
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    check_version(tensorrt.__version__)
    return tensorrt


def onnx_precision_for(version: str, precision: str | None) -> str:
    """The ONNX precision to export for an engine of ``precision``: TensorRT 11 builds fp16 only from an fp16 graph."""
    return "fp16" if precision == "fp16" and check_version(version) >= 11 else "fp32"


def network_flags(trt: Any, plan: BuildPlan) -> int:
    """``create_network`` flags: explicit batch on 8.x (its ONNX parser needs it), strong typing where planned.

    From 11 on every network is strongly typed: ``STRONGLY_TYPED`` is deprecated and ignored
    there (and renumbered, as ``EXPLICIT_BATCH`` is gone), so nothing is passed.
    """
    major = check_version(trt.__version__)
    flags = 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed and major < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


@dataclass(frozen=True)
class BuildPlan:
    """How to ask TensorRT for a precision: strongly typed network, FP16 flag, TF32 allowed."""

    strongly_typed: bool
    fp16_flag: bool
    tf32: bool


def plan_build(tensorrt_version: str, graph_precision: str, precision: str) -> BuildPlan:
    """The build settings for ``precision`` from a ``graph_precision`` ONNX on this TensorRT version."""
    if precision not in ("fp32", "fp16"):
        raise UserError(f"TensorRT precision must be fp32 or fp16, got {precision!r}")
    major = check_version(tensorrt_version)
    if graph_precision == "fp16":
        if precision != "fp16":
            raise UserError("this ONNX is half precision: build it with --precision fp16, or export an fp32 ONNX")
        if major < 10:  # no strongly typed networks before 9: the FP16 flag lets the half graph run in fp16
            return BuildPlan(strongly_typed=False, fp16_flag=True, tf32=False)
        return BuildPlan(strongly_typed=True, fp16_flag=False, tf32=False)
    if precision == "fp32":
        return BuildPlan(strongly_typed=major >= 11, fp16_flag=False, tf32=False)
    if major >= 11:
        raise UserError(
            f"TensorRT {tensorrt_version} builds fp16 only from a half-precision ONNX (no FP16 builder flag since 11): "
            "export one with `mtl-perception export --precision fp16` and build from it"
        )
    return BuildPlan(strongly_typed=False, fp16_flag=True, tf32=True)


@dataclass(frozen=True)
class ShapeProfile:
    """Input shapes an engine accepts: an optimisation profile (min, opt, max), or one fixed shape."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def for_model(cls, metadata: ModelMetadata, height: int, width: int, max_batch: int = 1) -> "ShapeProfile":
        """Batch 1..``max_batch`` at ``height`` x ``width`` in the model's layout, optimised for
        ``max_batch``: a node of N cameras sends all N frames in one batch in most rounds.

        The pipeline always resizes to one network size, so only the batch varies: a profile
        that is exact in H and W lets TensorRT pick kernels for that size alone.
        """
        if not metadata.dynamic and (height, width) != (metadata.height, metadata.width):
            raise UserError(
                f"this ONNX is fixed at {metadata.height}x{metadata.width}; cannot build for {height}x{width}: "
                "export with --dynamic or at that size"
            )
        if max_batch > 1 and not metadata.dynamic:
            raise UserError("a fixed-shape ONNX has batch 1; export with --dynamic for batched engines")

        def shape(batch: int) -> tuple[int, ...]:
            return (batch, height, width, 3) if metadata.raw_input else (batch, 3, height, width)

        return cls(shape(1), shape(max_batch), shape(max_batch))

    @property
    def is_fixed(self) -> bool:
        return self.min == self.opt == self.max

    def describe(self) -> str:
        dims = ["x".join(map(str, s)) for s in (self.min, self.opt, self.max)]
        return dims[0] if self.is_fixed else ":".join(dims)


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    plan: BuildPlan,
    profile: ShapeProfile,
    input_name: str,
    timing_cache: str | Path,
    dynamic: bool,
) -> str:
    """The ``trtexec`` line that builds the same engine, for people who build on the target by hand."""
    args = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--timingCacheFile={timing_cache}",
    ]
    if dynamic:
        for flag, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            args.append(f"--{flag}Shapes={input_name}:{'x'.join(map(str, shape))}")
    if plan.fp16_flag:
        args.append("--fp16")
    if plan.strongly_typed:
        args.append("--stronglyTyped")
    if not plan.tf32:
        args.append("--noTF32")
    args.append("--skipInference")
    return " ".join(shlex.quote(a) for a in args)


def _progress_monitor(trt: Any, log: Callable[[str], None]) -> Any:
    """A TensorRT progress monitor that logs the top-level build phases (building takes minutes)."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                log(f"TensorRT: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def build_engine(
    onnx_path: str | Path,
    plan: BuildPlan,
    profile: ShapeProfile,
    timing_cache: str | Path,
    log: Callable[[str], None] = LOG.info,
) -> bytes:
    """Serialised engine for ``onnx_path``; the timing cache is read and updated (faster rebuilds)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if not plan.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if not profile.is_fixed:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(network.get_input(0).name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)
    timing_cache = Path(timing_cache)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if hasattr(trt, "IProgressMonitor"):  # 10.0 and later
        config.progress_monitor = _progress_monitor(trt, log)

    log(f"building TensorRT {trt.__version__} engine from {onnx_path} ({profile.describe()}); this takes minutes")
    start = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT failed to build an engine from {onnx_path}; its log above says why")
    log(f"engine built in {time.monotonic() - start:.0f} s")
    updated = config.get_timing_cache().serialize()
    atomic_write(timing_cache, lambda tmp: Path(tmp).write_bytes(bytes(updated)))
    return bytes(serialized)

"""A TensorRT engine on torch's CUDA stream (named-tensor API of TensorRT 8.6, 10 and 11). GPU only.

I/O buffers are torch CUDA tensors: their ``data_ptr()`` goes to ``set_tensor_address`` and
the engine runs with ``execute_async_v3`` on ``torch.cuda.current_stream()``, so it is ordered
with the pipeline's torch kernels with no synchronisation, no host copy and no pycuda.

Where the engine comes from (``open_engine``): a ``.engine`` file is used as it is, after its
sidecar says it was built for this GPU and TensorRT version (else one clear error); an
``.onnx`` is built into the engine cache once per (model, GPU, TensorRT, precision, shape) key
(``engine_cache.py``). Not executed in CI: TensorRT cannot be installed there.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtl_perception.errors import UserError
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.cache import file_digest
from mtl_perception.inference.engine_cache import EngineCache, EngineKey, check_platform, read_sidecar
from mtl_perception.inference.metadata import read_onnx_metadata
from mtl_perception.inference.onnx_export import INPUT_NAME
from mtl_perception.inference.trt_builder import (
    ShapeProfile,
    build_engine,
    import_tensorrt,
    plan_build,
    trtexec_command,
)

LOG = logging.getLogger(__name__)


def platform_key(
    trt_version: str, device: torch.device, model_hash: str = "", precision: str = "", input_shape: str = ""
) -> EngineKey:
    """The engine key of this machine (GPU name, compute capability, TensorRT version)."""
    major, minor = torch.cuda.get_device_capability(device)
    gpu = torch.cuda.get_device_name(device)
    return EngineKey(model_hash, gpu, f"{major}.{minor}", trt_version, precision, input_shape)


@dataclass(frozen=True)
class EngineBuild:
    """What building an engine for one ONNX file on this GPU means: its cache key, the build
    plan for this TensorRT, the shape profile and the shared timing cache. The one build path
    of ``open_engine`` (engines cached on first use) and ``export --engine`` (an engine file)."""

    onnx: Path
    key: EngineKey
    plan: Any
    profile: ShapeProfile
    metadata: Any
    timing_cache: Path

    def command(self, target: Path) -> str:
        """The ``trtexec`` line that builds the same engine (for users who build offline)."""
        return trtexec_command(self.onnx, target, self.plan, self.profile, INPUT_NAME, self.timing_cache, self.metadata.dynamic)

    def build(self, log: Any = None) -> bytes:
        """The serialised engine (minutes on a Jetson)."""
        return build_engine(self.onnx, self.plan, self.profile, self.timing_cache, log)


def plan_engine(
    onnx_path: str | Path,
    device: torch.device,
    precision: str | None,
    cache_dir: str | Path,
    height: int | None = None,
    width: int | None = None,
    max_batch: int = 1,
) -> EngineBuild:
    """The engine build of ``onnx_path`` for this GPU and TensorRT (checked, nothing built yet)."""
    trt = import_tensorrt()
    path = Path(onnx_path)
    metadata = read_onnx_metadata(str(path))
    precision = precision or metadata.precision
    plan = plan_build(trt.__version__, metadata.precision, precision)
    height, width = height or metadata.height, width or metadata.width
    if not (height and width):
        raise UserError(f"{path} records no input size: pass height and width for the engine")
    profile = ShapeProfile.for_model(metadata, height, width, max_batch)
    key = platform_key(trt.__version__, device, file_digest(path), precision, profile.describe())
    timing_cache = Path(cache_dir) / "timing" / f"{key.gpu.replace(' ', '_')}-trt{key.tensorrt}.cache"
    return EngineBuild(path, key, plan, profile, metadata, timing_cache)


def open_engine(
    model_path: str | Path,
    device: torch.device,
    precision: str | None,
    cache_dir: str | Path,
    height: int | None = None,
    width: int | None = None,
    max_batch: int = 1,
) -> Path:
    """Path of a usable engine for ``model_path`` (.engine, or .onnx built into the cache)."""
    path = Path(model_path)
    if path.suffix in (".engine", ".plan"):
        built_for, _ = read_sidecar(path)
        check_platform(built_for, platform_key(import_tensorrt().__version__, device), path)
        return path
    build = plan_engine(path, device, precision, cache_dir, height, width, max_batch)
    cache = EngineCache(cache_dir)
    engine_path = cache.lookup(build.key, path.stem)
    if engine_path is None:
        LOG.info("no cached engine for %s on %s; equivalent command: %s", path.name, build.key.describe(),
                 build.command(cache.path_for(build.key, path.stem)))
        engine_path = cache.store(build.key, path.stem, build.build(), build.metadata)
    return engine_path


_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "BOOL": torch.bool,
}


def engine_max_batch(engine: Any, input_name: str) -> int:
    """The largest batch ``engine`` runs: its input's fixed batch, or the maximum of its first
    optimisation profile when the batch is dynamic (-1)."""
    batch = int(engine.get_tensor_shape(input_name)[0])
    return batch if batch > 0 else int(engine.get_tensor_profile_shape(input_name, 0)[2][0])


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: torch.device) -> None:
        trt = import_tensorrt()
        if device.type != "cuda":
            raise UserError("backend 'tensorrt' runs on a CUDA GPU only; this torch sees none")
        key, metadata = read_sidecar(engine_path)
        check_platform(key, platform_key(trt.__version__, device), engine_path)
        super().__init__(metadata, device, key.precision)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(device):
            self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
            if self.engine is None:
                raise UserError(
                    f"TensorRT {trt.__version__} cannot deserialise {engine_path} (corrupt, or built by another "
                    "TensorRT): delete it, and pass the .onnx so it is rebuilt"
                )
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise UserError(f"{engine_path}: expected one input tensor, found {inputs}")
        self.input_name = inputs[0]
        self.input_torch_dtype = _TORCH_DTYPES[self.engine.get_tensor_dtype(self.input_name).name]
        self.output_dtypes = {
            n: _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name] for n in names if n != self.input_name
        }
        self._max_batch = engine_max_batch(self.engine, self.input_name)
        self.path = str(engine_path)

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device, self.input_torch_dtype).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
            raise UserError(f"{self.path}: input shape {tuple(x.shape)} is outside the engine's profile")
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        outputs = {}
        for name, dtype in self.output_dtypes.items():
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError(f"TensorRT execution of {self.path} failed")
        return outputs

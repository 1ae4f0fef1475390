"""An exported ONNX model in onnxruntime: CPU, or the CUDA execution provider when present.

CPU: torch and numpy share memory, so input and outputs cross with no copy
(``tensor.numpy()`` / ``torch.from_numpy``). CUDA (GPU only, not executed in CI): I/O binding
on torch tensors, so data never leaves the GPU: the input's ``data_ptr()`` is bound directly
and outputs are written into torch tensors allocated for them.

The model's facts come from the ONNX metadata. Precision is that of the exported graph
(``--precision`` at export); asking for another one is an error, not a silent cast.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from mtl_perception.errors import UserError
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.metadata import ModelMetadata

#: onnxruntime type string -> (numpy, torch) element types.
_DTYPES = {
    "tensor(float)": (np.float32, torch.float32),
    "tensor(float16)": (np.float16, torch.float16),
    "tensor(uint8)": (np.uint8, torch.uint8),
    "tensor(int64)": (np.int64, torch.int64),
    "tensor(int32)": (np.int32, torch.int32),
}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError(
            "backend 'onnxruntime' needs onnxruntime: pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"
        ) from None
    return onnxruntime


def check_graph(session: Any, metadata: ModelMetadata, source: str) -> None:
    """``UserError`` unless the graph's input and outputs are those its metadata describes.

    Metadata is only text in the file: a foreign ONNX with this project's metadata copied in
    would otherwise start "ready" and fail every frame.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    layout = "(B, H, W, 3) uint8" if metadata.raw_input else "(B, 3, H, W) float"
    want_types = ("tensor(uint8)",) if metadata.raw_input else ("tensor(float)", "tensor(float16)")
    problems = []
    if len(inputs) != 1:
        problems.append(f"{len(inputs)} inputs instead of one image {layout}")
    else:
        shape = list(inputs[0].shape)
        channels = shape[3 if metadata.raw_input else 1] if len(shape) == 4 else None
        if inputs[0].type not in want_types or len(shape) != 4 or isinstance(channels, int) and channels != 3:
            problems.append(f"input {inputs[0].name} {inputs[0].type} {shape} is not an image {layout}")
    names = {o.name for o in outputs}
    if names != set(metadata.output_names):
        problems.append(f"outputs {sorted(names)} are not the metadata's tasks {list(metadata.output_names)}")
    unknown = [f"{o.name} {o.type}" for o in outputs if o.type not in _DTYPES]
    if unknown:
        problems.append(f"outputs of unsupported type: {', '.join(unknown)}")
    if problems:
        raise UserError(f"{source} is not a model its metadata describes: {'; '.join(problems)}")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self, path: str | os.PathLike, device: torch.device, precision: str | None = None, threads: int | None = None
    ) -> None:
        ort = import_onnxruntime()
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("onnxruntime on cuda needs onnxruntime-gpu (the CUDA execution provider is missing)")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        # Same thread count as torch, so the two CPU backends are compared on equal terms and a
        # node's other threads keep the cores torch was told to leave free.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # No busy-waiting after a run: spinning threads took the cores from the pipeline's
        # post-processing that follows every forward (its argmax ran ~1.5x slower after a
        # forward with spinning, the forward itself no faster: docs/measurements.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime's own Fail / InvalidProtobuf / NoSuchFile types
            raise UserError(f"cannot load ONNX model {path}: {exc}") from None
        metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, str(path))
        if precision is not None and precision != metadata.precision:
            raise UserError(
                f"{path} is a {metadata.precision} graph; for {precision} export it with --precision {precision}"
            )
        check_graph(self.session, metadata, str(path))
        super().__init__(metadata, device, metadata.precision)
        self.input = self.session.get_inputs()[0]
        self.input_np_dtype, self.input_torch_dtype = _DTYPES[self.input.type]
        self.outputs = [(o.name, *_DTYPES[o.type]) for o in self.session.get_outputs()]
        self.path = str(path)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.device.type == "cuda":
            return self._forward_cuda(x)
        feed = x.detach().to("cpu", self.input_torch_dtype).contiguous().numpy()
        results = self.session.run(None, {self.input.name: feed})
        return {name: torch.from_numpy(value) for (name, _, _), value in zip(self.outputs, results)}

    def _forward_cuda(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """GPU only: bind torch CUDA tensors as the session's input and outputs (no host copy)."""
        x = x.to(self.device, self.input_torch_dtype).contiguous()
        binding = self.session.io_binding()
        binding.bind_input(
            self.input.name, "cuda", self.device.index or 0, self.input_np_dtype, tuple(x.shape), x.data_ptr()
        )
        outputs = {}
        for name, np_dtype, torch_dtype in self.outputs:
            out = torch.empty(self._output_shape(name, x), dtype=torch_dtype, device=self.device)
            binding.bind_output(name, "cuda", self.device.index or 0, np_dtype, tuple(out.shape), out.data_ptr())
            outputs[name] = out
        # onnxruntime runs on its own CUDA stream: the input must be complete before it starts.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outputs

    def _output_shape(self, name: str, x: torch.Tensor) -> tuple[int, ...]:
        m = self.metadata
        b, h, w = (x.shape[0], x.shape[1], x.shape[2]) if m.raw_input else (x.shape[0], x.shape[2], x.shape[3])
        channels = {"semantic": m.num_classes, "instance": 2, "depth": 1}
        return (b, h, w) if name == "semantic_ids" else (b, channels[name], h, w)

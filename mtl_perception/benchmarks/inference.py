"""``mtl-perception bench inference``: bare forward vs the whole pipeline, per backend.

For each backend (those that can run here), precision, network size and camera size (the
camera can be larger than the network, as on a vehicle: ``--camera-sizes``), and each output
resolution (``network``, the node's default, or the camera's ``input``): the bare forward latency
(``backend.forward`` on a ready input tensor), the pipeline latency (uint8 camera image in,
host arrays out; ``--outputs``: the default semantic, instances and metric depth, or ``all``:
every output, as the node computes them with every topic subscribed), their ratio (the
pipeline's overhead; target <= 1.15 at 256x512 on the CPU) and frames per second. Forward and
pipeline calls are interleaved, so load from other processes hits both alike; medians are
reported, with two ratios that varying load cannot skew: ``ratio_in_call`` (each pipeline
call's total over its own forward stage) and ``cpu_ratio`` (CPU time, all threads). The
image is a rendered synthetic street scene at the camera size.

Model: ``--model``, else the shipped default model, else a randomly initialised network with
the ``model:`` section of ``config/train/synthetic.yaml`` (ResNet-18 at output stride 16). A
random network's outputs are not a street's: its (dx, dy) are near 0, so every thing pixel
votes for itself and the vote histogram is a plateau, a hard case for grouping. The JSON
says which model was measured.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mtl_perception.benchmarks.base import Benchmark, bench_model, parse_sizes

def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, help="checkpoint (default: the shipped model, else a random ResNet-18 OS16)"
    )
    parser.add_argument(
        "--backends", default="auto", help="comma list of torch,onnxruntime,tensorrt (default: all usable here)"
    )
    parser.add_argument("--sizes", default="256x512", help="comma list of HxW network sizes (default: 256x512)")
    parser.add_argument(
        "--camera-sizes", default=None,
        help="comma list of HxW camera image sizes, each run at every network size (default: the network sizes)",
    )
    parser.add_argument(
        "--output-resolutions", default="network",
        help="comma list of network,input: where outputs are made (default: network, the node's default)",
    )
    parser.add_argument(
        "--outputs", default="default",
        help="default (semantic, instances, depth), all (what the node computes with every topic subscribed: "
        "colour images too, and the network-resolution data of points and markers), or a comma list of outputs",
    )
    parser.add_argument(
        "--precisions", default="auto", help="comma list of fp32,fp16,bf16 (default: fp32 on CPU, +fp16 on GPU)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls of each kind (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default: 2)")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _TimedGrouper:
    """The pipeline's grouper, timed: grouping is the one post-processing step whose cost
    depends on the scene (how many votes and peaks), so it is reported on its own."""

    def __init__(self, grouper: Any) -> None:
        self.grouper = grouper
        self.ms: list[float] = []

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter()
        result = self.grouper(*args)
        self.ms.append((time.perf_counter() - start) * 1e3)
        return result


def _outputs(value: str) -> tuple[frozenset[str], frozenset[str]]:
    """``--outputs`` as (outputs, network_outputs) for the pipeline; unknown names refused here,
    before a model loads (what the model cannot make, the pipeline refuses)."""
    from mtl_perception.errors import UserError
    from mtl_perception.inference.output_topics import OUTPUT_TOPICS, pipeline_outputs
    from mtl_perception.inference.pipeline import DEFAULT_OUTPUTS, OUTPUTS

    if value == "default":
        return DEFAULT_OUTPUTS, frozenset()
    if value == "all":
        return pipeline_outputs(list(OUTPUT_TOPICS))
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    if not names or names - OUTPUTS:
        raise UserError(f"--outputs: default, all or a comma list of {', '.join(sorted(OUTPUTS))}; got {value!r}")
    return names, frozenset()


def _measure(
    pipeline: Any, image: Any, outputs: tuple[frozenset[str], frozenset[str]], repeats: int, warmup: int
) -> dict[str, Any]:
    """Interleaved bare-forward and pipeline timings (ms) of one pipeline making ``outputs``."""
    backend = pipeline.backend
    x = pipeline.preprocess(image)
    pipeline.grouper = grouper = _TimedGrouper(pipeline.grouper)
    forward_ms, pipeline_ms, forward_cpu, pipeline_cpu, stages = [], [], [], [], []
    for i in range(warmup + repeats):
        _sync(backend.device)
        t0, c0 = time.perf_counter(), time.process_time()
        backend.forward(x)
        _sync(backend.device)
        t1, c1 = time.perf_counter(), time.process_time()
        result = pipeline(image, outputs=outputs[0], network_outputs=outputs[1])
        t2, c2 = time.perf_counter(), time.process_time()
        if i >= warmup:
            forward_ms.append((t1 - t0) * 1e3)
            pipeline_ms.append((t2 - t1) * 1e3)
            forward_cpu.append(c1 - c0)
            pipeline_cpu.append(c2 - c1)
            stages.append(result.timings)
    fwd, pipe = statistics.median(forward_ms), statistics.median(pipeline_ms)
    return {
        "forward_ms": fwd,
        "pipeline_ms": pipe,
        "ratio": pipe / fwd,
        # The same ratio within each pipeline call (total / its own forward stage): immune to
        # load from other processes changing between the bare and the pipeline calls.
        "ratio_in_call": statistics.median(s["total"] / s["forward"] for s in stages),
        # CPU time (all threads) of a pipeline call over a bare forward: the work ratio, which
        # a busy machine does not change (on a GPU it measures host-side work only).
        "cpu_ratio": statistics.median(pipeline_cpu) / statistics.median(forward_cpu),
        "fps": 1e3 / pipe,
        "forward_ms_min": min(forward_ms),
        "pipeline_ms_min": min(pipeline_ms),
        "stages_ms": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "grouping_ms": statistics.median(grouper.ms[warmup:]),
        "instances": len(result.instance_list),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| backend | device | precision | size | camera | outputs | outputs at | forward ms | pipeline ms | ratio "
        "| ratio in call | cpu ratio | fps | pre / post (grouping) / copy ms |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        s = r["stages_ms"]
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['size']} | {r['camera']} | "
            f"{r['outputs']} | {r['output_resolution']} | {r['forward_ms']:.1f} | "
            f"{r['pipeline_ms']:.1f} | {r['ratio']:.3f} | {r['ratio_in_call']:.3f} | {r['cpu_ratio']:.3f} | "
            f"{r['fps']:.1f} | "
            f"{s['preprocess']:.1f} / {s['postprocess']:.1f} ({r['grouping_ms']:.1f}) / {s['copy']:.1f} |"
        )
    return "\n".join(lines)


def _usable_backends(device: Any) -> list[str]:
    """torch always; onnxruntime where it can run on ``device`` (on a GPU only with
    onnxruntime-gpu's CUDA provider: the plain wheel is CPU-only); TensorRT on a GPU."""
    usable = ["torch"]
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        if device.type != "cuda" or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            usable.append("onnxruntime")
    if device.type == "cuda" and importlib.util.find_spec("tensorrt"):
        usable.append("tensorrt")
    return usable


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mtl_perception.data.synth.generate import render_image
    from mtl_perception.errors import UserError
    from mtl_perception.inference.backend import resolve_device
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import Pipeline

    if args.repeats < 1 or args.warmup < 0:
        raise UserError("--repeats must be >= 1 and --warmup >= 0")
    device = resolve_device(args.device)
    if args.backends == "auto":
        backends = _usable_backends(device)
    else:
        backends = [b.strip() for b in args.backends.split(",")]
    if args.precisions == "auto":
        precisions = ["fp32", "fp16"] if device.type == "cuda" else ["fp32"]
    else:
        precisions = [p.strip() for p in args.precisions.split(",")]
    sizes = parse_sizes(args.sizes)
    cameras = parse_sizes(args.camera_sizes, "--camera-sizes") if args.camera_sizes else None
    resolutions = [r.strip() for r in args.output_resolutions.split(",")]
    if not resolutions or any(r not in ("network", "input") for r in resolutions):
        raise UserError(f"--output-resolutions: a comma list of network and input, got {args.output_resolutions!r}")
    outputs = _outputs(args.outputs)

    rows = []
    with tempfile.TemporaryDirectory(prefix="mtl_bench_") as tmp:
        model_path, model_desc = bench_model(args.model, Path(tmp))
        for h, w in sizes:
            for name in backends:
                for precision in precisions:
                    options: dict[str, Any] = {"cache_dir": Path(tmp)} if name != "torch" else {}
                    if name == "tensorrt":
                        options.update(height=h, width=w)
                    backend = create_backend(name, model_path, device, precision, **options)
                    for ch, cw in cameras or [(h, w)]:
                        image = render_image("val", 0, ch, cw, seed=0).rgb
                        for resolution in resolutions:
                            pipeline = Pipeline(backend, network_size=(h, w), output_resolution=resolution)
                            row = {
                                "backend": name, "device": str(device), "precision": precision, "size": f"{h}x{w}",
                                "camera": f"{ch}x{cw}", "outputs": args.outputs, "output_resolution": resolution,
                            }
                            row.update(_measure(pipeline, image, outputs, args.repeats, args.warmup))
                            rows.append(row)
                            print(_table([row]).splitlines()[-1], flush=True)
    table = _table(rows)
    print(table)
    return {"model": model_desc, "torch_threads": torch.get_num_threads(), "results": rows, "table": table}


BENCHMARK = Benchmark(
    help="inference: bare forward vs full pipeline latency per backend, precision and size",
    add_arguments=_add_arguments,
    run=_run,
)

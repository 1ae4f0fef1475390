"""Run a network over a dataset split and accumulate the Table-1 metrics (and, optionally, AP/PQ).

Shared by the trainer's validation and ``mtl-perception evaluate``: both must measure the
same thing. Evaluation is at the dataset's output size (the network's input size), where
the targets live; predictions are the network's raw outputs (argmax classes, (dx, dy)
vectors, disparity in pixels). The accumulator holds sums, so the trainer can shard a split
over processes and add the sums (see ``MetricAccumulator.state_tensor``).

Instance grouping and the Cityscapes AP / PQ (:class:`InstanceScoring`) are optional: the
trainer's validation leaves them off to stay fast, ``evaluate`` turns them on. Whatever runs
the network (a ``nn.Module`` here, an inference backend in ``evaluate``), :func:`evaluate`
turns its raw outputs into metrics the same way, so backends are compared on equal terms.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from mtl_perception.data.loading import loader_batches
from mtl_perception.errors import UserError
from mtl_perception.evaluation.instance_ap import InstanceEvaluator, scaled_min_region_size
from mtl_perception.evaluation.metrics import MetricAccumulator

#: Keys :meth:`InstanceScoring.result` reports.
INSTANCE_METRICS = ("AP", "AP50", "PQ", "SQ", "RQ", "PQ_things", "PQ_stuff")

Outputs = Mapping[str, torch.Tensor]


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a collated batch moved to ``device`` (strings such as ``stem`` left as they are)."""
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


def semantic_prediction(outputs: Outputs, with_confidence: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(train ids (B, H, W), softmax maximum (B, H, W) or None) of a batch of raw outputs.

    Ids come from ``semantic_ids`` when a backend already has them (an argmax folded into the
    graph, or ``Pipeline.run_batch``), else from the logits. The confidence, which ranks
    instances for the AP as the pipeline's does, needs the logits: ``None`` without them.
    """
    logits = outputs.get("semantic")
    ids = outputs.get("semantic_ids")
    if logits is None:
        return ids, None
    if not with_confidence:
        return (logits.argmax(1) if ids is None else ids), None
    best, best_ids = logits.max(1)  # one pass for the ids and the maximum (first class on ties, as argmax)
    # softmax maximum = 1 / sum_c exp(l_c - max_c l): one temporary instead of softmax's two.
    confidence = (logits - best.unsqueeze(1)).exp_().sum(1).reciprocal_()
    return (best_ids if ids is None else ids), confidence


class InstanceScoring:
    """Groups a batch's instance vectors into instances and scores them (AP, AP50, PQ, SQ, RQ).

    ``grouper``: from :func:`mtl_perception.postprocess.grouping.build_grouper`. ``size``: the
    evaluated (height, width), which scales the AP's minimum region size. ``writer``: an
    optional :class:`~mtl_perception.evaluation.cityscapes_results.CityscapesResultsWriter`
    that receives the same predictions, so the official scripts score what was scored here.
    """

    def __init__(self, grouper: Callable[..., list], size: tuple[int, int], writer: Any | None = None) -> None:
        self.grouper = grouper
        self.min_region_size = scaled_min_region_size(*size)
        self.evaluator = InstanceEvaluator(min_region_size=self.min_region_size)
        self.writer = writer

    def update(
        self, vectors: torch.Tensor, ids: torch.Tensor, confidence: torch.Tensor | None, batch: Mapping[str, Any]
    ) -> None:
        """Group (B, 2, H, W) ``vectors`` with train ``ids`` (B, H, W) and score them against ``batch``."""
        instances = self.grouper(vectors, ids, confidence)
        semantic = ids.cpu().numpy()
        gt = batch["instance_ids"].cpu().numpy()
        for i, inst in enumerate(instances):
            labels, classes, scores = inst.labels.cpu().numpy(), inst.classes.cpu().numpy(), inst.scores.cpu().numpy()
            self.evaluator.add(semantic[i], labels, classes, scores, gt[i])
            if self.writer is not None:
                self.writer.add(batch["stem"][i], semantic[i], labels, classes, scores)

    def result(self) -> dict[str, float]:
        """:data:`INSTANCE_METRICS` and ``AP_<class>`` per thing class, as fractions (0..1); NaN
        where there was nothing to evaluate."""
        result = self.evaluator.result()
        out = {k: math.nan if result[k] is None else float(result[k]) for k in INSTANCE_METRICS}
        for name, values in result["per_class"].items():
            if "AP" in values:
                out[f"AP_{name}"] = math.nan if values["AP"] is None else float(values["AP"])
        return out


@torch.no_grad()
def evaluate(
    forward: Callable[[torch.Tensor], Outputs],
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    tasks: Iterable[str],
    instances: InstanceScoring | None = None,
    refuse_nonfinite: bool = False,
) -> MetricAccumulator:
    """Metric sums of ``forward`` (normalised images (B, 3, H, W) -> raw outputs) over ``batches``.

    ``instances``, when given, also groups and scores the instance vectors of every batch
    (the network must have semantic and instance heads). ``refuse_nonfinite``: a NaN/Inf
    output is a ``UserError`` naming the image, instead of metrics that silently skip it
    (a NaN disparity counts as no prediction and would read as ``n/a``, like a missing head).
    """
    metrics = MetricAccumulator(tasks)
    with loader_batches(batches) as loaded:
        for batch in loaded:
            batch = batch_to_device(batch, device)
            outputs = {k: v if k == "semantic_ids" else v.float() for k, v in forward(batch["image"]).items()}
            if refuse_nonfinite:
                _refuse_nonfinite(outputs, batch)
            ids, confidence = semantic_prediction(outputs, with_confidence=instances is not None)
            if ids is not None:
                metrics.update_semantic(ids, batch["semantic"])
            metrics.update({k: outputs[k] for k in ("instance", "depth") if k in outputs}, batch)
            if instances is not None:
                instances.update(outputs["instance"], ids, confidence, batch)
    return metrics


def _refuse_nonfinite(outputs: Outputs, batch: Mapping[str, Any]) -> None:
    bad = [k for k, v in outputs.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        stems = batch.get("stem")
        where = f" (batch starting at {stems[0]})" if stems else ""
        raise UserError(
            f"the model's {', '.join(bad)} output is not finite (NaN/Inf){where}: the model is broken "
            "(diverged training, or a precision it cannot run in); metrics would be meaningless"
        )


def in_batches_of(forward: Callable[[torch.Tensor], Outputs], size: int | None) -> Callable[[torch.Tensor], Outputs]:
    """``forward`` run on at most ``size`` images at a time, outputs concatenated (``None``: as is).

    A graph exported at a fixed shape takes exactly its batch (the exporter's fixed shape is
    batch 1), while the data loader's batch is the user's choice: this keeps them apart.
    """
    if size is None:
        return forward

    def chunked(images: torch.Tensor) -> Outputs:
        if images.shape[0] <= size:
            return forward(images)
        # Cloned: a backend's outputs may be buffers the next forward overwrites.
        parts = [{k: v.clone() for k, v in forward(chunk).items()} for chunk in images.split(size)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    return chunked


@torch.no_grad()
def accumulate(
    model: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    tasks: Iterable[str],
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    instances: InstanceScoring | None = None,
) -> MetricAccumulator:
    """Metrics sums of ``model`` (put in eval mode, restored afterwards) over ``batches``."""
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )

    def forward(image: torch.Tensor) -> Outputs:
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with autocast:
            return model(image)

    try:
        return evaluate(forward, batches, device, tasks, instances)
    finally:
        model.train(was_training)

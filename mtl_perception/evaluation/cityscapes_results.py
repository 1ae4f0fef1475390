"""Writer of the official Cityscapes results format, for ``cityscapesscripts``' evaluators.

Layout under the output folder, one sub-folder per official evaluator (each searches its
results root recursively for ``<city>_<seq>_<frame>*``, so the three must not share one):

- ``semantic/<stem>_pred_labelIds.png``: labelIds, 8-bit (ignore -> 0 "unlabeled").
  evalPixelLevelSemanticLabeling with ``CITYSCAPES_RESULTS=<out>/semantic``.
- ``instance/<stem>_pred.txt`` with one line per instance ``masks/<stem>_<k>.png <labelId>
  <confidence>``, and the binary masks (0 / 255) under ``instance/masks/``.
  evalInstanceLevelSemanticLabeling with ``CITYSCAPES_RESULTS=<out>/instance``.
- ``panoptic/cityscapes_panoptic_<split>.json`` (COCO panoptic results: image_id = stem,
  segments with labelId categories) and ``panoptic/cityscapes_panoptic_<split>/<stem>_panoptic.png``
  (segment id as R + 256 G + 256^2 B). evalPanopticSemanticLabeling with
  ``--prediction-json-file`` pointing at the JSON. The JSON is written by :meth:`close`.

The panoptic segments are those of :func:`mtl_perception.evaluation.panoptic.panoptic_prediction`,
so the official PQ and the project's PQ see the same prediction.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from mtl_perception.data.labels import NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from mtl_perception.errors import UserError
from mtl_perception.evaluation.panoptic import CATEGORIES, panoptic_prediction
from mtl_perception.io_utils import atomic_write_text

_TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)  # train id 255 (ignore) -> 0 (unlabeled)
_TRAIN_TO_LABEL[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise UserError(f"cannot write {path}")


class CityscapesResultsWriter:
    """Writes one image at a time with :meth:`add`; :meth:`close` (or ``with``) writes the JSON."""

    def __init__(self, out_dir: Path | str, split: str = "val") -> None:
        self.out_dir = Path(out_dir)
        self.split = split
        self.semantic_dir = self.out_dir / "semantic"
        self.instance_dir = self.out_dir / "instance"
        self.panoptic_json = self.out_dir / "panoptic" / f"cityscapes_panoptic_{split}.json"
        self.panoptic_dir = self.panoptic_json.with_suffix("")
        for folder in (self.semantic_dir, self.instance_dir / "masks", self.panoptic_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(f"cannot create results folder {folder}: {err.strerror}") from err
        self._annotations: list[dict[str, Any]] = []

    def add(self, stem: str, semantic: Any, instance_map: Any, classes: Any, scores: Any) -> None:
        """One image (``stem`` like ``frankfurt_000000_000294``): train ids (H, W), instance map
        (H, W) with per-instance train ids and scores, at the resolution to evaluate."""
        if not stem or any(c.isspace() or c in "/\\" for c in stem):
            raise UserError(f"image name {stem!r} cannot be used in Cityscapes results (no spaces or slashes)")
        semantic = np.asarray(semantic).astype(np.int64, copy=False)
        instance_map = np.asarray(instance_map).astype(np.int64, copy=False)
        classes = np.asarray(classes, dtype=np.int64).ravel()
        scores = np.asarray(scores, dtype=np.float64).ravel()
        _write_png(self.semantic_dir / f"{stem}_pred_labelIds.png", _TRAIN_TO_LABEL[semantic])

        lines = []
        for k, (train_id, score) in enumerate(zip(classes, scores), start=1):
            mask = instance_map == k
            if not mask.any():
                continue
            name = f"masks/{stem}_{k:04d}.png"
            _write_png(self.instance_dir / name, mask.astype(np.uint8) * 255)
            lines.append(f"{name} {_TRAIN_TO_LABEL[train_id]} {score:.6f}\n")
        atomic_write_text(self.instance_dir / f"{stem}_pred.txt", "".join(lines))

        pan, ids, category = panoptic_prediction(semantic, instance_map, classes)
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], axis=-1).astype(np.uint8)
        file_name = f"{stem}_panoptic.png"
        _write_png(self.panoptic_dir / file_name, rgb[..., ::-1])  # OpenCV writes BGR
        areas = np.bincount(np.searchsorted(ids, pan[pan != 0]), minlength=len(ids))
        segments = [
            {"id": int(i), "category_id": int(c), "area": int(a), "iscrowd": 0}
            for i, c, a in zip(ids, category, areas)
        ]
        self._annotations.append({"image_id": stem, "file_name": file_name, "segments_info": segments})

    def close(self) -> None:
        """Write the panoptic JSON (the PNGs are already written)."""
        categories = [
            {"id": l.id, "name": l.name, "color": list(l.color), "supercategory": l.category, "isthing": int(l.hasInstances)}
            for l in CATEGORIES
        ]
        payload = {"annotations": self._annotations, "categories": categories}
        atomic_write_text(self.panoptic_json, json.dumps(payload) + "\n")

    def __enter__(self) -> "CityscapesResultsWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()

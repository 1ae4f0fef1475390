"""The caption of an instance in the node's markers (``"car 0.87"``) and the score read back from it.

RViz shows the caption beside each instance. ``bag eval --live`` reads the score back, because
no other output topic carries per-instance scores: with them the live AP ranks instances as
the offline AP does (to the caption's two decimals) instead of giving every instance score 1.
"""
from __future__ import annotations

from mtl_perception.data.labels import CLASS_NAMES

#: Marker namespace of the caption texts (the spheres have their own).
CAPTION_NAMESPACE = "labels"


def instance_caption(train_id: int, score: float) -> str:
    """``"<class name> <score to two decimals>"``."""
    return f"{CLASS_NAMES[train_id]} {score:.2f}"


def caption_score(text: str) -> float | None:
    """The score at the end of a caption; ``None`` for text that is not one."""
    _, _, last = text.rpartition(" ")
    try:
        return float(last)
    except ValueError:
        return None

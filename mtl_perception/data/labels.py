"""Cityscapes label conventions, taken from ``cityscapesscripts`` (never copied by hand).

19 train classes, ignore index 255. Thing classes are those with ``hasInstances`` and a train
id. gtFine instance ids are ``labelId * 1000 + k`` for thing instances; values below 1000 are
stuff or crowd regions and carry no instance target.
"""
from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS
from cityscapesscripts.helpers.labels import name2label

NUM_CLASSES = 19
IGNORE_INDEX = 255
INSTANCE_ID_DIVISOR = 1000

_TRAIN_LABELS = sorted((l for l in _CS_LABELS if 0 <= l.trainId < IGNORE_INDEX), key=lambda l: l.trainId)
assert len(_TRAIN_LABELS) == NUM_CLASSES and [l.trainId for l in _TRAIN_LABELS] == list(range(NUM_CLASSES))

#: Train-id order class names ("road", ..., "bicycle").
CLASS_NAMES: tuple[str, ...] = tuple(l.name for l in _TRAIN_LABELS)
#: Train ids of the thing classes (person, rider, car, truck, bus, train, motorcycle, bicycle).
THING_TRAIN_IDS: tuple[int, ...] = tuple(l.trainId for l in _TRAIN_LABELS if l.hasInstances)
#: The labelId of each train id (for writing official Cityscapes result PNGs).
TRAIN_ID_TO_LABEL_ID = np.array([l.id for l in _TRAIN_LABELS], dtype=np.uint8)
#: Cityscapes palette, indexed by train id; row 255 (ignore) is black.
PALETTE = np.zeros((256, 3), dtype=np.uint8)
PALETTE[:NUM_CLASSES] = np.array([l.color for l in _TRAIN_LABELS], dtype=np.uint8)

#: labelId (0..255) -> train id, 255 for classes not trained on.
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _l in _CS_LABELS:
    if 0 <= _l.id < 256:
        LABEL_ID_TO_TRAIN_ID[_l.id] = _l.trainId if 0 <= _l.trainId < IGNORE_INDEX else IGNORE_INDEX

#: labelIds of classes that carry instances in gtFine (including caravan and trailer).
INSTANCE_LABEL_IDS: tuple[int, ...] = tuple(l.id for l in _CS_LABELS if l.hasInstances)
SKY_LABEL_ID: int = name2label["sky"].id
SKY_TRAIN_ID: int = name2label["sky"].trainId

#: Boolean lookup: is this train id a thing class? (index 255 is False)
IS_THING_TRAIN_ID = np.zeros(256, dtype=bool)
IS_THING_TRAIN_ID[list(THING_TRAIN_IDS)] = True


def label_id(name: str) -> int:
    """labelId of a Cityscapes class name, e.g. ``label_id("car") == 26``."""
    return name2label[name].id


def train_id(name: str) -> int:
    """Train id of a Cityscapes class name, e.g. ``train_id("car") == 13``."""
    return name2label[name].trainId

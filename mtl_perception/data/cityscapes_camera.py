"""The Cityscapes camera: the one reference every camera default of the project follows.

A model's metadata falls back to it when its training data carried no camera, the synthetic
rig is built to it, and bag and benchmark defaults take it, so the runtime (metadata,
pipeline) never depends on the synthetic-scene renderer for a constant.
"""
from __future__ import annotations

#: Cityscapes' mean camera at 2048 px width, the scale our intrinsics follow (fx scales with width).
CITYSCAPES_WIDTH = 2048
CITYSCAPES_FX = 2262.52
#: Stereo baseline (m) of the Cityscapes rig (``extrinsic.baseline`` of most of its cameras):
#: the synthetic rig's default, so synthetic and real training data share one baseline.
CITYSCAPES_BASELINE = 0.209313

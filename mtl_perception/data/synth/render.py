"""Render one frame of a scene: colour image, labelIds, instanceIds, depth and disparity.

The z-buffer pass (``raster.py``) decides which quad owns each pixel; the shading pass then
paints only the pixels each quad finally owns, lit by the sun and sky according to the quad's
orientation. Labels, instances and depth are read from the same ownership map, so they agree
with the image exactly; disparity comes from the z-buffer (``stereo.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.labels import SKY_LABEL_ID, label_id
from mtl_perception.data.synth import atmosphere, stereo
from mtl_perception.data.synth.camera import Camera
from mtl_perception.data.synth.primitives import FRONT, SIDE, Lighting, Scene
from mtl_perception.data.synth.raster import Raster, rasterise, surface_coordinates

EGO_LABEL_ID = label_id("ego vehicle")


@dataclass
class RenderedFrame:
    """One rendered frame with all its ground truth (arrays are H x W)."""

    rgb: np.ndarray  # uint8 (H, W, 3)
    label_ids: np.ndarray  # uint8
    instance_ids: np.ndarray  # uint16, labelId*1000+k for things, labelId for stuff
    depth: np.ndarray  # float32 Z (m) along the optical axis; inf for sky, nan on the bonnet
    disparity: np.ndarray  # float32 fx*B/Z in pixels (0 for sky and invalid pixels)
    disparity_valid: np.ndarray  # bool; sky is valid
    camera: Camera

    def disparity_png(self) -> np.ndarray:
        return stereo.encode(self.disparity, self.disparity_valid)


def _light(light: Lighting, kind: int, plane: float) -> np.ndarray:
    """Sky plus sun light reaching a face, from the face's outward normal (towards the camera)."""
    if kind == FRONT:
        normal = np.array([0.0, 0.0, -1.0])
    elif kind == SIDE:
        normal = np.array([-np.sign(plane), 0.0, 0.0])
    else:
        normal = np.array([0.0, -np.sign(plane), 0.0])
    sun = max(0.0, float(normal @ light.sun)) * light.sun_strength
    return (light.ambient * light.ambient_colour + sun * light.sun_colour).astype(np.float32)


def _shade(scene: Scene, camera: Camera, r: Raster, rays) -> np.ndarray:
    """Planar (3, H, W) image: every pixel's albedo times the light on its owner's face.

    Pixels are grouped by owner with one stable sort, so each quad paints a contiguous slice
    and the per-quad cost is its paint call, not masking the whole image. The image is kept
    planar because per-pixel factors (haze, shadows) broadcast fast over a leading channel axis.
    """
    H, W = r.owner.shape
    flat = r.owner.ravel()
    order = np.argsort(flat, kind="stable")
    # where each owner's run starts in the sorted order (owner -1, the sky, comes first)
    starts = np.searchsorted(flat[order], np.arange(-1, len(scene.quads) + 1, dtype=np.int16))
    counts = np.diff(starts)
    n_sky = int(counts[0])
    pixels = order[n_sky:].astype(np.int32)
    depth = r.depth.ravel()[pixels]
    rows, cols = np.divmod(pixels, np.int32(W))
    colours = np.empty((3, pixels.size), dtype=np.float32)
    fx = np.float32(camera.fx)
    lights: dict[tuple[int, float], np.ndarray] = {}
    end = 0
    for index in np.flatnonzero(counts[1:]):
        start, end = end, end + int(counts[index + 1])
        kind, plane = int(r.placed.kind[index]), float(r.placed.plane[index])
        t = depth[start:end]
        a, b = surface_coordinates(r.placed, index, rays, rows[start:end], cols[start:end], t)
        footprint = t / fx  # metres of surface per pixel, stretched on surfaces seen at a slant
        if kind != FRONT:
            footprint = np.maximum(footprint, footprint * t / np.float32(max(abs(plane), 0.05)))
        key = (kind, float(np.sign(plane)))
        if key not in lights:
            lights[key] = _light(scene.lighting, kind, plane)
        colours[:, start:end] = scene.quads[index].look.paint(a, b, footprint) * lights[key][:, None]
    planar = np.zeros((3, H * W), dtype=np.float32)
    for c in range(3):  # one channel at a time: three times faster than a (3, n) scatter
        planar[c][pixels] = colours[c]
    return planar.reshape(3, H, W)


def render(scene: Scene, camera: Camera, frame: int = 0, rng: np.random.Generator | None = None) -> RenderedFrame:
    """Render frame ``frame`` of a scene (the camera has moved ``frame * scene.step`` metres).

    ``rng`` only drives sensor noise; everything else is fixed by the scene.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    raster = rasterise(scene, camera, frame)
    rays = camera.rays()
    quads = scene.quads
    lookup = raster.owner + 1  # 0 = sky
    label_ids = np.array([SKY_LABEL_ID] + [q.label for q in quads], dtype=np.uint8)[lookup]
    instance_ids = np.array([SKY_LABEL_ID] + [q.gt_id for q in quads], dtype=np.uint16)[lookup]
    kind_map = np.array([-1] + [q.kind for q in quads], dtype=np.int8)[lookup]

    rgb = _shade(scene, camera, raster, rays)
    atmosphere.ground_shadows(scene, camera, rays, frame, raster.depth, kind_map, rgb)
    rgb = atmosphere.haze(scene.lighting, raster.depth, rgb)
    sky = raster.owner < 0
    sky_rows = np.flatnonzero(sky.any(axis=1))
    if sky_rows.size:
        r0, r1 = int(sky_rows[0]), int(sky_rows[-1]) + 1
        colour = atmosphere.sky(scene.lighting, rays, r0, r1)
        mask = sky[r0:r1]
        for c in range(3):
            rgb[c, r0:r1][mask] = colour[:, :, c][mask]

    depth = raster.depth.copy()
    hood = atmosphere.hood_mask(scene, camera)
    if hood is not None:
        atmosphere.paint_hood(scene, camera, hood, rgb)
        label_ids[hood] = EGO_LABEL_ID
        instance_ids[hood] = EGO_LABEL_ID
        depth[hood] = np.nan
        sky &= ~hood
    disparity, valid = stereo.disparity(camera, raster.depth, sky, hood)
    return RenderedFrame(
        rgb=atmosphere.camera_response(scene.lighting, camera, rgb, rng),
        label_ids=label_ids,
        instance_ids=instance_ids,
        depth=depth,
        disparity=disparity,
        disparity_valid=valid,
        camera=camera,
    )


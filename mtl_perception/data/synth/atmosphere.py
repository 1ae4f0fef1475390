"""Light beyond the surfaces' own colour: sky, ground shadows, haze, the bonnet, the camera.

These are the cues a network uses besides shape: haze that thickens with distance (a depth
cue), soft shadows under vehicles (contact with the ground), a sky gradient with clouds, and
a camera response (exposure, white balance, vignetting, blur, sensor noise) that varies per
scene so colour statistics do not give the answer away.
"""
from __future__ import annotations

import cv2
import numpy as np

from mtl_perception.data.synth.camera import Camera, Rays
from mtl_perception.data.synth.primitives import FLOOR, Lighting, Scene
from mtl_perception.data.synth.raster import NEAR
from mtl_perception.data.synth.texture import value

_SKY_STEP = 4  # the sky is smooth: shade every 4th pixel and interpolate


def sky(light: Lighting, rays: Rays, r0: int, r1: int) -> np.ndarray:
    """Sky colour (rows r0..r1, all columns) by elevation, with clouds fixed to directions.

    Clouds depend on the ray direction only, so they stay put while the camera drives.
    """
    rows = np.arange(r0, r1 + _SKY_STEP, _SKY_STEP).clip(max=len(rays.dy) - 1)
    cols = np.arange(0, len(rays.dx) + _SKY_STEP, _SKY_STEP).clip(max=len(rays.dx) - 1)
    dx, dy, dz = rays.dx[cols][None, :], rays.dy[rows][:, None], rays.dz[rows][:, None]
    elevation = np.arctan2(-dy, np.sqrt(dx * dx + dz * dz))
    azimuth = np.arctan2(dx, dz)
    f = (np.clip(elevation / 0.6, 0.0, 1.0) ** 0.6)[:, :, None]
    colour = light.sky_horizon * (1 - f) + light.sky_top * f
    cloud = value(azimuth * 3.0, elevation * 9.0 + 3.0, 9.0, "blob", 17.0)
    cloud += 0.5 * value(azimuth * 11.0, elevation * 30.0, 9.0, "blob", 5.0)
    cover = np.clip((cloud + 1.6 * light.clouds - 0.9) * 1.4, 0.0, 1.0)[:, :, None]
    coarse = (colour * (1 - cover) + light.cloud_colour * cover).astype(np.float32)
    full = cv2.resize(coarse, ((len(cols) - 1) * _SKY_STEP + 1, (len(rows) - 1) * _SKY_STEP + 1), interpolation=cv2.INTER_LINEAR)
    return full[: r1 - r0, : len(rays.dx)]


def ground_shadows(scene: Scene, camera: Camera, rays: Rays, frame: int, depth: np.ndarray, kind_map: np.ndarray, rgb: np.ndarray) -> None:
    """Darken ground pixels of the planar image under vehicles and people and in facades' cast shadows."""
    h = camera.mount_height
    camera_z = frame * scene.step
    for s in scene.shadows:
        ox = s.velocity[0] * frame
        oz = s.velocity[1] * frame - camera_z
        x0, x1, z0, z1 = s.x0 + ox, s.x1 + ox, s.z0 + oz, s.z1 + oz
        if z1 + s.softness < NEAR:
            continue
        near = max(z0 - s.softness, NEAR)
        far = z1 + s.softness
        pts = np.array([[x0 - s.softness, h, near], [x1 + s.softness, h, near], [x1 + s.softness, h, far], [x0 - s.softness, h, far]])
        pts = np.concatenate([pts, pts - [0, 0.2, 0]])  # the raised pavement is a little higher
        u, v, _ = camera.project(pts)
        c0, c1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, camera.width)
        r0, r1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, camera.height)
        if c0 >= c1 or r0 >= r1:
            continue
        ground = kind_map[r0:r1, c0:c1] == FLOOR
        if not ground.any():
            continue
        t = depth[r0:r1, c0:c1]
        x = rays.dx[c0:c1][None, :] * t
        z = rays.dz[r0:r1][:, None] * t
        outside = np.maximum(np.maximum(np.maximum(x0 - x, x - x1), np.maximum(z0 - z, z - z1)), 0.0)
        f = np.clip(1.0 - outside / s.softness, 0.0, 1.0) * ground
        region = rgb[:, r0:r1, c0:c1]
        region *= 1.0 - s.strength * f


def haze(light: Lighting, depth: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Aerial perspective on the planar image: colours fade towards the haze colour with distance."""
    keep = np.exp(depth * np.float32(-1.0 / light.haze_distance))
    for c in range(3):
        hc = np.float32(light.haze_colour[c])
        rgb[c] -= hc
        rgb[c] *= keep
        rgb[c] += hc
    return rgb


def hood_mask(scene: Scene, camera: Camera) -> np.ndarray | None:
    """Pixels of the ego vehicle's bonnet: an elliptic bulge rising from the bottom edge."""
    hood = scene.hood
    if hood is None:
        return None
    u = (np.arange(camera.width) - camera.width / 2) / (hood.half_width * camera.width)
    top = camera.height * (1 - hood.height * np.sqrt(np.clip(1 - u * u, 0, 1)))
    return np.arange(camera.height)[:, None] >= top[None, :]


def paint_hood(scene: Scene, camera: Camera, mask: np.ndarray, rgb: np.ndarray) -> None:
    """Glossy dark bonnet: body colour darkening downwards with a faint sky reflection."""
    rows = np.arange(camera.height, dtype=np.float32)
    top = camera.height * (1 - scene.hood.height)
    f = np.clip((rows - top) / (camera.height - top + 1), 0, 1)
    for c in range(3):
        column = scene.hood.colour[c] * (0.9 - 0.5 * f) + scene.lighting.sky_horizon[c] * 0.12
        rgb[c][mask] = np.broadcast_to(column[:, None], mask.shape)[mask]


def camera_response(light: Lighting, camera: Camera, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, white balance, vignetting, optics blur and sensor noise: planar float -> 8-bit RGB."""
    gain = light.exposure * light.white_balance * 255.0
    fall = np.float32(1.0)
    if light.vignette > 0:
        yy = (np.arange(camera.height, dtype=np.float32) - camera.v0) / camera.width
        xx = (np.arange(camera.width, dtype=np.float32) - camera.u0) / camera.width
        fall = 1.0 - np.float32(light.vignette * 2.5) * (yy[:, None] ** 2 + xx[None, :] ** 2)
    # sensor noise, shared by the channels (luminance noise); uniform with the given deviation
    grain = (rng.random((camera.height, camera.width), dtype=np.float32) - np.float32(0.5)) * np.float32(light.noise * 255.0 * 12**0.5)
    grain += np.float32(0.5)  # rounds on the conversion below
    planes = []
    for c in range(3):
        plane = cv2.GaussianBlur(rgb[c] * (fall * np.float32(gain[c])), (0, 0), light.blur)
        plane += grain
        planes.append(np.clip(plane, 0, 255).astype(np.uint8))
    return cv2.merge(planes)

"""The z-buffer pass: which quad owns each pixel, at what depth, at which surface point.

Each quad's screen bounding box is intersected with the quad's plane in one vectorised step
(one division per row or per column, thanks to the separable rays of ``camera.py``); the
quad's cutout and the depth test then decide the pixels it wins. Corner projection and
placement run for all quads at once, so the per-quad Python work stays small.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.synth.camera import Camera, Rays
from mtl_perception.data.synth.primitives import FLOOR, FRONT, SIDE, Look, Scene

NEAR = 0.3  # metres; nothing closer than this is drawn


@dataclass
class Placed:
    """All quads moved into the camera-centred frame of one time step (arrays of length N)."""

    kind: np.ndarray
    plane: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    b0: np.ndarray
    b1: np.ndarray


@dataclass
class Raster:
    """Per-pixel ownership (quad index, -1 = nothing, i.e. sky) and depth, plus the placed quads."""

    owner: np.ndarray  # int16 (H, W)
    depth: np.ndarray  # float32 (H, W), inf where nothing was hit
    placed: Placed


def place(scene: Scene, frame: int, camera: Camera) -> Placed:
    """Move quads by their velocity and into the frame of the camera at ``frame``."""
    q = scene.quads
    kind = np.array([x.kind for x in q], dtype=np.int8)
    geom = np.array([(x.plane, x.a0, x.a1, x.b0, x.b1, x.velocity[0], x.velocity[1]) for x in q], dtype=np.float64).reshape(-1, 7)
    plane, a0, a1, b0, b1, vx, vz = geom.T
    ox = vx * frame
    oz = vz * frame - frame * scene.step
    h = camera.mount_height
    is_front, is_side = kind == FRONT, kind == SIDE
    plane = plane + np.where(is_front, oz, np.where(is_side, ox, h))
    da = np.where(is_side, oz, ox)
    db = np.where(kind == FLOOR, oz, h)
    return Placed(kind, plane, a0 + da, a1 + da, b0 + db, b1 + db)


def _corners(p: Placed) -> np.ndarray:
    """(N, 4, 3) corners of every quad, in order around its outline."""
    n = len(p.kind)
    ring_a = np.stack([p.a0, p.a1, p.a1, p.a0], axis=1)
    ring_b = np.stack([p.b0, p.b0, p.b1, p.b1], axis=1)
    plane = np.repeat(p.plane[:, None], 4, axis=1)
    k = p.kind[:, None]
    x = np.where(k == SIDE, plane, ring_a)
    y = np.where(k == FLOOR, plane, ring_b)
    z = np.where(k == FRONT, plane, np.where(k == SIDE, ring_a, ring_b))
    return np.stack([x, y, z], axis=2).reshape(n, 4, 3)


def _clip_near(corners: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of one quad's outline against the near plane."""
    kept = []
    for i in range(4):
        cur, nxt = corners[i], corners[(i + 1) % 4]
        dc, dn = depth[i], depth[(i + 1) % 4]
        if dc >= NEAR:
            kept.append(cur)
        if (dc >= NEAR) != (dn >= NEAR):
            kept.append(cur + (nxt - cur) * (NEAR - dc) / (dn - dc))
    return np.array(kept)


def screen_boxes(camera: Camera, p: Placed) -> list[tuple[int, int, int, int] | None]:
    """Rows/columns [r0, r1) x [c0, c1) each quad can cover (None: behind or off screen)."""
    corners = _corners(p)
    depth = np.sin(camera.pitch) * corners[..., 1] + np.cos(camera.pitch) * corners[..., 2]
    u, v, _ = camera.project(corners.reshape(-1, 3))
    u, v = u.reshape(-1, 4), v.reshape(-1, 4)
    ahead, behind = (depth >= NEAR).all(axis=1), (depth < NEAR).all(axis=1)
    with np.errstate(invalid="ignore"):
        lo_u, hi_u, lo_v, hi_v = u.min(axis=1), u.max(axis=1), v.min(axis=1), v.max(axis=1)
    boxes: list[tuple[int, int, int, int] | None] = []
    for i in range(len(depth)):
        if behind[i]:
            boxes.append(None)
            continue
        if ahead[i]:
            bu0, bu1, bv0, bv1 = lo_u[i], hi_u[i], lo_v[i], hi_v[i]
        else:
            cu, cv, _ = camera.project(_clip_near(corners[i], depth[i]))
            bu0, bu1, bv0, bv1 = cu.min(), cu.max(), cv.min(), cv.max()
        c0, c1 = max(int(np.floor(bu0)), 0), min(int(np.ceil(bu1)) + 1, camera.width)
        r0, r1 = max(int(np.floor(bv0)), 0), min(int(np.ceil(bv1)) + 1, camera.height)
        boxes.append((r0, r1, c0, c1) if c0 < c1 and r0 < r1 else None)
    return boxes


def _intersect(kind: int, plane: float, a0: float, a1: float, b0: float, b1: float, rays: Rays, box):
    """Depth t and local (a, b) of a quad's plane over a screen box, and which pixels hit the quad."""
    r0, r1, c0, c1 = box
    dx, dy, dz = rays.dx[c0:c1], rays.dy[r0:r1], rays.dz[r0:r1]
    p = np.float32(plane)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == FRONT:
            t_row = p / dz
            x = dx[None, :] * t_row[:, None]
            y = dy * t_row
            inside = (x >= a0) & (x < a1) & ((y >= b0) & (y < b1))[:, None]
            shape = inside.shape
            return np.broadcast_to(t_row[:, None], shape), x - np.float32(a0), np.broadcast_to((y - np.float32(b0))[:, None], shape), inside
        if kind == SIDE:
            t_col = p / dx
            z = dz[:, None] * t_col[None, :]
            y = dy[:, None] * t_col[None, :]
            inside = (t_col > NEAR)[None, :] & (z >= a0) & (z < a1) & (y >= b0) & (y < b1)
            return np.broadcast_to(t_col[None, :], inside.shape), z - np.float32(a0), y - np.float32(b0), inside
        t_row = p / dy
        x = dx[None, :] * t_row[:, None]
        z = dz * t_row
        inside = (x >= a0) & (x < a1) & ((t_row > NEAR) & (z >= b0) & (z < b1))[:, None]
        shape = inside.shape
        return np.broadcast_to(t_row[:, None], shape), x - np.float32(a0), np.broadcast_to((z - np.float32(b0))[:, None], shape), inside


def rasterise(scene: Scene, camera: Camera, frame: int) -> Raster:
    """Depth-test every quad of the scene at ``frame``."""
    if len(scene.quads) >= np.iinfo(np.int16).max:
        raise ValueError(f"too many quads in a scene: {len(scene.quads)}")
    H, W = camera.height, camera.width
    rays = camera.rays()
    placed = place(scene, frame, camera)
    depth = np.full((H, W), np.inf, dtype=np.float32)
    owner = np.full((H, W), -1, dtype=np.int16)
    p = placed
    for index, box in enumerate(screen_boxes(camera, placed)):
        if box is None:
            continue
        t, a, b, inside = _intersect(
            int(p.kind[index]), float(p.plane[index]), float(p.a0[index]), float(p.a1[index]), float(p.b0[index]), float(p.b1[index]), rays, box
        )
        r0, r1, c0, c1 = box
        z_region = depth[r0:r1, c0:c1]
        win = inside & (t < z_region)
        if not win.any():
            continue
        look = scene.quads[index].look
        if type(look).cutout is not Look.cutout:  # shaped: test only where the plane is hit and nearest
            cut = look.cutout(a[win], b[win])
            if cut is not None:
                win[win] = cut
        np.copyto(z_region, t, where=win)
        np.copyto(owner[r0:r1, c0:c1], np.int16(index), where=win)
    return Raster(owner, depth, placed)


def surface_coordinates(p: Placed, index: int, rays: Rays, rows: np.ndarray, cols: np.ndarray, t: np.ndarray):
    """Local (a, b) of pixels (rows, cols) at depth t on quad ``index``, as ``_intersect`` gives them."""
    kind = p.kind[index]
    if kind == FRONT:
        return rays.dx[cols] * t - np.float32(p.a0[index]), rays.dy[rows] * t - np.float32(p.b0[index])
    if kind == SIDE:
        return rays.dz[rows] * t - np.float32(p.a0[index]), rays.dy[rows] * t - np.float32(p.b0[index])
    return rays.dx[cols] * t - np.float32(p.a0[index]), rays.dz[rows] * t - np.float32(p.b0[index])

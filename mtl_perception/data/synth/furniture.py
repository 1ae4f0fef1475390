"""Street furniture and greenery: poles, street lamps, traffic signs and lights, trees, bushes.

Each builder returns quads standing at a ground height ``ground`` (world Y, negative on the
raised pavement). Plates and housings sit a few centimetres in front of their pole so the
pole shows only above and below them, as Cityscapes labels poles and signs separately.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.labels import label_id
from mtl_perception.data.synth import shapes
from mtl_perception.data.synth.primitives import Look, Quad, front
from mtl_perception.data.synth.surfaces import F32, Bark, Foliage, Metal, blob_bounds, fill, foliage_colour, jitter, rgb, tint
from mtl_perception.data.synth.texture import noise

POLE, SIGN, LIGHT, VEGETATION = (label_id(n) for n in ("pole", "traffic sign", "traffic light", "vegetation"))
POLE_COLOURS = [(0.45, 0.46, 0.47), (0.2, 0.22, 0.21), (0.6, 0.6, 0.58), (0.15, 0.25, 0.2)]
RED, WHITE, BLUE, YELLOW, BLACK = rgb(0.72, 0.06, 0.06), rgb(0.9, 0.9, 0.88), rgb(0.08, 0.25, 0.6), rgb(0.95, 0.75, 0.1), rgb(0.06, 0.06, 0.06)
SIGN_KINDS = ("prohibitory", "mandatory", "warning", "yield", "info", "priority", "stop")


@dataclass
class SignPlate(Look):
    """A traffic sign plate of ``size`` metres; its back is plain grey metal."""

    kind: str
    size: float
    back: bool
    seed: float

    def _outline(self, a, b):
        r = self.size / 2
        da, db = a - r, b - r
        if self.kind in ("prohibitory", "mandatory"):
            return da * da + db * db <= r * r
        if self.kind == "warning":
            return shapes.trapezoid(a, b, r, 0.0, r, 0.0, self.size)
        if self.kind == "yield":
            return shapes.trapezoid(a, b, r, r, 0.0, 0.0, self.size)
        if self.kind == "priority":
            return np.abs(da) + np.abs(db) <= r
        if self.kind == "stop":
            return np.maximum(np.maximum(np.abs(da), np.abs(db)), (np.abs(da) + np.abs(db)) / 1.414) <= r * 0.95
        return shapes.box(a, b, 0.0, self.size, 0.0, self.size)

    def cutout(self, a, b):
        return self._outline(a, b)

    def paint(self, a, b, fp):
        r = self.size / 2
        shade = 1.0 + 0.05 * noise(a, b, fp, 20.0, "fine", self.seed)
        if self.back:
            return tint(rgb(0.5, 0.5, 0.52), shade)
        da, db = a - r, b - r
        dist = np.sqrt(da * da + db * db)
        out = tint(WHITE, shade)
        k = self.kind
        if k == "prohibitory":
            fill(out, dist > 0.78 * r, RED)
            fill(out, (np.abs(db) < 0.12 * r) & (dist < 0.6 * r), BLACK)
        elif k == "mandatory":
            out[:] = BLUE[:, None]
            arrow = shapes.segment(a, b, (r, 1.5 * r), (r, 0.55 * r), 0.1 * r) | shapes.trapezoid(a, b, r, 0.0, 0.35 * r, 0.35 * r, 0.75 * r)
            fill(out, arrow, WHITE)
        elif k in ("warning", "yield"):
            inner = shapes.trapezoid(a, b, r, 0.0, 0.72 * r, 0.3 * r, 1.75 * r) if k == "warning" else shapes.trapezoid(a, b, r, 0.72 * r, 0.0, 0.25 * r, 1.7 * r)
            fill(out, ~inner, RED)
            if k == "warning":
                fill(out, shapes.box(a, b, 0.9 * r, 1.1 * r, 0.85 * r, 1.45 * r), BLACK)
        elif k == "priority":
            fill(out, np.abs(da) + np.abs(db) <= 0.7 * r, YELLOW)
        elif k == "stop":
            out[:] = RED[:, None]
            fill(out, (np.abs(db) < 0.18 * r) & (np.abs(da) < 0.65 * r), WHITE)
        else:
            out[:] = BLUE[:, None]
            fill(out, (np.abs(da) < 0.82 * r) & (np.abs(db) < 0.82 * r) & ~((np.abs(da) < 0.72 * r) & (np.abs(db) < 0.72 * r)), WHITE)
            fill(out, shapes.box(a, b, 0.7 * r, 1.25 * r, 0.45 * r, 1.55 * r) & ~shapes.box(a, b, 0.85 * r, 1.1 * r, 0.6 * r, 0.95 * r), WHITE)
        return out


@dataclass
class SignalHead(Look):
    """A traffic light housing with three lamps, one lit (or the plain back of one)."""

    width: float
    height: float
    lit: int  # 0 red, 1 amber, 2 green
    back: bool
    housing: np.ndarray

    def cutout(self, a, b):
        return shapes.rounded_box(a, b, 0.0, self.width, 0.0, self.height, 0.06)

    def paint(self, a, b, fp):
        out = tint(self.housing, 1.0 - 0.2 * np.clip(b / self.height, 0, 1))
        if self.back:
            return out
        r = self.width * 0.32
        for i, on in enumerate(((1.0, 0.15, 0.1), (1.0, 0.7, 0.1), (0.2, 1.0, 0.5))):
            cb = self.height * (0.18 + 0.32 * i)
            d = np.hypot(a - self.width / 2, b - cb)
            lamp = d < r
            if i == self.lit:
                out[:, lamp] = tint(rgb(*on), 1.0 + 0.6 * np.clip(1 - d[lamp] / r, 0, 1))
            else:
                fill(out, lamp, rgb(0.12, 0.12, 0.1))
            fill(out, (d >= r) & (d < r * 1.25) & (b < cb), BLACK)  # visor
        return out


@dataclass
class LampHead(Look):
    """Lamp head: dark metal body, bright diffuser on its lower edge."""

    colour: np.ndarray

    def paint(self, a, b, fp):
        out = tint(self.colour, np.ones(a.shape, dtype=F32))
        fill(out, b > 0.13, rgb(0.92, 0.92, 0.85))
        return out


def pole(x: float, z: float, height: float, width: float, ground: float, colour: np.ndarray) -> Quad:
    return front(x - width / 2, x + width / 2, ground - height, ground, z, POLE, Metal(colour, width))


def street_lamp(rng: np.random.Generator, x: float, z: float, ground: float, towards: float) -> list[Quad]:
    """A lamp post with an arm reaching over the road (``towards`` = -1 left, +1 right)."""
    colour = jitter(rng, POLE_COLOURS[rng.integers(len(POLE_COLOURS))], 0.03)
    height, width = rng.uniform(6.0, 9.0), rng.uniform(0.14, 0.22)
    arm = rng.uniform(1.0, 2.5)
    top = ground - height
    x_end = x + towards * arm
    quads = [pole(x, z, height, width, ground, colour)]
    quads.append(front(min(x, x_end), max(x, x_end), top, top + 0.09, z, POLE, Metal(colour, 0.09, across_b=True)))
    head = LampHead(rgb(0.3, 0.3, 0.32))
    quads.append(front(x_end - 0.35, x_end + 0.35, top + 0.02, top + 0.2, z - 0.02, POLE, head))
    return quads


def sign_post(rng: np.random.Generator, x: float, z: float, ground: float) -> list[Quad]:
    """A pole with one or two sign plates, a quarter of them seen from the back."""
    colour = jitter(rng, POLE_COLOURS[rng.integers(len(POLE_COLOURS))], 0.03)
    height = rng.uniform(2.6, 3.6)
    quads = [pole(x, z, height, rng.uniform(0.06, 0.09), ground, colour)]
    top = ground - height
    for i in range(1 if rng.random() < 0.65 else 2):
        size = rng.uniform(0.55, 0.85)
        plate = SignPlate(SIGN_KINDS[rng.integers(len(SIGN_KINDS))], size, bool(rng.random() < 0.25), float(rng.uniform(0, 100)))
        y0 = top - 0.05 + i * (size + 0.08)
        quads.append(front(x - size / 2, x + size / 2, y0, y0 + size, z - 0.03, SIGN, plate))
    return quads


def traffic_light(rng: np.random.Generator, x: float, z: float, ground: float, back: bool, mast: float | None) -> list[Quad]:
    """A signal on a post; with ``mast`` (a world X) a second head hangs from an arm over the road."""
    colour = jitter(rng, POLE_COLOURS[rng.integers(len(POLE_COLOURS))], 0.03)
    height = rng.uniform(3.2, 4.2) if mast is None else rng.uniform(5.5, 6.5)
    housing = jitter(rng, (0.1, 0.1, 0.1) if rng.random() < 0.7 else (0.75, 0.6, 0.1), 0.03)
    lit = int(rng.integers(3))
    w, h = rng.uniform(0.28, 0.36), rng.uniform(0.8, 1.0)
    quads = [pole(x, z, height, rng.uniform(0.12, 0.18), ground, colour)]
    y0 = ground - min(height, 3.3) + 0.05 if mast is None else ground - 3.2
    quads.append(front(x - w / 2, x + w / 2, y0, y0 + h, z - 0.08, LIGHT, SignalHead(w, h, lit, back, housing)))
    if mast is not None:
        top = ground - height
        quads.append(front(min(x, mast), max(x, mast), top, top + 0.14, z, POLE, Metal(colour, 0.14, across_b=True)))
        quads.append(front(mast - w / 2, mast + w / 2, top + 0.14, top + 0.14 + h, z - 0.05, LIGHT, SignalHead(w, h, lit, back, housing)))
    return quads


def _foliage_quad(rng: np.random.Generator, x_centre: float, y_bottom: float, z: float, blobs: list) -> Quad:
    """An upright foliage quad just large enough for its blobs (given around (0, 0) = centre/bottom)."""
    a0, a1, b0, b1 = blob_bounds(blobs)
    local = [(ca - a0, cb - b0, ra, rb) for ca, cb, ra, rb in blobs]
    return front(x_centre + a0, x_centre + a1, y_bottom + b0, y_bottom + b1, z, VEGETATION, Foliage(foliage_colour(rng), float(rng.uniform(0, 100)), local))


def tree(rng: np.random.Generator, x: float, z: float, ground: float, scale: float = 1.0) -> list[Quad]:
    """A trunk and a lumpy crown of several overlapping blobs (both 'vegetation')."""
    trunk_h = rng.uniform(1.8, 3.2) * scale
    trunk_w = rng.uniform(0.2, 0.4) * scale
    radius = rng.uniform(1.6, 3.4) * scale
    crown_h = radius * rng.uniform(1.6, 2.4)
    crown_bottom = ground - trunk_h + crown_h * 0.15  # the crown hangs a little below the trunk's top
    blobs = []
    for _ in range(int(rng.integers(3, 6))):
        ra = radius * rng.uniform(0.5, 0.8)
        rb = crown_h * rng.uniform(0.3, 0.45)
        blobs.append((rng.uniform(-0.45, 0.45) * radius, -crown_h / 2 + rng.uniform(-0.25, 0.25) * crown_h, ra, rb))
    bark = Bark(jitter(rng, (0.3, 0.25, 0.2), 0.04), trunk_w, float(rng.uniform(0, 100)))
    return [
        front(x - trunk_w / 2, x + trunk_w / 2, ground - trunk_h - crown_h * 0.3, ground, z, VEGETATION, bark),
        _foliage_quad(rng, x, crown_bottom, z - 0.05, blobs),
    ]


def bush(rng: np.random.Generator, x: float, z: float, ground: float) -> Quad:
    width, height = rng.uniform(1.0, 3.0), rng.uniform(0.6, 1.6)
    blobs = [(rng.uniform(-0.2, 0.2) * width, -height * 0.5, width * rng.uniform(0.3, 0.5), height * 0.45) for _ in range(3)]
    return _foliage_quad(rng, x, ground + 0.1, z, blobs)

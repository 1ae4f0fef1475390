"""Vehicles: cars, trucks, buses, trams, motorcycles and bicycles as boxes and profiles.

A vehicle on the street is an end face (the rear of one driving away, the front of an
oncoming one) plus, when it is off to one side, the side face the camera sees. Bicycles and
motorcycles are side profiles (wheels and frame) or narrow rear views. Each class has its own
proportions and colour statistics so appearance, not only position, tells them apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.labels import label_id
from mtl_perception.data.synth import shapes
from mtl_perception.data.synth.primitives import Look, Quad, Shadow, front, side
from mtl_perception.data.synth.surfaces import F32, fill, jitter, pick, rgb, tint, wrap
from mtl_perception.data.synth.texture import noise

TYRE = rgb(0.04, 0.04, 0.045)
RIM = rgb(0.55, 0.56, 0.58)
DARK = rgb(0.07, 0.07, 0.08)
PLATE = rgb(0.86, 0.86, 0.82)
TAIL = rgb(0.62, 0.04, 0.04)
HEAD = rgb(0.9, 0.9, 0.82)
GLASS = rgb(0.12, 0.14, 0.17)

CAR_COLOURS = [
    (0.85, 0.85, 0.85), (0.08, 0.08, 0.09), (0.55, 0.56, 0.58), (0.35, 0.36, 0.38), (0.12, 0.2, 0.42),
    (0.55, 0.08, 0.08), (0.9, 0.9, 0.88), (0.15, 0.25, 0.18), (0.4, 0.32, 0.25), (0.65, 0.7, 0.75),
]


@dataclass
class Body:
    """Shared proportions of a car: length, width, height, ride height, cabin and wheels."""

    length: float
    width: float
    height: float
    clearance: float
    wheel_r: float
    cabin_h: float  # height of the glasshouse, from the roof down
    roof_half: float  # half width of the roof as a fraction of the width
    rear_slope: tuple[float, float]  # cabin rear edge (fraction of length) at roof and at waist
    front_slope: tuple[float, float]  # windscreen edge at roof and at waist
    colour: np.ndarray
    glass: np.ndarray
    seed: float


def random_body(rng: np.random.Generator, seed: float) -> Body:
    style = pick(rng, ["sedan", "hatch", "suv", "van"], [0.4, 0.3, 0.2, 0.1])
    length, height, cabin, rear, front_ = {
        "sedan": (rng.uniform(4.4, 4.9), rng.uniform(1.4, 1.5), 0.4, (0.26, 0.13), (0.62, 0.76)),
        "hatch": (rng.uniform(3.7, 4.3), rng.uniform(1.45, 1.55), 0.42, (0.08, 0.04), (0.62, 0.76)),
        "suv": (rng.uniform(4.4, 4.9), rng.uniform(1.65, 1.8), 0.42, (0.05, 0.03), (0.66, 0.78)),
        "van": (rng.uniform(4.8, 5.4), rng.uniform(1.9, 2.1), 0.5, (0.02, 0.01), (0.74, 0.84)),
    }[str(style)]
    return Body(
        length=length,
        width=rng.uniform(1.72, 1.9) if style != "van" else rng.uniform(1.9, 2.0),
        height=height,
        clearance=rng.uniform(0.15, 0.2),
        wheel_r=rng.uniform(0.3, 0.34),
        cabin_h=height * cabin,
        roof_half=rng.uniform(0.36, 0.42) if style in ("sedan", "hatch") else 0.45,
        rear_slope=rear,
        front_slope=front_,
        colour=jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.04),
        glass=jitter(rng, (0.12, 0.14, 0.17), 0.03),
        seed=seed,
    )


def _gloss(body_colour: np.ndarray, b: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Paint brightest along the shoulder line, darker towards the sills: reads as curved metal."""
    f = np.clip((b - top) / max(bottom - top, 1e-3), 0, 1)
    return tint(body_colour, 1.12 - 0.4 * f)


@dataclass
class CarEnd(Look):
    """Rear (``rear=True``) or front of a car, as seen from behind or by oncoming traffic."""

    body: Body
    rear: bool

    def _parts(self, a, b):
        c = self.body
        w, h = c.width, c.height
        cabin = shapes.trapezoid(a, b, w / 2, w * c.roof_half, w * 0.47, 0.0, c.cabin_h + 0.02)
        hull = shapes.rounded_box(a, b, 0.0, w, c.cabin_h, h - c.clearance, 0.14)
        tyres = (b >= h - c.clearance - 0.2) & (b < h) & (((a > 0.1) & (a < 0.32)) | ((a > w - 0.32) & (a < w - 0.1)))
        return cabin, hull, tyres

    def cutout(self, a, b):
        cabin, hull, tyres = self._parts(a, b)
        return cabin | hull | tyres

    def paint(self, a, b, fp):
        c = self.body
        w, h = c.width, c.height
        cabin, hull, tyres = self._parts(a, b)
        out = _gloss(c.colour, b, c.cabin_h, h - c.clearance)
        glass = shapes.trapezoid(a, b, w / 2, w * c.roof_half - 0.07, w * 0.47 - 0.09, 0.07, c.cabin_h - 0.03)
        sky = np.clip(1.6 - 1.4 * b / c.cabin_h, 0.6, 1.6) if not self.rear else 1.0 + 0.3 * noise(a, b, fp, 3.0, "blob", c.seed)
        out[:, glass] = tint(c.glass, np.broadcast_to(sky, a.shape)[glass] * (1.6 if not self.rear else 1.0))
        waist = c.cabin_h + 0.04
        corner = (b >= waist) & (b < waist + 0.17) & (((a > 0.04) & (a < 0.3)) | ((a > w - 0.3) & (a < w - 0.04)))
        fill(out, corner, TAIL if self.rear else HEAD)
        bumper = (b >= h - c.clearance - 0.24) & (b < h - c.clearance)
        out[:, bumper] *= 0.55
        plate = (np.abs(a - w / 2) < 0.26) & (b >= h - c.clearance - 0.46) & (b < h - c.clearance - 0.34)
        fill(out, plate, PLATE)
        fill(out, plate & (a < w / 2 - 0.22), rgb(0.1, 0.2, 0.6))
        if not self.rear:
            grille = (np.abs(a - w / 2) < 0.38) & (b >= waist + 0.12) & (b < waist + 0.3)
            fill(out, grille, DARK)
        fill(out, tyres & ~hull, TYRE)
        return out


@dataclass
class CarSide(Look):
    """Side of a car; ``rear_near`` says whether its rear is the end nearer the camera."""

    body: Body
    rear_near: bool

    def _r(self, a):
        return a if self.rear_near else F32(self.body.length) - a

    def _axles(self):
        c = self.body
        return c.wheel_r + 0.45, c.length - c.wheel_r - 0.6

    def _parts(self, a, b):
        c = self.body
        r = self._r(a)
        L, h = c.length, c.height
        cabin = shapes.slanted(
            r, b, c.rear_slope[0] * L, c.front_slope[0] * L, c.rear_slope[1] * L, c.front_slope[1] * L, 0.0, c.cabin_h + 0.02
        )
        hull = shapes.rounded_box(r, b, 0.0, L, c.cabin_h, h - c.clearance, 0.2)
        wheels = np.zeros(a.shape, dtype=bool)
        arches = np.zeros(a.shape, dtype=bool)
        for axle in self._axles():
            wheels |= shapes.ellipse(r, b, axle, h - c.wheel_r, c.wheel_r, c.wheel_r)
            arches |= shapes.ellipse(r, b, axle, h - c.wheel_r, c.wheel_r + 0.06, c.wheel_r + 0.06)
        return r, cabin, hull, wheels, arches

    def cutout(self, a, b):
        _, cabin, hull, wheels, arches = self._parts(a, b)
        return cabin | (hull & ~arches) | wheels | (arches & (b < self.body.height - self.body.clearance))

    def paint(self, a, b, fp):
        c = self.body
        r, cabin, hull, wheels, arches = self._parts(a, b)
        L, h = c.length, c.height
        out = _gloss(c.colour, b, c.cabin_h, h - c.clearance)
        glass = shapes.slanted(
            r, b, c.rear_slope[0] * L + 0.08, c.front_slope[0] * L - 0.05,
            c.rear_slope[1] * L + 0.14, c.front_slope[1] * L - 0.16, 0.06, c.cabin_h - 0.03,
        )
        out[:, glass] = tint(c.glass, 1.0 + 0.35 * noise(a, b, fp, 2.0, "blob", c.seed)[glass])
        pillar = glass & (np.abs(r - 0.5 * (c.rear_slope[1] + c.front_slope[1]) * L) < 0.06)
        fill(out, pillar, DARK)
        seams = (b > c.cabin_h) & ((np.abs(r - 0.47 * L) < 0.012) | (np.abs(r - 0.72 * L) < 0.012))
        out[:, seams & hull] *= 0.5
        out[:, (b > h - c.clearance - 0.12) & hull] *= 0.55
        lamp = (b >= c.cabin_h + 0.04) & (b < c.cabin_h + 0.18)
        fill(out, lamp & (r < 0.1), TAIL)
        fill(out, lamp & (r > L - 0.08), rgb(0.9, 0.55, 0.1))
        fill(out, arches & ~wheels, DARK)
        axles = self._axles()
        for axle in axles:
            d = np.hypot(r - axle, b - (h - c.wheel_r))
            fill(out, wheels & (d < c.wheel_r), TYRE)
            fill(out, wheels & (d < c.wheel_r * 0.62), RIM)
            fill(out, wheels & (d < c.wheel_r * 0.18), RIM * 0.5)
        return out


def _end_and_side(
    x: float, z: float, width: float, length: float, height: float, end: Look, side_look: Look,
    label: int, instance: int, velocity: tuple[float, float],
) -> list[Quad]:
    """The camera-facing end of a box at lateral centre x, near depth z, plus its visible side."""
    quads = [front(x - width / 2, x + width / 2, -height, 0.0, z, label, end, instance=instance, velocity=velocity)]
    if abs(x) > width / 2 + 0.05:
        face_x = x - width / 2 if x > 0 else x + width / 2
        quads.append(side(face_x, z, z + length, -height, 0.0, label, side_look, instance=instance, velocity=velocity))
    return quads


def car(rng, x: float, z: float, away: bool, instance: int, velocity=(0.0, 0.0)) -> tuple[list[Quad], Shadow, float]:
    """A car whose nearer end is at depth z; returns its quads, ground shadow and length."""
    body = random_body(rng, float(rng.uniform(0, 100)))
    quads = _end_and_side(
        x, z, body.width, body.length, body.height, CarEnd(body, rear=away), CarSide(body, rear_near=away),
        label_id("car"), instance, velocity,
    )
    return quads, _shadow(x, z, body.width, body.length, velocity), body.length


def _shadow(x, z, width, length, velocity) -> Shadow:
    return Shadow(x - width / 2, x + width / 2, z + 0.2, z + length - 0.2, 0.55, 0.45, velocity)


@dataclass
class Boxy(Look):
    """End or side of a bus, truck or tram: a flat box with windows, doors, lamps and wheels.

    ``windows`` are (a0, a1, b0, b1) rectangles of glass; ``wheels`` (centre a, radius); the
    lower ``clearance`` metres are open except for wheels (and a bar for trucks). On an end
    face (``end_on``) wheels show as the tyres' treads, dark bands, not as discs.
    """

    colour: np.ndarray
    height: float
    width: float  # extent along a
    clearance: float
    windows: list[tuple[float, float, float, float]]
    wheels: list[tuple[float, float]]
    lamps: list[tuple[float, float, float, float, tuple[float, float, float]]]
    stripe: tuple[float, float, np.ndarray] | None
    seed: float
    grid: float = 0.0  # vertical lines every ``grid`` metres (truck doors, container ribs)
    bar: bool = False
    cab: tuple[float, float] | None = None  # (a start, height) of a lower cab part at the far end
    end_on: bool = False

    def _solid(self, a, b):
        body = shapes.box(a, b, 0.0, self.width, 0.0, self.height - self.clearance)
        if self.cab is not None:
            start, cab_h = self.cab
            body &= (a < start - 0.25) | (b >= self.height - cab_h)
            body &= ~((a >= start - 0.25) & (a < start))
        wheel = np.zeros(a.shape, dtype=bool)
        for ca, rad in self.wheels:
            if self.end_on:
                wheel |= shapes.rounded_box(a, b, ca - 0.22, ca + 0.22, self.height - 2 * rad, self.height, 0.08)
            else:
                wheel |= shapes.ellipse(a, b, ca, self.height - rad, rad, rad)
        return body, wheel

    def cutout(self, a, b):
        body, wheel = self._solid(a, b)
        solid = body | wheel
        if self.bar:
            solid |= shapes.box(a, b, 0.05, self.width - 0.05, self.height - self.clearance + 0.15, self.height - self.clearance + 0.3)
        return solid

    def paint(self, a, b, fp):
        body, wheel = self._solid(a, b)
        shade = 1.0 + 0.05 * noise(a, b, fp, 10.0, "fine", self.seed) - 0.15 * np.clip(b / self.height, 0, 1)
        out = tint(self.colour, shade)
        if self.stripe is not None:
            s0, s1, colour = self.stripe
            fill(out, (b >= s0) & (b < s1), colour)
        if self.grid > 0:
            out[:, wrap(a, F32(self.grid)) < 0.03] *= 0.7
        for a0, a1, b0, b1 in self.windows:
            win = shapes.box(a, b, a0, a1, b0, b1)
            out[:, win] = tint(GLASS, 1.0 + 0.4 * noise(a, b, fp, 1.5, "blob", self.seed)[win])
        for a0, a1, b0, b1, colour in self.lamps:
            fill(out, shapes.box(a, b, a0, a1, b0, b1), colour)
        under = b >= self.height - self.clearance
        fill(out, under, DARK)
        fill(out, wheel, TYRE)
        if not self.end_on:
            for ca, rad in self.wheels:
                fill(out, shapes.ellipse(a, b, ca, self.height - rad, rad * 0.55, rad * 0.55), RIM)
        return out


BUS_COLOURS = [(0.85, 0.75, 0.1), (0.75, 0.1, 0.1), (0.9, 0.9, 0.88), (0.15, 0.3, 0.6), (0.2, 0.5, 0.3)]
TRAM_COLOURS = [(0.8, 0.1, 0.1), (0.9, 0.8, 0.15), (0.2, 0.35, 0.7), (0.9, 0.9, 0.9), (0.2, 0.55, 0.35)]


def _window_band(length: float, top: float, bottom: float, pitch: float, doors: list[float]) -> list[tuple]:
    """Side windows between pillars, leaving out door positions (doors get full-height glass)."""
    windows = []
    a = 0.5
    while a + pitch - 0.12 < length - 0.5:
        windows.append((a, a + pitch - 0.12, top, bottom))
        a += pitch
    for d in doors:
        windows.append((d, d + 1.2, top, bottom + 1.0))
    return windows


def bus(rng, x: float, z: float, away: bool, instance: int, velocity=(0.0, 0.0)) -> tuple[list[Quad], Shadow, float]:
    length, width, height = pick(rng, [12.0, 18.0], [0.75, 0.25]), 2.55, rng.uniform(3.0, 3.3)
    colour = jitter(rng, BUS_COLOURS[rng.integers(len(BUS_COLOURS))], 0.04)
    seed = float(rng.uniform(0, 100))
    clearance = 0.32
    if away:
        end_windows = [(0.15, width - 0.15, 0.35, 1.25)]
        end_lamps = [(0.1, 0.35, height - 0.85, height - 0.55, (0.62, 0.04, 0.04)), (width - 0.35, width - 0.1, height - 0.85, height - 0.55, (0.62, 0.04, 0.04))]
    else:
        end_windows = [(0.1, width - 0.1, 0.45, 2.0), (0.3, width - 0.3, 0.08, 0.35)]
        end_lamps = [(0.1, 0.45, height - 0.75, height - 0.55, (0.9, 0.9, 0.82)), (width - 0.45, width - 0.1, height - 0.75, height - 0.55, (0.9, 0.9, 0.82)), (0.5, width - 0.5, 0.12, 0.3, (0.95, 0.6, 0.1))]
    end = Boxy(colour, height, width, clearance, end_windows, [(0.35, 0.5), (width - 0.35, 0.5)], end_lamps, None, seed, end_on=True)
    doors = [length * 0.08, length * 0.45] + ([length * 0.8] if length > 14 else [])
    doors = [length - d - 1.2 for d in doors] if away else doors
    wheels = [(2.6, 0.5), (length - 3.3, 0.5)] if not away else [(3.3, 0.5), (length - 2.6, 0.5)]
    if length > 14:
        wheels.append((length / 2 + 1.5, 0.5))
    side_look = Boxy(colour, height, length, clearance, _window_band(length, 0.4, 1.55, 1.4, doors), wheels, [], (height - 0.9, height - 0.75, colour * 0.6), seed + 1)
    quads = _end_and_side(x, z, width, length, height, end, side_look, label_id("bus"), instance, velocity)
    return quads, _shadow(x, z, width, length, velocity), length


def truck(rng, x: float, z: float, away: bool, instance: int, velocity=(0.0, 0.0)) -> tuple[list[Quad], Shadow, float]:
    """Box truck: cargo box plus a lower cab at the front (seen from the side or head-on)."""
    box_len, width, height = rng.uniform(5.5, 8.0), 2.5, rng.uniform(3.3, 3.9)
    cab_len, cab_h = 2.3, rng.uniform(2.7, 3.0)
    length = box_len + 0.25 + cab_len
    box_colour = jitter(rng, [(0.9, 0.9, 0.88), (0.75, 0.75, 0.72), (0.2, 0.35, 0.6), (0.7, 0.15, 0.1), (0.85, 0.7, 0.2)][rng.integers(5)], 0.04)
    cab_colour = jitter(rng, [(0.9, 0.9, 0.9), (0.7, 0.1, 0.1), (0.15, 0.25, 0.55), (0.25, 0.25, 0.27)][rng.integers(4)], 0.04)
    seed = float(rng.uniform(0, 100))
    label = label_id("truck")
    clearance = 1.0
    shadow = _shadow(x, z, width, length, velocity)
    if away:
        end = Boxy(
            box_colour, height, width, clearance, [],
            [(0.35, 0.5), (width - 0.35, 0.5)],
            [(0.05, 0.3, height - 0.75, height - 0.6, (0.62, 0.04, 0.04)), (width - 0.3, width - 0.05, height - 0.75, height - 0.6, (0.62, 0.04, 0.04))],
            None, seed, grid=width / 2, bar=True, end_on=True,
        )
        side_look = Boxy(
            box_colour, height, length, clearance, [(box_len + 0.6, box_len + 1.9, height - cab_h + 0.25, height - cab_h + 1.1)],
            [(1.0, 0.5), (2.1, 0.5), (length - 1.2, 0.5)], [], None, seed + 1, grid=0.0, cab=(box_len + 0.25, cab_h),
        )
        return _end_and_side(x, z, width, length, height, end, side_look, label, instance, velocity), shadow, length
    cab = Boxy(
        cab_colour, cab_h, width, 0.55, [(0.15, width - 0.15, 0.25, 1.25)], [(0.35, 0.5), (width - 0.35, 0.5)],
        [(0.1, 0.45, cab_h - 0.8, cab_h - 0.6, (0.9, 0.9, 0.82)), (width - 0.45, width - 0.1, cab_h - 0.8, cab_h - 0.6, (0.9, 0.9, 0.82))],
        None, seed, end_on=True,
    )
    quads = [front(x - width / 2, x + width / 2, -cab_h, 0.0, z, label, cab, instance=instance, velocity=velocity)]
    box_face = Boxy(box_colour, height, width, clearance, [], [], [], None, seed + 2)
    quads.append(front(x - width / 2, x + width / 2, -height, -cab_h, z + cab_len + 0.25, label, box_face, instance=instance, velocity=velocity))
    if abs(x) > width / 2 + 0.05:
        box_side = Boxy(box_colour, height, length, clearance, [], [(1.2, 0.5), (length - 2.1, 0.5), (length - 1.0, 0.5)], [], None, seed + 1)
        face_x = x - width / 2 if x > 0 else x + width / 2
        look = _CabFirst(box_side, cab_len, cab_h, cab_colour)
        quads.append(side(face_x, z, z + length, -height, 0.0, label, look, instance=instance, velocity=velocity))
    return quads, shadow, length


@dataclass
class _CabFirst(Look):
    """Side of an oncoming truck: the cab comes first (near the camera), the box behind it."""

    box: Boxy
    cab_len: float
    cab_h: float
    cab_colour: np.ndarray

    def cutout(self, a, b):
        solid = self.box.cutout(a, b)
        gap = (a >= self.cab_len) & (a < self.cab_len + 0.25)
        low_cab = (a < self.cab_len) & (b < self.box.height - self.cab_h)
        return solid & ~gap & ~low_cab

    def paint(self, a, b, fp):
        out = self.box.paint(a, b, fp)
        cab = (a < self.cab_len) & (b < self.box.height - self.box.clearance)
        fill(out, cab, self.cab_colour)
        fill(out, cab & (a > 0.4) & (a < 1.7) & (b < self.box.height - self.cab_h + 1.1), GLASS * 1.2)
        return out


def tram(rng, x: float, z: float, away: bool, instance: int, velocity=(0.0, 0.0)) -> tuple[list[Quad], Shadow, float]:
    """A tram (Cityscapes 'train'): long, low-floor, big windscreen, window band, livery stripe."""
    length, width, height = rng.uniform(25.0, 40.0), rng.uniform(2.3, 2.65), rng.uniform(3.3, 3.6)
    colour = jitter(rng, TRAM_COLOURS[rng.integers(len(TRAM_COLOURS))], 0.04)
    trim = jitter(rng, (0.85, 0.85, 0.85) if colour.mean() < 0.7 else (0.2, 0.2, 0.22), 0.03)
    seed = float(rng.uniform(0, 100))
    end = Boxy(
        colour, height, width, 0.12, [(0.1, width - 0.1, 0.55, 1.75), (0.45, width - 0.45, 0.2, 0.45)], [],
        [(0.1, 0.45, height - 0.75, height - 0.55, (0.9, 0.9, 0.82) if not away else (0.62, 0.04, 0.04)),
         (width - 0.45, width - 0.1, height - 0.75, height - 0.55, (0.9, 0.9, 0.82) if not away else (0.62, 0.04, 0.04))],
        (height - 0.5, height - 0.3, trim), seed,
    )
    doors = [length * f for f in (0.12, 0.35, 0.6, 0.83)]
    side_look = Boxy(colour, height, length, 0.12, _window_band(length, 0.55, 1.7, 1.8, doors), [], [], (height - 0.5, height - 0.3, trim), seed + 1, grid=length / 4)
    quads = _end_and_side(x, z, width, length, height, end, side_look, label_id("train"), instance, velocity)
    return quads, _shadow(x, z, width, length, velocity), length


@dataclass
class Cycle(Look):
    """A bicycle or motorcycle in profile (``profile=True``) or seen from behind / ahead."""

    motor: bool
    profile: bool
    length: float
    height: float
    width: float
    colour: np.ndarray
    forward_right: bool  # profile only: which way the front wheel points

    def _geometry(self):
        L, H = self.length, self.height
        r = 0.31 if self.motor else 0.34
        rear, front_ = (r + 0.02, L - r - 0.02) if self.forward_right else (L - r - 0.02, r + 0.02)
        return r, rear, front_, H - r

    def anchors(self) -> tuple[float, float, float, float]:
        """Profile positions a rider needs: seat, handlebar and pedal a, and seat height (m)."""
        _, rear, front_, _ = self._geometry()
        sign = 1.0 if self.forward_right else -1.0
        return rear + sign * 0.3, front_ - sign * 0.12, rear + sign * 0.45, 0.95 if not self.motor else 0.85

    def _parts(self, a, b):
        H = self.height
        if not self.profile:
            w = self.width
            tyre = shapes.box(a, b, w / 2 - (0.07 if self.motor else 0.025), w / 2 + (0.07 if self.motor else 0.025), H - 0.66, H)
            bar = shapes.box(a, b, 0.0, w, 0.0, 0.05)
            stem = shapes.box(a, b, w / 2 - 0.03, w / 2 + 0.03, 0.0, H - 0.6)
            body = shapes.rounded_box(a, b, w / 2 - 0.2, w / 2 + 0.2, 0.3, H - 0.45, 0.08) if self.motor else shapes.box(a, b, w / 2 - 0.08, w / 2 + 0.08, 0.3, 0.38)
            return tyre, bar | stem | body
        r, rear, front_, hub = self._geometry()
        t = 0.09 if self.motor else 0.035
        wheels = shapes.ring(a, b, rear, hub, r, r - t) | shapes.ring(a, b, front_, hub, r, r - t)
        sign = 1.0 if self.forward_right else -1.0
        bb = (rear + sign * 0.45, hub + 0.05)
        seat = (rear + sign * 0.3, H - self.anchors()[3])
        head = (front_ - sign * 0.12, 0.04)
        tube = 0.03 if not self.motor else 0.05
        frame = (
            shapes.segment(a, b, (rear, hub), bb, tube) | shapes.segment(a, b, (rear, hub), seat, tube)
            | shapes.segment(a, b, bb, seat, tube) | shapes.segment(a, b, seat, (head[0], head[1] + 0.12), tube)
            | shapes.segment(a, b, bb, head, tube) | shapes.segment(a, b, head, (front_, hub), tube)
            | shapes.segment(a, b, (head[0] - sign * 0.12, head[1]), (head[0] + sign * 0.05, head[1]), tube)
        )
        if self.motor:
            frame |= shapes.ellipse(a, b, (rear + front_) / 2, hub - 0.15, abs(front_ - rear) * 0.32, 0.22)
            frame |= shapes.ellipse(a, b, (rear + front_) / 2 - sign * 0.2, H * 0.42, abs(front_ - rear) * 0.38, 0.1)
        else:
            frame |= shapes.ellipse(a, b, seat[0], seat[1], 0.12, 0.035)
        spokes = shapes.ellipse(a, b, rear, hub, 0.06, 0.06) | shapes.ellipse(a, b, front_, hub, 0.06, 0.06)
        if self.motor:
            spokes |= shapes.ellipse(a, b, rear, hub, r - t, r - t) | shapes.ellipse(a, b, front_, hub, r - t, r - t)
        return wheels, frame | spokes

    def cutout(self, a, b):
        tyres, rest = self._parts(a, b)
        return tyres | rest

    def paint(self, a, b, fp):
        tyres, rest = self._parts(a, b)
        out = tint(self.colour, np.ones(a.shape, dtype=F32))
        if self.motor and self.profile:
            r, rear, front_, hub = self._geometry()
            engine = (b > hub - 0.35) & (b < hub + 0.1) & (np.abs(a - (rear + front_) / 2) < 0.35)
            fill(out, engine, rgb(0.2, 0.2, 0.22))
            rims = shapes.ellipse(a, b, rear, hub, r - 0.09, r - 0.09) | shapes.ellipse(a, b, front_, hub, r - 0.09, r - 0.09)
            fill(out, rims, RIM)
        if not self.profile:
            fill(out, b < 0.06, DARK)
            fill(out, (b > self.height - 0.5) & (b < self.height - 0.42), TAIL)
        fill(out, tyres, TYRE)
        return out


BIKE_COLOURS = [(0.1, 0.1, 0.1), (0.7, 0.1, 0.1), (0.1, 0.3, 0.6), (0.85, 0.85, 0.85), (0.2, 0.5, 0.25), (0.85, 0.6, 0.1)]


def cycle(rng, motor: bool, profile: bool, forward_right: bool = True) -> Cycle:
    """A bicycle (1.75 x 1.05 m) or motorcycle (2.1 x 1.15 m) look."""
    colours = CAR_COLOURS if motor else BIKE_COLOURS
    return Cycle(
        motor=motor,
        profile=profile,
        length=2.1 if motor else 1.75,
        height=1.15 if motor else 1.05,
        width=0.8 if motor else 0.6,
        colour=jitter(rng, colours[rng.integers(len(colours))], 0.05),
        forward_right=forward_right,
    )

"""Looks of the static street: asphalt with markings, paving, curbs, grass, facades, walls,
fences and foliage.

Each look is a small parameter set drawn per scene, so two streets differ in colour, texture
scale and layout details while every class keeps its own statistics (asphalt is grey and
fine-grained with white markings, grass green and blotchy, facades regular window grids).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtl_perception.data.synth.primitives import Look
from mtl_perception.data.synth.texture import cell_hash, noise, value

F32 = np.float32


def rgb(*c: float) -> np.ndarray:
    return np.array(c, dtype=F32)


def tint(base: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """(n,) brightness factors times a base colour -> planar (3, n) colours.

    Looks return planar colours: NumPy broadcasts a (3, 1) colour over (1, n) factors more
    than ten times faster than an (n, 1) factor over (1, 3) colours.
    """
    return base[:, None] * factor.astype(F32)[None, :]


def fill(out: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Set the masked points of planar colours ``out`` to one colour."""
    np.copyto(out, np.asarray(colour, dtype=F32)[:, None], where=mask)


def jitter(rng: np.random.Generator, colour, amount: float = 0.06) -> np.ndarray:
    """A colour varied in brightness and hue, so no two surfaces share an exact colour.

    Plain Python arithmetic: a scene draws a few hundred of these, and NumPy's per-call
    overhead on 3-element arrays used to be a tenth of the scene's build time.
    """
    k, *hue = rng.random(4).tolist()
    gain = 1 + amount * (4 * k - 2)
    return np.array([min(max(float(c) * gain + (h - 0.5) * amount, 0.02), 0.95) for c, h in zip(colour, hue)], dtype=F32)


def pick(rng: np.random.Generator, items, p=None):
    """One of ``items`` (uniform, or with probabilities ``p``); cheaper than ``rng.choice``."""
    if p is None:
        return items[int(rng.integers(len(items)))]
    u, acc = rng.random(), 0.0
    for item, weight in zip(items, p):
        acc += weight
        if u < acc:
            return item
    return items[-1]


def cells(x: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """(cell index, offset in the cell) of a regular grid; faster than ``np.divmod`` on floats."""
    index = np.floor(x * F32(1.0 / size))
    return index, x - index * F32(size)


def wrap(x: np.ndarray, period) -> np.ndarray:
    """``x`` modulo ``period`` (scalar or per element); ``np.mod`` on floats is 30 times slower."""
    return x - np.floor(x / period) * period


def nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centres`` for every x: one search instead of a loop."""
    return np.searchsorted((centres[1:] + centres[:-1]) / 2, x)


@dataclass
class Marking:
    """A painted line along the road at world X ``x``: solid (dash >= period) or dashed."""

    x: float
    width: float
    dash: float
    period: float


@dataclass
class Asphalt(Look):
    """Road surface; ``x_origin``/``z_origin`` turn local coordinates back into street X/Z."""

    colour: np.ndarray
    x_origin: float
    z_origin: float
    seed: float
    markings: list[Marking] = field(default_factory=list)
    crossings: list[tuple[float, float]] = field(default_factory=list)  # zebra Z ranges
    rails: list[float] = field(default_factory=list)  # tram track centre lines (X)
    lanes: list[float] = field(default_factory=list)  # lane centres, worn darker where tyres run
    marking_colour: np.ndarray = field(default_factory=lambda: rgb(0.82, 0.82, 0.78))

    def __post_init__(self) -> None:
        ms = sorted(self.markings, key=lambda m: m.x)
        self._lanes = np.sort(np.asarray(self.lanes, dtype=F32))
        self._mark = np.array([(m.x, m.width / 2, m.period, m.dash) for m in ms], dtype=F32).reshape(-1, 4).T

    def paint(self, a, b, fp):
        x = a + F32(self.x_origin)
        z = b + F32(self.z_origin)
        shade = 1.0 + 0.09 * noise(a, b, fp, 25.0, "fine", self.seed) + 0.07 * value(a, b, 0.35, "blob", self.seed + 3.0)
        if self._lanes.size:
            off = np.abs(np.abs(x - self._lanes[nearest(x, self._lanes)]) - F32(0.85))
            shade -= 0.07 * np.clip(1.0 - off * off * F32(6.0), 0.0, 1.0)
        out = tint(self.colour, shade)
        mark = np.zeros(a.shape, dtype=bool)
        if self._mark.shape[1]:
            mx, half, period, dash = self._mark
            i = nearest(x, mx)
            mark = (np.abs(x - mx[i]) < half[i]) & (wrap(z, period[i]) < dash[i])
        for z0, z1 in self.crossings:
            mark |= (z >= z0) & (z < z1) & (wrap(x, F32(1.0)) < 0.5)
        if mark.any():
            worn = 0.85 + 0.15 * noise(a[mark], b[mark], fp[mark], 8.0, "fine", self.seed + 9.0)
            out[:, mark] = tint(self.marking_colour, worn)
        for centre in self.rails:
            for off in (-0.7175, 0.7175):
                d = np.abs(x - F32(centre + off))
                out *= np.where((d >= 0.05) & (d < 0.08), F32(0.45), F32(1.0))  # the groove
                fill(out, d < 0.05, rgb(0.55, 0.55, 0.56))
        return out


@dataclass
class Pavers(Look):
    """Paving slabs or bricks: a grid of joints with per-slab brightness."""

    colour: np.ndarray
    tile_a: float
    tile_b: float
    seed: int

    def paint(self, a, b, fp):
        ia, ib = np.floor(a / self.tile_a), np.floor(b / self.tile_b)
        per_tile = 0.9 + 0.18 * cell_hash(ia, ib, self.seed)
        shade = per_tile + 0.08 * noise(a, b, fp, 30.0, "fine", self.seed) + 0.06 * value(a, b, 0.5, "blob", self.seed)
        fa, fb = a / self.tile_a - ia, b / self.tile_b - ib
        joint = (np.minimum(fa, 1 - fa) * self.tile_a < 0.012) | (np.minimum(fb, 1 - fb) * self.tile_b < 0.012)
        fade = np.clip(1.0 - fp / 0.05, 0.0, 1.0)  # joints vanish once thinner than a pixel
        shade = shade * (1.0 - 0.35 * joint * fade)
        return tint(self.colour, shade)


@dataclass
class Stone(Look):
    """Curb stones and concrete: light grey, speckled, with joints every ``joint`` metres."""

    colour: np.ndarray
    joint: float
    seed: float

    def paint(self, a, b, fp):
        shade = 1.0 + 0.1 * noise(a, b, fp, 40.0, "fine", self.seed) + 0.08 * value(a, b, 0.7, "blob", self.seed)
        shade = shade * (1.0 - 0.3 * (wrap(a, F32(self.joint)) < 0.02))
        return tint(self.colour, shade)


@dataclass
class Grass(Look):
    """Lawn or verge: green with yellow/dark blotches and strong grain."""

    colour: np.ndarray
    dry: np.ndarray
    seed: float

    def paint(self, a, b, fp):
        blot = np.clip(0.3 + 0.3 * value(a, b, 0.6, "blob", self.seed), 0, 0.6)
        grain = 1.0 + 0.25 * noise(a, b, fp, 30.0, "fine", self.seed + 1)
        return tint(self.colour, (1 - blot) * grain) + tint(self.dry, blot * grain)


CURTAIN = rgb(0.52, 0.5, 0.45)


@dataclass
class Facade(Look):
    """A building front: plaster or brick, a window grid per floor, shop fronts, a cornice.

    ``height`` is the quad's height (b grows downwards from the roof line), so floors are
    counted from the ground up.
    """

    wall: np.ndarray
    height: float
    seed: int
    brick: bool
    floor_h: float
    ground_h: float
    win_w: float
    win_h: float
    spacing: float
    offset: float
    glass: np.ndarray
    frame: np.ndarray
    shop: bool
    shop_colour: np.ndarray
    window_prob: float = 1.0

    def paint(self, a, b, fp):
        # Each pixel gets a part (wall, glass, curtain, frame, sill, shop glass, fascia, door) and a
        # brightness; one palette lookup at the end is much cheaper than a masked write per part.
        y = F32(self.height) - b  # height above the pavement
        bright = 1.0 + 0.07 * noise(a, b, fp, 20.0, "fine", self.seed) + 0.06 * value(a, b, 0.25, "blob", self.seed)
        if self.brick:
            row, in_row = cells(y, 0.075)
            col, in_brick = cells(a + F32(0.12) * (row - 2 * np.floor(row * F32(0.5))), 0.24)
            mortar = (in_row < 0.012) | (in_brick < 0.012)
            bright *= (0.88 + 0.2 * cell_hash(col, row, self.seed)) * (1 - 0.25 * mortar * np.clip(1 - fp / 0.04, 0, 1))
        bright[b < 0.35] *= 0.78  # cornice under the roof line
        bright[y < 0.5] *= 0.85  # splash zone at the base
        part = np.zeros(a.shape, dtype=np.uint8)
        level, in_floor = cells(y - F32(self.ground_h), self.floor_h)
        column, in_col = cells(a - F32(self.offset), self.spacing)
        cx = in_col - F32((self.spacing - self.win_w) / 2)
        cy = in_floor - F32((self.floor_h - self.win_h) * 0.55)
        upper = (level >= 0) & (y < self.height - 0.6)
        part[upper & (cx >= -0.05) & (cx < self.win_w + 0.05) & (cy >= -0.1) & (cy < 0)] = 4  # sills
        window = np.flatnonzero(upper & (cx >= 0) & (cx < self.win_w) & (cy >= 0) & (cy < self.win_h))
        if window.size:
            pick = cell_hash(column[window], level[window], self.seed + 7)
            keep = pick < self.window_prob
            window, pick = window[keep], pick[keep]
            wx, wy = cx[window], cy[window]
            edge = (wx < 0.07) | (wx >= self.win_w - 0.07) | (wy < 0.07) | (wy >= self.win_h - 0.07)
            curtain = (pick > 0.75) & (wy > self.win_h * 0.45)
            part[window] = np.where(edge, 3, np.where(curtain, 2, 1))
            # glass reflects the sky, brighter at the top of each pane, differently per window
            bright[window] = np.where(edge | curtain, 1.0, (0.5 + 0.9 * pick) * np.clip(1.5 - wy / self.win_h, 0.3, 1.2))
        ground = (y < self.ground_h - 0.5) & (y > 0.45)
        g_col, g_in = cells(a, self.spacing * 2)
        if self.shop:
            display = np.flatnonzero(ground & (g_in > 0.3) & (g_in < self.spacing * 2 - 0.3))
            part[display] = 5
            bright[display] = 0.35 + 0.5 * cell_hash(g_col[display], np.ones(display.size), self.seed)
            part[(y >= self.ground_h - 0.5) & (y < self.ground_h - 0.05)] = 6
        else:
            door = ground & (y < 2.3) & (np.abs(g_in - self.spacing) < 0.55) & (cell_hash(g_col, np.full(a.shape, 2), self.seed) < 0.35)
            part[door] = 7
        palette = np.stack([self.wall, self.glass, CURTAIN, self.frame, self.wall * 0.65, self.glass, self.shop_colour, self.frame * 0.35], axis=1)
        return np.take(palette, part, axis=1) * bright


def random_facade(rng: np.random.Generator, height: float, seed: int, sparse: bool = False) -> Facade:
    """A building front with its own colour, material, floor height and window rhythm."""
    brick = rng.random() < 0.25
    palette = [
        (0.78, 0.72, 0.6), (0.84, 0.83, 0.79), (0.6, 0.6, 0.58), (0.8, 0.66, 0.45), (0.78, 0.6, 0.55),
        (0.64, 0.69, 0.72), (0.86, 0.78, 0.52), (0.52, 0.52, 0.5), (0.7, 0.74, 0.66), (0.9, 0.88, 0.84),
    ]
    wall = jitter(rng, (0.56, 0.3, 0.22) if brick else pick(rng, palette))
    floor_h = rng.uniform(2.9, 3.6)
    win_w = rng.uniform(0.9, 1.7)
    return Facade(
        wall=wall,
        height=height,
        seed=seed,
        brick=brick,
        floor_h=floor_h,
        ground_h=min(rng.uniform(3.2, 4.6), height * 0.6),
        win_w=win_w,
        win_h=rng.uniform(1.2, min(2.0, floor_h - 0.9)),
        spacing=win_w + rng.uniform(0.8, 2.5),
        offset=rng.uniform(0, 3),
        glass=jitter(rng, pick(rng, [(0.2, 0.25, 0.3), (0.25, 0.28, 0.3), (0.18, 0.22, 0.28), (0.3, 0.3, 0.28)]), 0.04),
        frame=jitter(rng, (0.85, 0.85, 0.82) if rng.random() < 0.6 else (0.25, 0.22, 0.2), 0.04),
        shop=rng.random() < 0.5,
        shop_colour=jitter(rng, pick(rng, [(0.6, 0.1, 0.1), (0.1, 0.25, 0.5), (0.15, 0.4, 0.2), (0.2, 0.2, 0.2), (0.8, 0.6, 0.1)]), 0.05),
        window_prob=rng.uniform(0.3, 0.7) if sparse else 1.0,
    )


@dataclass
class Concrete(Look):
    """Walls: concrete panels, rendered block or stone, with a capping band on top."""

    colour: np.ndarray
    panel: float
    seed: float

    def paint(self, a, b, fp):
        shade = 1.0 + 0.12 * noise(a, b, fp, 25.0, "fine", self.seed) + 0.1 * value(a, b, 0.6, "blob", self.seed)
        shade = shade * (1.0 - 0.3 * (wrap(a, F32(self.panel)) < 0.03) * np.clip(1 - fp / 0.06, 0, 1))
        shade[b < 0.08] *= 1.15  # capping
        return tint(self.colour, shade)


@dataclass
class Fence(Look):
    """Fences you partly see through: metal bars, palisades or close-boarded wood."""

    colour: np.ndarray
    style: str  # "bars" | "palisade" | "boards"
    height: float
    spacing: float
    seed: float

    def cutout(self, a, b):
        if self.style == "boards":
            return wrap(a, F32(0.16)) > 0.015
        rail = (np.abs(b - 0.12) < 0.04) | (np.abs(b - (self.height - 0.15)) < 0.04)
        bar = wrap(a, F32(self.spacing)) < (0.035 if self.style == "bars" else 0.09)
        if self.style == "palisade":  # pointed tops
            phase = wrap(a, F32(self.spacing)) / 0.09
            bar &= b > 0.12 * np.abs(phase - 0.5) * 2
        return rail | bar

    def paint(self, a, b, fp):
        shade = 1.0 + 0.1 * noise(a, b, fp, 30.0, "fine", self.seed)
        if self.style == "boards":
            shade = shade * (0.85 + 0.25 * cell_hash(np.floor(a / 0.16), np.zeros_like(a), int(self.seed)))
            shade = shade + 0.12 * noise(a * 0.2, b * 3.0, fp, 20.0, "fine", self.seed + 4)
        return tint(self.colour, shade)


def random_fence(rng: np.random.Generator, height: float, seed: int) -> Fence:
    style = ["bars", "palisade", "boards"][rng.integers(3)]
    colours = {
        "bars": [(0.2, 0.22, 0.2), (0.15, 0.3, 0.2), (0.55, 0.56, 0.57)],
        "palisade": [(0.2, 0.25, 0.22), (0.5, 0.5, 0.5), (0.3, 0.3, 0.32)],
        "boards": [(0.45, 0.32, 0.2), (0.55, 0.42, 0.28), (0.35, 0.26, 0.18)],
    }[style]
    return Fence(
        colour=jitter(rng, colours[rng.integers(len(colours))]),
        style=style,
        height=height,
        spacing=rng.uniform(0.11, 0.16) if style == "bars" else rng.uniform(0.14, 0.22),
        seed=float(seed),
    )


@dataclass
class Foliage(Look):
    """Tree crowns, bushes and hedges: a lumpy outline and leafy light/dark clumps.

    ``blobs`` are ellipses (centre a, centre b, radius a, radius b) in local metres; with no
    blobs the quad is a hedge with a ragged top edge.
    """

    colour: np.ndarray
    seed: float
    blobs: list[tuple[float, float, float, float]] = field(default_factory=list)
    ragged: float = 0.25

    def cutout(self, a, b):
        jag = np.clip(value(a, b, 2.5, "blob", self.seed), -1.5, 1.5)
        if not self.blobs:
            return b > self.ragged * (1.0 + jag)
        inside = np.zeros(a.shape, dtype=bool)
        limit = 1.0 + 0.3 * jag  # at most (1.45)^0.5 = 1.2 times a blob's radii: see ``blob_bounds``
        for ca, cb, ra, rb in self.blobs:
            da, db = (a - ca) * F32(1 / ra), (b - cb) * F32(1 / rb)
            inside |= da * da + db * db < limit
        return inside

    def paint(self, a, b, fp):
        clumps = value(a, b, 3.0, "blob", self.seed)
        leaves = noise(a, b, fp, 18.0, "fine", self.seed + 2)
        shade = 0.75 + 0.3 * clumps + 0.25 * leaves
        if self.blobs:
            top = min(cb - rb for _, cb, _, rb in self.blobs)
            bottom = max(cb + rb for _, cb, _, rb in self.blobs)
            shade = shade * (1.15 - 0.45 * np.clip((b - top) / (bottom - top), 0, 1))
        return tint(self.colour, np.clip(shade, 0.2, 1.6))


def blob_bounds(blobs: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """(a0, a1, b0, b1) that contain foliage blobs including their ragged edge."""
    grow = 1.21
    return (
        min(ca - ra * grow for ca, _, ra, _ in blobs), max(ca + ra * grow for ca, _, ra, _ in blobs),
        min(cb - rb * grow for _, cb, _, rb in blobs), max(cb + rb * grow for _, cb, _, rb in blobs),
    )


def foliage_colour(rng: np.random.Generator) -> np.ndarray:
    return jitter(rng, [(0.2, 0.32, 0.12), (0.26, 0.38, 0.14), (0.16, 0.26, 0.12), (0.3, 0.36, 0.16)][rng.integers(4)], 0.05)


@dataclass
class Bark(Look):
    """Tree trunks: brown-grey, vertically streaked, rounded by shading across the width."""

    colour: np.ndarray
    width: float
    seed: float

    def paint(self, a, b, fp):
        round_ = 0.55 + 0.45 * np.sin(np.pi * np.clip(a / self.width, 0, 1))
        streak = 1.0 + 0.2 * noise(a * 4.0, b * 0.5, fp, 20.0, "fine", self.seed)
        return tint(self.colour, round_ * streak)


@dataclass
class Metal(Look):
    """Poles and arms: a painted tube, rounded by shading across its width (``across_b`` for arms)."""

    colour: np.ndarray
    width: float
    across_b: bool = False

    def paint(self, a, b, fp):
        x = b if self.across_b else a
        round_ = 0.45 + 0.6 * np.sin(np.pi * np.clip(x / self.width, 0, 1))
        return tint(self.colour, round_)

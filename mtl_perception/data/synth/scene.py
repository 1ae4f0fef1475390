"""Random street layouts: the road, pavements, buildings, greenery, furniture and traffic.

The camera drives in a lane of a straight street. Across the street, from the centre out:
lanes (with an optional tram track and parking lanes), a curb, an optional grass verge, the
pavement, a front yard, then buildings (``urban``), houses in gardens (``suburb``) or a park
(``open``), each side drawn on its own. Side streets open gaps in one side; the street ends
in a row of facades so depth stays bounded. Traffic drives in the lanes (oncoming on the
left), cars park along the curb, people walk on the pavements and cross at zebra crossings.

Every class of the 19 Cityscapes train classes has a place in this grammar; the rarer ones
(wall, fence, terrain, train, motorcycle) appear in a good share of scenes (see the
probabilities below), so a model trained on a few hundred scenes sees all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtl_perception.data.labels import INSTANCE_ID_DIVISOR, label_id
from mtl_perception.data.synth import furniture, people, vehicles
from mtl_perception.data.synth.primitives import Hood, Lighting, Quad, Scene, Shadow, floor, front, side
from mtl_perception.data.synth.surfaces import (
    Asphalt,
    Concrete,
    Foliage,
    Grass,
    Marking,
    Pavers,
    Stone,
    foliage_colour,
    jitter,
    pick,
    random_facade,
    random_fence,
    rgb,
)

L = {n: label_id(n) for n in ("road", "sidewalk", "building", "wall", "fence", "terrain", "vegetation", "person", "rider", "bicycle", "motorcycle")}
Z_BEHIND = -25.0  # static geometry starts this far behind the first camera position
FAR_X = 400.0


class Ids:
    """gtFine instance ids: labelId * 1000 + k, k counted per class from 0 in creation order."""

    def __init__(self) -> None:
        self.count: dict[int, int] = {}

    def new(self, label: int) -> int:
        k = self.count.get(label, 0)
        self.count[label] = k + 1
        return label * INSTANCE_ID_DIVISOR + k


@dataclass
class Side:
    """One side of the street (sign -1 left, +1 right), distances in metres from the curb."""

    sign: int
    curb_x: float
    lawn: float
    walk: float
    yard: float
    kind: str  # urban | suburb | open
    parking: bool
    gaps: list[tuple[float, float]] = field(default_factory=list)  # side streets (Z ranges)

    def x(self, offset: float) -> float:
        """World X at ``offset`` metres outwards from the curb."""
        return self.curb_x + self.sign * offset

    @property
    def building_x(self) -> float:
        return self.x(self.lawn + self.walk + self.yard)


def _span(x0: float, x1: float) -> tuple[float, float]:
    return (x0, x1) if x0 <= x1 else (x1, x0)


def _outside(z0: float, z1: float, gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Parts of [z0, z1] not covered by any gap."""
    parts, start = [], z0
    for g0, g1 in sorted(gaps):
        if g0 > start:
            parts.append((start, min(g0, z1)))
        start = max(start, g1)
    if start < z1:
        parts.append((start, z1))
    return [(a, b) for a, b in parts if b - a > 0.01]


def random_lighting(rng: np.random.Generator) -> Lighting:
    """Sunny, overcast or low-sun light with matching sky, haze and camera response."""
    weather = pick(rng, ["sunny", "overcast", "low"], [0.5, 0.35, 0.15])
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = np.radians(rng.uniform(6, 15) if weather == "low" else rng.uniform(20, 65))
    sun = np.array([np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    if weather == "sunny":
        sun_strength, ambient, clouds = rng.uniform(0.45, 0.7), rng.uniform(0.55, 0.7), rng.uniform(0.0, 0.45)
        top, horizon, sun_colour = rgb(0.3, 0.5, 0.85), rgb(0.72, 0.82, 0.92), rgb(1.0, 0.97, 0.9)
    elif weather == "overcast":
        sun_strength, ambient, clouds = rng.uniform(0.0, 0.12), rng.uniform(0.85, 1.05), rng.uniform(0.7, 1.0)
        top, horizon, sun_colour = rgb(0.62, 0.66, 0.72), rgb(0.8, 0.82, 0.84), rgb(1.0, 1.0, 1.0)
    else:
        sun_strength, ambient, clouds = rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.6), rng.uniform(0.1, 0.5)
        top, horizon, sun_colour = rgb(0.3, 0.42, 0.72), rgb(0.95, 0.78, 0.58), rgb(1.0, 0.78, 0.55)
    haze = horizon * 0.6 + rgb(0.75, 0.75, 0.75) * 0.4
    return Lighting(
        sun=sun,
        sun_colour=sun_colour,
        sun_strength=float(sun_strength),
        ambient_colour=np.clip(top * 0.25 + 0.75, 0, 1).astype(np.float32),
        ambient=float(ambient),
        sky_top=jitter(rng, top, 0.03),
        sky_horizon=jitter(rng, horizon, 0.02),
        clouds=float(clouds),
        cloud_colour=jitter(rng, (0.92, 0.92, 0.93) if weather != "overcast" else (0.78, 0.79, 0.8), 0.02),
        haze_colour=haze.astype(np.float32),
        haze_distance=float(rng.uniform(60, 120) if rng.random() < 0.1 else rng.uniform(180, 600)),
        exposure=float(rng.uniform(0.85, 1.12)),
        white_balance=(1.0 + rng.normal(0, 0.03, 3)).astype(np.float32),
        vignette=float(rng.uniform(0.0, 0.3)),
        noise=float(rng.uniform(0.004, 0.02)),
        blur=float(rng.uniform(0.5, 0.8)),
    )


class StreetBuilder:
    """Draws one street layout into quads, ground shadows and instance ids."""

    def __init__(self, rng: np.random.Generator, frames: int, step: float, rare: int = 0):
        self.rng = rng
        self.rare = rare
        self.quads: list[Quad] = []
        self.shadows: list[Shadow] = []
        self.ids = Ids()
        self.step = step
        self.duration = frames - 1  # frames after the first: how far moving things travel
        self.occupied: list[tuple[float, float, float, float]] = []
        self.lighting = random_lighting(rng)
        self.z_end = float(rng.uniform(60, 140) + step * self.duration)
        self.z_far = self.z_end + 10.0
        self.curb = float(rng.uniform(0.1, 0.16))

    def _claim(self, x0: float, x1: float, z0: float, z1: float, velocity: tuple[float, float]) -> bool:
        """Reserve road space for a moving or parked object unless it would meet another one.

        The reservation covers everything the object sweeps through during the sequence, so
        no two objects ever intersect in any frame.
        """
        dx, dz = velocity[0] * self.duration, velocity[1] * self.duration
        box = (x0 + min(dx, 0.0), x1 + max(dx, 0.0), z0 + min(dz, 0.0), z1 + max(dz, 0.0))
        for a0, a1, b0, b1 in self.occupied:
            if box[0] < a1 and a0 < box[1] and box[2] < b1 and b0 < box[3]:
                return False
        self.occupied.append(box)
        return True

    # ---------------------------------------------------------------- layout
    def layout(self) -> None:
        rng = self.rng
        lane_w = float(rng.uniform(3.0, 3.6))
        n_away = pick(rng, [1, 2], [0.6, 0.4])
        n_onc = pick(rng, [0, 1, 2], [0.15, 0.6, 0.25])
        tram = rng.random() < 0.3
        cam_lane = int(rng.integers(n_away))
        # lane centres left to right: oncoming, optional tram track, away lanes
        xs, dirs = [], []
        for i in range(n_onc):
            xs.append(-(n_onc - i) * lane_w)
            dirs.append(-1)
        track_w = 3.2 if tram else 0.0
        xs = [v - track_w for v in xs]
        for i in range(n_away):
            xs.append(i * lane_w)
            dirs.append(1)
        shift = -xs[n_onc + cam_lane]
        self.lanes = [(v + shift, d) for v, d in zip(xs, dirs)]
        self.lane_w = lane_w
        self.track_x = (self.lanes[n_onc][0] - lane_w / 2 - track_w / 2) if tram else None
        left_edge = self.lanes[0][0] - lane_w / 2 - (track_w if tram and n_onc == 0 else 0.0)
        right_edge = self.lanes[-1][0] + lane_w / 2
        parking = [rng.random() < 0.55, rng.random() < 0.55]
        left_edge -= 2.2 * parking[0]
        right_edge += 2.2 * parking[1]
        self.road = (left_edge, right_edge)
        self.sides = []
        for sign, edge, park in ((-1, left_edge, parking[0]), (1, right_edge, parking[1])):
            kind = pick(rng, ["urban", "suburb", "open"], [0.55, 0.3, 0.15])
            lawn = float(rng.uniform(1.0, 2.5)) if rng.random() < (0.6 if kind != "urban" else 0.25) else 0.0
            yard = {"urban": float(rng.uniform(0, 1.5)) if rng.random() < 0.3 else 0.0, "suburb": float(rng.uniform(2.5, 8.0)), "open": 0.0}[kind]
            self.sides.append(Side(sign, edge, lawn, float(rng.uniform(1.8, 5.0)), yard, kind, park))
        # side streets and a zebra crossing, both somewhere ahead
        self.crossing = None
        for s in self.sides:
            if s.kind != "open" and rng.random() < 0.35:
                z0 = float(rng.uniform(18, max(20.0, self.z_end - 30)))
                s.gaps.append((z0, z0 + float(rng.uniform(8, 14))))
        if rng.random() < 0.5:
            gap_zs = [g[0] for s in self.sides for g in s.gaps]
            z0 = gap_zs[0] - 4.5 if gap_zs and rng.random() < 0.6 else float(rng.uniform(10, 45))
            self.crossing = (z0, z0 + float(rng.uniform(3.0, 4.5)))

    # ---------------------------------------------------------------- ground
    def ground(self) -> None:
        rng = self.rng
        markings = []
        lanes = self.lanes
        for (x0, d0), (x1, d1) in zip(lanes, lanes[1:]):
            if abs((x1 - x0) - self.lane_w) > 0.01:
                continue  # the tram track lies between: its edges get solid lines below
            centre = (x0 + x1) / 2
            if d0 != d1:
                markings.append(Marking(centre, 0.14, 1e9, 1.0) if rng.random() < 0.6 else Marking(centre, 0.14, 4.0, 8.0))
            else:
                markings.append(Marking(centre, 0.13, 3.0, 9.0))
        if self.track_x is not None:
            markings += [Marking(self.track_x - 1.6, 0.15, 1e9, 1.0), Marking(self.track_x + 1.6, 0.15, 1e9, 1.0)]
        for s in self.sides:
            if s.parking:
                markings.append(Marking(s.curb_x - s.sign * 2.2, 0.12, 1e9, 1.0))
        colour = jitter(rng, (0.33, 0.33, 0.34), 0.05)
        x0, x1 = self.road
        asphalt = Asphalt(
            colour, x0, Z_BEHIND, float(rng.uniform(0, 200)), markings,
            [self.crossing] if self.crossing else [], [self.track_x] if self.track_x is not None else [],
            [x for x, _ in lanes],
        )
        self.quads.append(floor(x0, x1, Z_BEHIND, self.z_far, 0.0, L["road"], asphalt))
        walk_colour = jitter(rng, [(0.6, 0.58, 0.55), (0.55, 0.45, 0.42), (0.68, 0.67, 0.64), (0.5, 0.5, 0.5)][rng.integers(4)], 0.04)
        grass = (jitter(rng, (0.28, 0.4, 0.14), 0.05), jitter(rng, (0.5, 0.45, 0.25), 0.05))
        for s in self.sides:
            y = -self.curb
            parts = _outside(Z_BEHIND, self.z_far, s.gaps)
            stone = Stone(jitter(rng, (0.62, 0.62, 0.6), 0.03), float(rng.uniform(0.8, 1.2)), float(rng.uniform(0, 100)))
            pavers = Pavers(walk_colour, float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.2, 0.5)), int(rng.integers(1 << 30)))
            for z0, z1 in parts:
                self.quads.append(side(s.curb_x, z0, z1, y, 0.0, L["sidewalk"], stone))
                bands = [(0.0, s.lawn, "terrain"), (s.lawn, s.lawn + s.walk, "sidewalk"), (s.lawn + s.walk, s.lawn + s.walk + s.yard, "yard")]
                for o0, o1, kind in bands:
                    if o1 - o0 < 0.01:
                        continue
                    xa, xb = _span(s.x(o0), s.x(o1))
                    if kind == "sidewalk" or (kind == "yard" and s.kind == "urban"):
                        self.quads.append(floor(xa, xb, z0, z1, y, L["sidewalk"], pavers))
                    else:
                        self.quads.append(floor(xa, xb, z0, z1, y, L["terrain"], Grass(*grass, float(rng.uniform(0, 100)))))
                xa, xb = _span(s.building_x, s.sign * FAR_X)
                beyond = pavers if s.kind == "urban" else Grass(*grass, float(rng.uniform(0, 100)))
                self.quads.append(floor(xa, xb, z0, z1, y, L["sidewalk"] if s.kind == "urban" else L["terrain"], beyond))
            for g0, g1 in s.gaps:
                xa, xb = _span(s.curb_x, s.sign * FAR_X)
                street = Asphalt(jitter(rng, (0.33, 0.33, 0.34), 0.05), xa, g0, float(rng.uniform(0, 200)))
                self.quads.append(floor(xa, xb, g0, g1, 0.0, L["road"], street))
                self.quads.append(front(xa, xb, y, 0.0, g1, L["sidewalk"], stone))

    # ------------------------------------------------------------- buildings
    def _facade_row(self, s: Side, x_line: float, heights: tuple[float, float], lengths: tuple[float, float], gap_p: float) -> None:
        """Buildings along one side; gaps between them become lots with a wall or fence."""
        rng = self.rng
        base = -self.curb
        for z0, z1 in _outside(Z_BEHIND, self.z_end, s.gaps):
            z = z0
            while z < z1:
                length = min(float(rng.uniform(*lengths)), z1 - z)
                if rng.random() < gap_p and z > 5:
                    self._lot(s, x_line, z, z + length)
                    z += length
                    continue
                height = float(rng.uniform(*heights))
                x = x_line + s.sign * (float(rng.uniform(0, 0.4)) if rng.random() < 0.8 else float(rng.uniform(1.5, 4.0)))
                look = random_facade(rng, height, int(rng.integers(1 << 30)))
                self.quads.append(side(x, z, z + length, base - height, base, L["building"], look))
                depth = float(rng.uniform(10, 16))
                gable = random_facade(rng, height, int(rng.integers(1 << 30)), sparse=True)
                gable.wall = look.wall * 0.97
                xa, xb = _span(x, x + s.sign * depth)
                self.quads.append(front(xa, xb, base - height, base, z, L["building"], gable))
                self._facade_shadow(s, x, z, z + length, height)
                z += length
        for g0, g1 in s.gaps:  # the side street's buildings: a facade facing us and one at its end
            height = float(rng.uniform(*heights))
            xa, xb = _span(x_line, x_line + s.sign * 60)
            self.quads.append(front(xa, xb, base - height, base, g1, L["building"], random_facade(rng, height, int(rng.integers(1 << 30)))))
            end_h = float(rng.uniform(*heights))
            self.quads.append(side(x_line + s.sign * 60, g0 - 20, g1, base - end_h, base, L["building"], random_facade(rng, end_h, int(rng.integers(1 << 30)))))

    def _facade_shadow(self, s: Side, x: float, z0: float, z1: float, height: float) -> None:
        light = self.lighting
        horizontal = np.hypot(light.sun[0], light.sun[2])
        if light.sun_strength < 0.2 or light.sun[0] * s.sign <= 0:
            return  # the sun is on the street's side of this facade: no cast shadow on the street
        reach = height / max(-light.sun[1], 0.05) * horizontal * abs(light.sun[0]) / max(horizontal, 1e-6)
        x0, x1 = _span(x, x - s.sign * min(reach, 60.0))
        self.shadows.append(Shadow(x0, x1, z0, z1, 0.45, 0.4))

    def _lot(self, s: Side, x_line: float, z0: float, z1: float) -> None:
        """An empty plot: grass and trees behind a wall or fence along the pavement."""
        rng = self.rng
        base = -self.curb
        xa, xb = _span(x_line, x_line + s.sign * 40)
        self.quads.append(floor(xa, xb, z0, z1, base - 0.02, L["terrain"], Grass(jitter(rng, (0.28, 0.4, 0.14)), jitter(rng, (0.5, 0.45, 0.25)), float(rng.uniform(0, 100)))))
        self._boundary(s, x_line, z0, z1, force=True)
        for _ in range(int(rng.integers(1, 4))):
            self.quads += furniture.tree(rng, x_line + s.sign * float(rng.uniform(3, 20)), float(rng.uniform(z0, z1)), base)

    def _boundary(self, s: Side, x: float, z0: float, z1: float, force: bool = False) -> None:
        """A wall, fence or hedge along the back of the pavement."""
        rng = self.rng
        base = -self.curb
        roll = rng.random()
        if not force and roll < 0.2:
            return
        if roll < 0.45:
            height = float(rng.uniform(0.5, 1.4)) if rng.random() < 0.6 else float(rng.uniform(1.8, 2.6))
            look = Concrete(jitter(rng, [(0.6, 0.6, 0.58), (0.72, 0.68, 0.6), (0.5, 0.45, 0.42), (0.8, 0.8, 0.78)][rng.integers(4)]), float(rng.uniform(1.5, 4)), float(rng.uniform(0, 100)))
            self.quads.append(side(x, z0, z1, base - height, base, L["wall"], look))
        elif roll < 0.8:
            height = float(rng.uniform(1.0, 2.0))
            self.quads.append(side(x, z0, z1, base - height, base, L["fence"], random_fence(rng, height, int(rng.integers(1 << 30)))))
        else:
            height = float(rng.uniform(0.8, 1.8))
            self.quads.append(side(x, z0, z1, base - height, base, L["vegetation"], Foliage(foliage_colour(rng), float(rng.uniform(0, 100)), [], ragged=0.15)))

    def buildings(self) -> None:
        rng = self.rng
        base = -self.curb
        for s in self.sides:
            if s.kind == "urban":
                self._facade_row(s, s.building_x, (8.0, 26.0), (8.0, 30.0), 0.12)
            elif s.kind == "suburb":
                self._facade_row(s, s.building_x, (5.0, 10.0), (8.0, 16.0), 0.3)
                for z0, z1 in _outside(Z_BEHIND, self.z_end, s.gaps):
                    z = z0
                    while z < z1:
                        length = min(float(rng.uniform(6, 20)), z1 - z)
                        self._boundary(s, s.x(s.lawn + s.walk), z, z + length)
                        z += length + float(rng.uniform(0, 3))
                for _ in range(int(rng.integers(2, 7))):
                    z = float(rng.uniform(0, self.z_end))
                    x = s.x(s.lawn + s.walk + float(rng.uniform(0.8, max(1.0, s.yard - 0.8))))
                    self.quads += [furniture.bush(rng, x, z, base)] if rng.random() < 0.5 else furniture.tree(rng, x, z, base)
            else:  # open: a park with trees, a fence or wall, buildings far behind
                if rng.random() < 0.7:
                    self._boundary(s, s.x(s.lawn + s.walk), Z_BEHIND, self.z_end, force=True)
                for _ in range(int(rng.integers(6, 16))):
                    x = s.x(s.lawn + s.walk + float(rng.uniform(2, 45)))
                    z = float(rng.uniform(0, self.z_end))
                    self.quads += furniture.tree(rng, x, z, base, scale=float(rng.uniform(0.8, 1.5))) if rng.random() < 0.7 else [furniture.bush(rng, x, z, base)]
            if s.kind != "urban":  # a far row of buildings bounds the view
                x_far = s.building_x + s.sign * float(rng.uniform(30, 60))
                z = Z_BEHIND
                while z < self.z_end:
                    length, height = float(rng.uniform(15, 40)), float(rng.uniform(8, 25))
                    self.quads.append(side(x_far, z, z + length, base - height, base, L["building"], random_facade(rng, height, int(rng.integers(1 << 30)))))
                    z += length
        # the end of the street: a row of facades across it
        x = -120.0
        while x < 120.0:
            width, height = float(rng.uniform(10, 30)), float(rng.uniform(8, 30))
            self.quads.append(front(x, x + width, base - height, base, self.z_end + float(rng.uniform(0, 3)), L["building"], random_facade(rng, height, int(rng.integers(1 << 30)))))
            x += width

    # ---------------------------------------------------------- greenery/poles
    def greenery_and_poles(self) -> None:
        rng = self.rng
        base = -self.curb
        for s in self.sides:
            parts = _outside(0.0, self.z_end - 5, s.gaps)
            if s.lawn > 0 and rng.random() < 0.85 or s.lawn == 0 and rng.random() < 0.3:
                x = s.x(s.lawn / 2 if s.lawn > 0 else 0.8)
                spacing = float(rng.uniform(7, 16))
                for z0, z1 in parts:
                    for z in np.arange(z0 + float(rng.uniform(0, spacing)), z1, spacing):
                        self.quads += furniture.tree(rng, x + float(rng.normal(0, 0.2)), float(z), base, scale=float(rng.uniform(0.8, 1.3)))
            if rng.random() < 0.75:
                spacing = float(rng.uniform(18, 35))
                for z0, z1 in parts:
                    for z in np.arange(z0 + float(rng.uniform(0, spacing)), z1, spacing):
                        self.quads += furniture.street_lamp(rng, s.x(0.45), float(z), base, -s.sign)
        for _ in range(int(rng.integers(1, 6))):
            s = self.sides[int(rng.integers(2))]
            self.quads += furniture.sign_post(rng, s.x(float(rng.uniform(0.3, 0.9))), float(rng.uniform(4, min(70.0, self.z_end - 5))), base)
        signal_z = self.crossing[0] - 1.0 if self.crossing else None
        if signal_z is None and rng.random() < 0.3:
            signal_z = float(rng.uniform(15, 50))
        if signal_z is not None and rng.random() < 0.8:
            right, left = self.sides[1], self.sides[0]
            mast = float(rng.uniform(-1.0, 1.0)) if rng.random() < 0.4 else None
            self.quads += furniture.traffic_light(rng, right.x(0.6), signal_z, base, False, mast)
            self.quads += furniture.traffic_light(rng, left.x(0.6), signal_z, base, False, None)
            if rng.random() < 0.6:
                far = signal_z + (self.crossing[1] - self.crossing[0] if self.crossing else 4.0) + 2.0
                self.quads += furniture.traffic_light(rng, left.x(0.6), far, base, True, None)

    # --------------------------------------------------------------- traffic
    def _vehicle(self, kind: str, x: float, z: float, away: bool, velocity) -> float:
        """Add a vehicle if its road space is free; returns its length either way."""
        builders = {"car": vehicles.car, "truck": vehicles.truck, "bus": vehicles.bus, "train": vehicles.tram}
        quads, shadow, length = builders[kind](self.rng, x, z, away, 0, velocity)
        if self._claim(x - 1.2, x + 1.2, z, z + length, velocity):
            ident = self.ids.new(label_id(kind))
            for q in quads:
                q.instance = ident
            self.quads += quads
            self.shadows.append(shadow)
        return length

    def _cyclist(self, x: float, z: float, motor: bool, along: bool, forward: int, velocity) -> None:
        """A rider on a bicycle or motorcycle, riding along the street or crossing it (if there is room)."""
        rng = self.rng
        ground = 0.0
        # riding along almost straight ahead, a profile would be seen edge-on: use the rear view
        profile = not along or abs(x) > 2.0
        look = vehicles.cycle(rng, motor, profile=profile, forward_right=forward > 0)
        room = (x - 0.45, x + 0.45, z, z + look.length) if along else (x, x + look.length, z - 0.4, z + 0.4)
        if not self._claim(*room, velocity):
            return
        cycle_label = L["motorcycle"] if motor else L["bicycle"]
        cycle_id = self.ids.new(cycle_label)
        rider_id = self.ids.new(L["rider"])
        clothes = people.random_clothes(rng, helmet=motor or rng.random() < 0.4)
        top = (1.65 if motor else 1.8) * float(rng.uniform(0.95, 1.05))
        seat, bar, crank, seat_y = look.anchors()
        if along:
            if profile:
                self.quads.append(side(x, z, z + look.length, ground - look.height, ground, cycle_label, look, instance=cycle_id, velocity=velocity))
            else:  # behind the rider: its wheel shows between the legs, the bar ends beside the hips
                half = look.width / 2
                self.quads.append(front(x - half, x + half, ground - look.height, ground, z + look.length * 0.7, cycle_label, look, instance=cycle_id, velocity=velocity))
            rider = people.Rider(False, top, 0.7, 0.0, 0.0, 0.0, True, seat_y, clothes)
            self.quads.append(front(x - 0.35, x + 0.35, ground - top, ground - 0.25, z + look.length / 2, L["rider"], rider, instance=rider_id, velocity=velocity))
        else:
            self.quads.append(front(x, x + look.length, ground - look.height, ground, z, cycle_label, look, instance=cycle_id, velocity=velocity))
            rider = people.Rider(True, top, look.length, seat, bar, crank, forward > 0, seat_y, clothes)
            self.quads.append(front(x, x + look.length, ground - top, ground - 0.25, z - 0.05, L["rider"], rider, instance=rider_id, velocity=velocity))
        self.shadows.append(Shadow(x - 0.3, x + 0.3, z, z + look.length, 0.35, 0.3, velocity))

    def traffic(self) -> None:
        rng = self.rng
        z_max = self.z_end - 8
        step = self.step
        for x, direction in self.lanes:
            away = direction > 0
            speed = step * float(rng.uniform(0.5, 1.2)) * (1 if away else -1.3)
            z = float(rng.uniform(6, 25)) if x == 0 else float(rng.uniform(-5, 20))
            while z < z_max and rng.random() < 0.8:
                kind = pick(rng, ["car", "truck", "bus", "motorcycle"], [0.79, 0.07, 0.06, 0.08])
                if kind == "motorcycle":
                    self._cyclist(x + float(rng.uniform(-0.5, 0.5)), z, True, True, 1, (0.0, speed))
                    length = 2.1
                else:
                    length = self._vehicle(kind, x + float(rng.normal(0, 0.15)), z, away, (0.0, speed))
                z += length + float(rng.uniform(5, 30))
        if self.track_x is not None and rng.random() < 0.85:
            away = rng.random() < 0.5
            self._vehicle("train", self.track_x, float(rng.uniform(8, 45)), away, (0.0, step * (0.7 if away else -0.9)))
        for s in self.sides:
            if not s.parking:
                continue
            x = s.curb_x - s.sign * 1.1
            z = float(rng.uniform(-6, 8))
            while z < z_max:
                if any(g0 - 3 < z < g1 for g0, g1 in s.gaps) or (self.crossing and self.crossing[0] - 6 < z < self.crossing[1]):
                    z += 3.0
                    continue
                if rng.random() < 0.85:
                    kind = "car" if rng.random() < 0.92 else "truck"
                    z += self._vehicle(kind, x + float(rng.normal(0, 0.1)), z, s.sign > 0 or len(self.lanes) == sum(d > 0 for _, d in self.lanes), (0.0, 0.0))
                z += float(rng.uniform(0.6, 3.0)) if rng.random() < 0.8 else float(rng.uniform(5, 15))
        right_lane = max(x for x, d in self.lanes if d > 0)
        for _ in range(pick(rng, [0, 1, 2, 3], [0.3, 0.35, 0.25, 0.1])):
            self._cyclist(right_lane + float(rng.uniform(0.5, 1.0)), float(rng.uniform(6, 45)), rng.random() < 0.15, True, 1, (0.0, step * 0.35))
        if rng.random() < 0.25:  # parked motorcycle on the pavement edge
            s = self.sides[int(rng.integers(2))]
            look = vehicles.cycle(rng, True, profile=True, forward_right=bool(rng.random() < 0.5))
            self.quads.append(side(s.x(s.lawn + 0.6), (z := float(rng.uniform(5, 40))), z + look.length, -self.curb - look.height, -self.curb, L["motorcycle"], look, instance=self.ids.new(L["motorcycle"])))
        if rng.random() < 0.6:  # parked bicycles at the back of the pavement: in a rack or along a wall
            s = self.sides[int(rng.integers(2))]
            z = float(rng.uniform(4, 40))
            rack = rng.random() < 0.5
            base = -self.curb
            for _ in range(int(rng.integers(1, 7))):
                look = vehicles.cycle(rng, False, profile=True, forward_right=bool(rng.random() < 0.5))
                ident = self.ids.new(L["bicycle"])
                if rack:  # across the pavement, front wheel to the wall: seen in profile, one behind another
                    xa, xb = _span(s.x(s.lawn + s.walk - 0.2), s.x(s.lawn + s.walk - 0.2 - look.length))
                    self.quads.append(front(xa, xb, base - look.height, base, z, L["bicycle"], look, instance=ident))
                    z += float(rng.uniform(0.6, 0.9))
                else:
                    x = s.x(s.lawn + s.walk - 0.5)
                    self.quads.append(side(x, z, z + look.length, base - look.height, base, L["bicycle"], look, instance=ident))
                    z += look.length + float(rng.uniform(0.2, 1.5))

    def pedestrians(self) -> None:
        rng = self.rng
        base = -self.curb
        walk_speed = 0.08  # metres per frame (about 1.4 m/s at 17 Hz)
        for s in self.sides:
            n_groups = int(rng.integers(*{"urban": (3, 12), "suburb": (1, 5), "open": (0, 5)}[s.kind]))
            for _ in range(n_groups):
                z = float(rng.uniform(2, min(70.0, self.z_end - 5)))
                x = s.x(s.lawn + float(rng.uniform(0.4, max(0.5, s.walk - 0.4))))
                towards = rng.random() < 0.5
                for _ in range(pick(rng, [1, 2, 3], [0.6, 0.3, 0.1])):
                    view = pick(rng, ["front", "back", "side"], [0.4, 0.4, 0.2])
                    if view != "side":
                        view = "front" if towards else "back"
                    look = people.pedestrian(rng, view, facing_right=bool(rng.random() < 0.5))
                    velocity = (0.0, walk_speed * (-1 if towards else 1)) if look.stride else (0.0, 0.0)
                    self._person(look, x, z, base, velocity)
                    x += float(rng.uniform(0.4, 0.7)) * (1 if rng.random() < 0.5 else -1)
                    z += float(rng.uniform(0.2, 1.0))
        if self.crossing is not None:
            x0, x1 = self.road
            for _ in range(int(rng.integers(0, 5))):
                right = rng.random() < 0.5
                look = people.pedestrian(rng, "side", facing_right=right)
                z = float(rng.uniform(*self.crossing))
                x = float(rng.uniform(x0 + 1, x1 - 1))
                velocity = (walk_speed * (1 if right else -1), 0.0)
                if self._claim(x - 0.35, x + 0.35, z - 0.35, z + 0.35, velocity):
                    self._person(look, x, z, 0.0, velocity)
            if rng.random() < 0.2 and x1 - x0 > 4:  # a crossing cyclist needs a road wide enough
                forward = 1 if rng.random() < 0.5 else -1
                self._cyclist(float(rng.uniform(x0 + 1, x1 - 3)), float(np.mean(self.crossing)), False, False, forward, (forward * 0.15, 0.0))

    def _person(self, look: people.Pedestrian, x: float, z: float, ground: float, velocity) -> None:
        ident = self.ids.new(L["person"])
        self.quads.append(front(x - look.width / 2, x + look.width / 2, ground - look.height, ground, z, L["person"], look, instance=ident, velocity=velocity))
        self.shadows.append(Shadow(x - 0.25, x + 0.25, z - 0.2, z + 0.2, 0.3, 0.25, velocity))

    def rare_objects(self) -> None:
        """``rare`` extra rounds of the thin and rare things a network misses first: sign posts,
        traffic lights, pedestrians, cyclists and motorcyclists, parked bicycles. Drawn after
        everything else, so with ``rare == 0`` the scene is exactly the default mix."""
        rng = self.rng
        base = -self.curb
        z_max = min(35.0, self.z_end - 8)  # near enough to be more than a few pixels
        right_lane = max(x for x, d in self.lanes if d > 0)
        for _ in range(self.rare):
            for s in self.sides:
                z = float(rng.uniform(3, z_max))
                self.quads += furniture.sign_post(rng, s.x(float(rng.uniform(0.3, 0.9))), z, base)
                self.quads += furniture.traffic_light(rng, s.x(0.6), z + float(rng.uniform(2, 10)), base, bool(rng.random() < 0.3), None)
                x = s.x(s.lawn + float(rng.uniform(0.4, max(0.5, s.walk - 0.4))))
                z = float(rng.uniform(2, z_max))
                for _ in range(int(rng.integers(1, 4))):
                    look = people.pedestrian(rng, pick(rng, ["front", "back", "side"], [0.4, 0.4, 0.2]), facing_right=bool(rng.random() < 0.5))
                    self._person(look, x, z, base, (0.0, 0.0))
                    x += float(rng.uniform(0.4, 0.7)) * (1 if rng.random() < 0.5 else -1)
                    z += float(rng.uniform(0.3, 1.5))
                x, z = s.x(s.lawn + s.walk - 0.5), float(rng.uniform(4, z_max))
                for _ in range(int(rng.integers(1, 4))):
                    look = vehicles.cycle(rng, False, profile=True, forward_right=bool(rng.random() < 0.5))
                    self.quads.append(side(x, z, z + look.length, base - look.height, base, L["bicycle"], look, instance=self.ids.new(L["bicycle"])))
                    z += look.length + float(rng.uniform(0.2, 1.5))
            self._cyclist(right_lane + float(rng.uniform(0.5, 1.0)), float(rng.uniform(6, z_max)), bool(rng.random() < 0.5), True, 1, (0.0, self.step * 0.35))

    def build(self) -> Scene:
        self.layout()
        self.ground()
        self.buildings()
        self.greenery_and_poles()
        self.traffic()
        self.pedestrians()
        self.rare_objects()
        rng = self.rng
        hood = None
        if rng.random() < 0.6:
            hood = Hood(float(rng.uniform(0.05, 0.12)), float(rng.uniform(0.6, 0.9)), jitter(rng, vehicles.CAR_COLOURS[rng.integers(len(vehicles.CAR_COLOURS))], 0.03) * 0.6)
        return Scene(self.quads, self.shadows, self.lighting, hood, self.step)


def random_scene(rng: np.random.Generator, frames: int = 1, rare: int = 0) -> Scene:
    """A random street; with ``frames`` > 1 it is long enough for the camera to drive through;
    ``rare`` extra rounds of thin and rare objects (see ``StreetBuilder.rare_objects``)."""
    step = float(rng.uniform(0.5, 1.0))
    return StreetBuilder(rng, frames, step, rare).build()

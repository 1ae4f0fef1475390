"""People: pedestrians (standing or walking, seen from the front, back or side) and riders.

A person is an upright billboard cut to a silhouette: ellipse head, trapezoid torso, limbs as
thick segments, with clothing colours drawn from everyday statistics (mostly dark tops, jeans).
A rider is a seated silhouette placed on a bicycle or motorcycle, as in Cityscapes where the
rider and the vehicle are separate instances.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.synth import shapes
from mtl_perception.data.synth.primitives import Look
from mtl_perception.data.synth.surfaces import F32, fill, jitter, tint
from mtl_perception.data.synth.texture import noise

SKIN = [(0.87, 0.7, 0.58), (0.76, 0.57, 0.44), (0.55, 0.38, 0.27), (0.36, 0.24, 0.17), (0.92, 0.78, 0.68)]
HAIR = [(0.08, 0.06, 0.05), (0.25, 0.16, 0.08), (0.5, 0.38, 0.2), (0.7, 0.6, 0.4), (0.55, 0.55, 0.55)]
TOPS = [
    (0.1, 0.1, 0.12), (0.15, 0.2, 0.35), (0.5, 0.1, 0.1), (0.85, 0.85, 0.82), (0.35, 0.35, 0.33),
    (0.2, 0.35, 0.2), (0.55, 0.45, 0.3), (0.8, 0.6, 0.15), (0.25, 0.15, 0.3), (0.6, 0.25, 0.35),
]
BOTTOMS = [(0.12, 0.17, 0.3), (0.08, 0.08, 0.09), (0.3, 0.3, 0.32), (0.55, 0.48, 0.36), (0.2, 0.25, 0.42)]


@dataclass
class Clothes:
    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    shoes: np.ndarray
    coat: bool  # long top that covers the thighs
    bag: np.ndarray | None
    helmet: np.ndarray | None
    seed: float


def random_clothes(rng: np.random.Generator, helmet: bool = False) -> Clothes:
    return Clothes(
        skin=jitter(rng, SKIN[rng.integers(len(SKIN))], 0.03),
        hair=jitter(rng, HAIR[rng.integers(len(HAIR))], 0.03),
        top=jitter(rng, TOPS[rng.integers(len(TOPS))], 0.05),
        bottom=jitter(rng, BOTTOMS[rng.integers(len(BOTTOMS))], 0.04),
        shoes=jitter(rng, (0.1, 0.1, 0.1) if rng.random() < 0.7 else (0.8, 0.8, 0.8), 0.03),
        coat=bool(rng.random() < 0.25),
        bag=jitter(rng, TOPS[rng.integers(len(TOPS))], 0.05) if rng.random() < 0.3 else None,
        helmet=jitter(rng, [(0.1, 0.1, 0.1), (0.85, 0.85, 0.85), (0.7, 0.1, 0.1), (0.1, 0.3, 0.6)][rng.integers(4)], 0.04) if helmet else None,
        seed=float(rng.uniform(0, 100)),
    )


def _cloth_shade(a, centre: float, half: float, fp, seed: float):
    """Rounded shading across the body plus fabric folds, so a torso reads as a volume."""
    across = np.clip(np.abs(a - centre) / max(half, 1e-3), 0, 1)
    return (1.05 - 0.35 * across * across) * (1.0 + 0.08 * noise(a, a * 0 + 1.0, fp, 4.0, "blob", seed))


@dataclass
class Pedestrian(Look):
    """Walking or standing person of ``height`` metres, ``view`` in front | back | side.

    The quad is ``width`` wide with the body centred; ``stride`` in [-1, 1] sets the walking
    phase (legs and arms swing in profile, slightly apart from the front).
    """

    height: float
    width: float
    view: str
    stride: float
    facing_right: bool
    clothes: Clothes

    def _parts(self, a, b):
        H, c = self.height, self.width / 2
        s = 1.0 if self.facing_right else -1.0
        head = shapes.ellipse(a, b, c + (0.02 * s if self.view == "side" else 0.0), 0.065 * H, 0.075 if self.view != "side" else 0.085, 0.065 * H)
        neck = shapes.box(a, b, c - 0.04, c + 0.04, 0.12 * H, 0.16 * H)
        shoulder = 0.2 if self.view != "side" else 0.12
        torso_end = 0.7 * H if self.clothes.coat else 0.53 * H
        torso = shapes.trapezoid(a, b, c, shoulder, shoulder * (0.85 if not self.clothes.coat else 1.05), 0.16 * H, torso_end)
        torso |= shapes.ellipse(a, b, c, 0.19 * H, shoulder, 0.04 * H)
        hip = (c, 0.52 * H)
        if self.view == "side":
            reach = 0.33 * self.stride
            legs = shapes.segment(a, b, hip, (c + reach, 0.97 * H), 0.065) | shapes.segment(a, b, hip, (c - reach, 0.97 * H), 0.065)
            arms = shapes.segment(a, b, (c, 0.2 * H), (c - 0.6 * reach, 0.5 * H), 0.045) | shapes.segment(a, b, (c, 0.2 * H), (c + 0.6 * reach, 0.5 * H), 0.045)
            feet = shapes.box(a, b, c + reach - 0.05 + 0.05 * s, c + reach + 0.07 + 0.05 * s, 0.96 * H, H) | shapes.box(a, b, c - reach - 0.05 + 0.05 * s, c - reach + 0.07 + 0.05 * s, 0.96 * H, H)
        else:
            spread = 0.09 + 0.02 * abs(self.stride)
            legs = shapes.segment(a, b, (c - 0.08, hip[1]), (c - spread, 0.97 * H), 0.07) | shapes.segment(a, b, (c + 0.08, hip[1]), (c + spread, 0.97 * H), 0.07)
            arms = shapes.segment(a, b, (c - shoulder + 0.03, 0.2 * H), (c - shoulder - 0.03, 0.5 * H), 0.045) | shapes.segment(a, b, (c + shoulder - 0.03, 0.2 * H), (c + shoulder + 0.03, 0.5 * H), 0.045)
            feet = shapes.box(a, b, c - spread - 0.07, c - spread + 0.07, 0.965 * H, H) | shapes.box(a, b, c + spread - 0.07, c + spread + 0.07, 0.965 * H, H)
        return head, neck, torso, legs, arms, feet

    def cutout(self, a, b):
        head, neck, torso, legs, arms, feet = self._parts(a, b)
        return head | neck | torso | legs | arms | feet

    def paint(self, a, b, fp):
        H, c, cl = self.height, self.width / 2, self.clothes
        head, neck, torso, legs, arms, feet = self._parts(a, b)
        out = np.empty((3,) + a.shape, dtype=F32)
        shade = _cloth_shade(a, c, 0.22, fp, cl.seed)
        out[:] = tint(cl.bottom, shade)
        out[:, legs & (b < 0.6 * H)] = tint(cl.top if cl.coat else cl.bottom, shade[legs & (b < 0.6 * H)])
        fill(out, feet, cl.shoes)
        out[:, torso | arms] = tint(cl.top, shade[torso | arms])
        fill(out, arms & (b > 0.46 * H), cl.skin)  # hands
        fill(out, head | neck, cl.skin)
        hair = head & (b < (0.115 * H if self.view == "back" else 0.035 * H))
        if self.view == "side":
            hair |= head & ((a - c) * (1 if self.facing_right else -1) < -0.02) & (b < 0.1 * H)
        fill(out, hair, cl.hair)
        if cl.bag is not None and self.view == "back":
            fill(out, shapes.rounded_box(a, b, c - 0.15, c + 0.15, 0.2 * H, 0.42 * H, 0.04), cl.bag)
        return out


@dataclass
class Rider(Look):
    """A seated rider on a cycle; geometry follows the cycle's seat, bar and pedal positions.

    Profile view: the quad spans the cycle's length, heights in metres above the ground are
    ``top - b``. Back view: a narrow billboard with the legs going down to the pedals.
    """

    profile: bool
    top: float  # world height of the quad's top edge (head top)
    width: float
    seat: float  # profile: a of the seat; back: unused
    bar: float  # profile: a of the handlebar
    crank: float  # profile: a of the pedals
    forward_right: bool
    seat_y: float
    clothes: Clothes

    def _parts(self, a, b):
        y = F32(self.top) - b  # height above ground
        cl = self.clothes
        if not self.profile:
            c = self.width / 2
            head = shapes.ellipse(a, y, c, self.top - 0.12, 0.08, 0.12)
            torso = shapes.trapezoid(a, b, c, 0.19, 0.16, 0.22, self.top - self.seat_y)
            arms = shapes.segment(a, y, (c - 0.17, self.top - 0.27), (c - 0.3, self.seat_y + 0.12), 0.045) | shapes.segment(
                a, y, (c + 0.17, self.top - 0.27), (c + 0.3, self.seat_y + 0.12), 0.045
            )
            legs = shapes.segment(a, y, (c - 0.09, self.seat_y), (c - 0.11, 0.45), 0.07) | shapes.segment(a, y, (c + 0.09, self.seat_y), (c + 0.1, 0.3), 0.07)
            return head, torso, arms, legs
        s = 1.0 if self.forward_right else -1.0
        hip = (self.seat, self.seat_y + 0.05)
        shoulder = (self.seat + s * 0.32, self.top - 0.3)
        head = shapes.ellipse(a, y, self.seat + s * 0.42, self.top - 0.13, 0.1 if cl.helmet is None else 0.13, 0.12 if cl.helmet is None else 0.14)
        torso = shapes.segment(a, y, hip, shoulder, 0.14)
        arms = shapes.segment(a, y, shoulder, (self.bar, self.seat_y + 0.12), 0.05)
        knee = (self.crank + s * 0.3, (self.seat_y + 0.3) / 2 + 0.2)
        legs = shapes.segment(a, y, hip, knee, 0.08) | shapes.segment(a, y, knee, (self.crank + s * 0.08, 0.3), 0.065)
        return head, torso, arms, legs

    def cutout(self, a, b):
        head, torso, arms, legs = self._parts(a, b)
        return head | torso | arms | legs

    def paint(self, a, b, fp):
        cl = self.clothes
        head, torso, arms, legs = self._parts(a, b)
        out = tint(cl.bottom, np.ones(a.shape, dtype=F32))
        out[:, torso | arms] = tint(cl.top, _cloth_shade(a, self.width / 2 if not self.profile else self.seat, 0.3, fp, cl.seed)[torso | arms])
        fill(out, head, cl.helmet if cl.helmet is not None else (cl.hair if not self.profile else cl.skin))
        if cl.helmet is None and self.profile:
            s = 1.0 if self.forward_right else -1.0
            fill(out, head & ((a - self.seat - s * 0.42) * s < -0.02), cl.hair)
        return out


def pedestrian(rng: np.random.Generator, view: str, facing_right: bool = True) -> Pedestrian:
    child = rng.random() < 0.1
    return Pedestrian(
        height=rng.uniform(1.0, 1.4) if child else rng.uniform(1.58, 1.95),
        width=0.9 if view == "side" else 0.7,
        view=view,
        stride=float(rng.uniform(-1, 1)) if rng.random() < 0.8 else 0.0,
        facing_right=facing_right,
        clothes=random_clothes(rng),
    )


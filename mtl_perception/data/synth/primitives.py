"""The scene vocabulary: axis-aligned rectangles (quads) with a look, and ground shadows.

A street scene is a box world: road and pavements are horizontal rectangles, facades run along
the street, and vehicles, people and street furniture are boxes or upright billboards. Three
plane orientations cover all of it and keep ray-plane intersection separable per row or
column (see ``camera.py``). Every quad carries its Cityscapes labelId and gtFine instance id,
so labels, instances and depth all come from the same geometry as the pixels' colours.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

#: Quad orientations: FRONT faces the camera (plane Z = const, a = X, b = Y),
#: SIDE runs along the street (plane X = const, a = Z, b = Y),
#: FLOOR is horizontal (plane Y = const, a = X, b = Z). Y points down, so b grows downwards
#: on upright quads and ``b0`` is their top edge.
FRONT, SIDE, FLOOR = 0, 1, 2


class Look(ABC):
    """How a quad looks: which part of its rectangle exists and what colour each point has.

    Both methods receive local coordinates in metres from the quad's (a0, b0) corner, so
    patterns stay attached to the surface while the camera moves. ``fp`` is the footprint of a
    pixel on the surface (metres), which textures use to fade detail that would alias.
    """

    def cutout(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """Boolean mask of the points that belong to the object; None means the whole quad."""
        return None

    @abstractmethod
    def paint(self, a: np.ndarray, b: np.ndarray, fp: np.ndarray) -> np.ndarray:
        """Albedo of the given points as planar (3, n) float32 in [0, 1] (see ``surfaces.tint``)."""


@dataclass
class Quad:
    """One rectangle of the world at time 0, moving with ``velocity`` (X, Z metres per frame)."""

    kind: int
    plane: float
    a0: float
    a1: float
    b0: float
    b1: float
    label: int
    look: Look
    instance: int = 0  # gtFine instance id; 0 means "the labelId itself" (stuff)
    velocity: tuple[float, float] = (0.0, 0.0)

    @property
    def gt_id(self) -> int:
        return self.instance or self.label


@dataclass
class Shadow:
    """A soft dark rectangle on the ground (X range, Z range), e.g. under a vehicle."""

    x0: float
    x1: float
    z0: float
    z1: float
    strength: float
    softness: float
    velocity: tuple[float, float] = (0.0, 0.0)


def front(x0: float, x1: float, top: float, bottom: float, z: float, label: int, look: Look, **kw) -> Quad:
    """Upright quad facing the camera at depth z; heights are world Y (negative above ground)."""
    return Quad(FRONT, z, x0, x1, top, bottom, label, look, **kw)


def side(x: float, z0: float, z1: float, top: float, bottom: float, label: int, look: Look, **kw) -> Quad:
    """Upright quad along the street at lateral position x."""
    return Quad(SIDE, x, z0, z1, top, bottom, label, look, **kw)


def floor(x0: float, x1: float, z0: float, z1: float, y: float, label: int, look: Look, **kw) -> Quad:
    """Horizontal quad at height y (world Y, 0 = road surface, negative = raised)."""
    return Quad(FLOOR, y, x0, x1, z0, z1, label, look, **kw)


@dataclass
class Lighting:
    """Sun, sky and camera response of one scene (colours are RGB in [0, 1])."""

    sun: np.ndarray  # unit vector towards the sun (world X, Y down, Z)
    sun_colour: np.ndarray
    sun_strength: float
    ambient_colour: np.ndarray
    ambient: float
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    clouds: float  # 0 clear .. 1 overcast
    cloud_colour: np.ndarray
    haze_colour: np.ndarray
    haze_distance: float  # metres at which 63 % of the colour is haze
    exposure: float
    white_balance: np.ndarray
    vignette: float
    noise: float  # sensor noise standard deviation (in [0, 1] units)
    blur: float  # optics blur sigma in pixels (also anti-aliases edges)


@dataclass
class Hood:
    """The ego vehicle's bonnet at the bottom of the image (Cityscapes labels it 'ego vehicle')."""

    height: float  # fraction of the image height at the centre
    half_width: float  # fraction of the image width
    colour: np.ndarray


@dataclass
class Scene:
    """Everything needed to render any frame of one street: quads, shadows, light, motion."""

    quads: list[Quad]
    shadows: list[Shadow]
    lighting: Lighting
    hood: Hood | None
    step: float  # metres the camera moves forward per frame (sequences)

"""Vectorised 2-D shape masks in a quad's local metres (a to the right or along, b downwards).

Objects are drawn as unions of these masks: a car's rear is a body box plus a trapezoid cabin,
a person an ellipse head on a trapezoid torso with two slanted legs. Everything works on
whole arrays of surface points at once.
"""
from __future__ import annotations

import numpy as np


def box(a: np.ndarray, b: np.ndarray, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
    return (a >= a0) & (a < a1) & (b >= b0) & (b < b1)


def ellipse(a: np.ndarray, b: np.ndarray, ca: float, cb: float, ra: float, rb: float) -> np.ndarray:
    da = (a - ca) / ra
    db = (b - cb) / rb
    return da * da + db * db <= 1.0


def ring(a: np.ndarray, b: np.ndarray, ca: float, cb: float, r_out: float, r_in: float) -> np.ndarray:
    d2 = (a - ca) ** 2 + (b - cb) ** 2
    return (d2 <= r_out * r_out) & (d2 >= r_in * r_in)


def rounded_box(a: np.ndarray, b: np.ndarray, a0: float, a1: float, b0: float, b1: float, r: float) -> np.ndarray:
    """Box with corner radius r (clamped to half the smaller side)."""
    r = min(r, (a1 - a0) / 2, (b1 - b0) / 2)
    ca = np.clip(a, a0 + r, a1 - r)
    cb = np.clip(b, b0 + r, b1 - r)
    return box(a, b, a0, a1, b0, b1) & ((a - ca) ** 2 + (b - cb) ** 2 <= r * r)


def trapezoid(
    a: np.ndarray, b: np.ndarray, centre: float, half_top: float, half_bottom: float, b0: float, b1: float
) -> np.ndarray:
    """Symmetric trapezoid between heights b0 (top, half width half_top) and b1 (bottom)."""
    f = (b - b0) / (b1 - b0)
    half = half_top + (half_bottom - half_top) * f
    return (b >= b0) & (b < b1) & (np.abs(a - centre) <= half)


def slanted(a: np.ndarray, b: np.ndarray, a_top0: float, a_top1: float, a_bot0: float, a_bot1: float, b0: float, b1: float) -> np.ndarray:
    """Quadrilateral with horizontal top and bottom edges: [a_top0, a_top1] at b0, [a_bot0, a_bot1] at b1."""
    f = (b - b0) / (b1 - b0)
    left = a_top0 + (a_bot0 - a_top0) * f
    right = a_top1 + (a_bot1 - a_top1) * f
    return (b >= b0) & (b < b1) & (a >= left) & (a < right)


def segment(a: np.ndarray, b: np.ndarray, p: tuple[float, float], q: tuple[float, float], r: float) -> np.ndarray:
    """Thick line from p to q (radius r): bicycle frames, limbs, poles' arms."""
    pa, pb = p
    da, db = q[0] - pa, q[1] - pb
    length2 = da * da + db * db
    s = np.clip(((a - pa) * da + (b - pb) * db) / length2, 0.0, 1.0)
    ea = a - (pa + s * da)
    eb = b - (pb + s * db)
    return ea * ea + eb * eb <= r * r

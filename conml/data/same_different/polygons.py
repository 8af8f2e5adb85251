"""The Puebla-Bowers polygon engine (after SVRT #1): irregular, regular, open, wider_line,
random_color and filled.

Both shapes share a radius r ~ U{10..39}. "Same" draws the identical integer vertex list twice
(a pure translation); "different" draws two polygons with distinct side counts and independent
rotations and jitter. Jitter adds one draw to both x and y of a vertex (the original code's
diagonal-only jitter, kept on purpose), then vertices are re-ordered by angle around their mean.
"""

from __future__ import annotations

import math

import numpy as np

from conml.data.same_different.raster import BLACK, blank, count_shapes, fill_polygon, polyline

SIDES = np.arange(3, 8)


def regular_vertices(sides: int, radius: int, rotation_degrees: float) -> np.ndarray:
    """Integer vertices [sides, 2] of a regular polygon around the origin, truncated toward zero."""
    angles = 2 * np.pi * np.arange(sides) / sides + math.radians(rotation_degrees)
    return np.stack([np.trunc(radius * np.sin(angles)), np.trunc(radius * np.cos(angles))], 1).astype(np.int64)


def jittered_vertices(rng: np.random.Generator, sides: int, radius: int, rotation_degrees: float) -> np.ndarray:
    """Regular vertices moved along the (1, 1) diagonal by U{-r/2..r/2}, sorted by angle."""
    vertices = regular_vertices(sides, radius, rotation_degrees)
    most = int(0.5 * radius)
    vertices = vertices + rng.integers(-most, most + 1, size=(sides, 1))
    offset = vertices - vertices.mean(0)
    return vertices[np.argsort(np.arctan2(offset[:, 0], offset[:, 1]), kind="stable")]


def polygon_pair(
    rng: np.random.Generator,
    same: bool,
    irregular: bool = True,
    closed: bool = True,
    thickness: int = 1,
    filled: bool = False,
    random_colour: bool = False,
) -> np.ndarray:
    """One image of two polygons; redrawn until exactly two shapes are visible."""
    while True:
        radius = int(rng.integers(10, 40))
        sides = rng.choice(SIDES, size=2, replace=False)
        rotations = rng.integers(0, 361, size=2)

        def shape(k: int) -> np.ndarray:
            if irregular:
                return jittered_vertices(rng, int(sides[k]), radius, float(rotations[k]))
            return regular_vertices(int(sides[k]), radius, float(rotations[k]))

        first = shape(0)
        second = first if same else shape(1)
        margin = radius + int(0.5 * radius)
        centres = rng.integers(margin, 128 - margin, size=(2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3)) if random_colour else BLACK
        image = blank()
        for vertices, centre in ((first, centres[0]), (second, centres[1])):
            if filled:
                fill_polygon(image, vertices + centre, colour)
            else:
                polyline(image, vertices + centre, closed, colour, thickness)
        if count_shapes(image) == 2:
            return image


def irregular(rng: np.random.Generator, same: bool) -> np.ndarray:
    return polygon_pair(rng, same)


def regular(rng: np.random.Generator, same: bool) -> np.ndarray:
    return polygon_pair(rng, same, irregular=False)


def open_polygons(rng: np.random.Generator, same: bool) -> np.ndarray:
    """Irregular outlines without their closing edge, which always faces up (angle-sorted vertices)."""
    return polygon_pair(rng, same, closed=False)


def wider_line(rng: np.random.Generator, same: bool) -> np.ndarray:
    return polygon_pair(rng, same, thickness=2)


def random_color(rng: np.random.Generator, same: bool) -> np.ndarray:
    """Both outlines in one uniformly random RGB colour per image (drawn in colour, as intended)."""
    return polygon_pair(rng, same, random_colour=True)


def filled(rng: np.random.Generator, same: bool) -> np.ndarray:
    return polygon_pair(rng, same, filled=True)

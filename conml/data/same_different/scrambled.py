"""Scrambled: a small regular polygon and, opposite it, either its copy ("same") or its copy cut
into four quadrant patches pushed apart diagonally ("different").

A different image shows one intact polygon and a set of fragments, so it is kept whenever the
fragments are visible (at least two external shapes); a same image needs exactly two.
"""

from __future__ import annotations

import numpy as np

from conml.data.same_different.polygons import regular_vertices
from conml.data.same_different.raster import WHITE, blank, count_shapes, polyline


def _first_centre(rng: np.random.Generator, margin: int) -> np.ndarray:
    """A centre inside one of the four quadrants, `margin` away from the quadrant's edges."""
    sides = rng.integers(0, 2, size=2)
    return np.array([rng.integers(margin + 64 * s, 64 * (s + 1) - margin) for s in sides])


def _opposite_centre(rng: np.random.Generator, first: np.ndarray) -> np.ndarray:
    """A centre pushed to the other side of the canvas along a random axis."""
    axis = int(rng.integers(0, 2))
    centre = rng.integers(28, 100, size=2)
    centre[axis] = rng.integers(28, 36) if first[axis] > 64 else rng.integers(92, 100)
    return centre


def scramble(image: np.ndarray, rng: np.random.Generator, centre: np.ndarray, size: int) -> None:
    """Cut the four size x size patches around `centre` and paste each back shifted outward.

    Shifts along x are four distinct values of U{0..size//2 - 1}, and so are the shifts along y.
    """
    x, y = (int(v) for v in centre)
    shifts_x = rng.choice(size // 2, size=4, replace=False)
    shifts_y = rng.choice(size // 2, size=4, replace=False)
    patches = []
    for k, (down, right) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        top, left = y - size + down * size, x - size + right * size
        patch = image[top : top + size, left : left + size].copy()
        dy = shifts_y[k] if down else -shifts_y[k]
        dx = shifts_x[k] if right else -shifts_x[k]
        patches.append((patch, top + dy, left + dx))
    image[y - size : y + size, x - size : x + size] = WHITE
    for patch, top, left in patches:
        image[top : top + size, left : left + size] = patch


def scrambled(rng: np.random.Generator, same: bool) -> np.ndarray:
    while True:
        radius = int(rng.integers(10, 18))
        sides = int(rng.integers(3, 8))
        vertices = regular_vertices(sides, radius, float(rng.integers(0, 361)))
        margin = radius + int(0.5 * radius)
        first = _first_centre(rng, margin)
        second = _opposite_centre(rng, first)
        image = blank()
        polyline(image, vertices + first, closed=True)
        polyline(image, vertices + second, closed=True)
        if not same:
            scramble(image, rng, second, radius + 1)
        shapes = count_shapes(image)
        if shapes == 2 or (not same and shapes > 2):
            return image

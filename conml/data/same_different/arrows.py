"""Arrows: a shaft with a triangular head at one or both ends, each head pointing out ("normal")
or in ("inverted"), the whole arrow rotated by U{0..135} degrees.

"Same" copies the arrow. "Different" is the original's hard test: same size and rotation, the
first arrow's heads share one type and the second arrow's heads have the opposite type, and a
single head moves to the other end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from conml.data.same_different.polygons import regular_vertices
from conml.data.same_different.raster import blank, count_shapes, line, polyline


@dataclass(frozen=True)
class Arrow:
    size: int
    rotation: int
    top: bool  # which heads are drawn
    bottom: bool
    top_inverted: bool
    bottom_inverted: bool


def _rotate(points: np.ndarray, centre: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate integer points about `centre`, truncating each cos/sin term as the original does."""
    angle = math.radians(degrees)
    dx, dy = points[:, 0] - centre[0], points[:, 1] - centre[1]
    cos, sin = math.cos(angle), math.sin(angle)
    x = centre[0] + np.trunc(cos * dx) + np.trunc(sin * dy)
    y = centre[1] + np.trunc(cos * dy) - np.trunc(sin * dx)
    return np.stack([x, y], 1).astype(np.int64)


def _bounding_midpoint(triangle: np.ndarray, bottom: bool) -> tuple[int, int]:
    """Middle of the bottom (or top) edge of a triangle's bounding box."""
    x = int((triangle[:, 0].min() + triangle[:, 0].max()) / 2)
    return x, int(triangle[:, 1].max() if bottom else triangle[:, 1].min())


def draw_arrow(image: np.ndarray, arrow: Arrow, centre: np.ndarray) -> None:
    r, (cx, cy) = arrow.size, (int(v) for v in centre)
    up, down = regular_vertices(3, r, 180), regular_vertices(3, r, 0)  # tip up / tip down
    top_origin, bottom_origin = np.array([cx, int(cy - 2 * r)]), np.array([cx, int(cy + 2 * r)])
    # The shaft joins the normal heads' facing sides, whichever head types are drawn.
    shaft = np.array(
        [_bounding_midpoint(up + top_origin, bottom=True), _bounding_midpoint(down + bottom_origin, bottom=False)]
    )
    top = down + [cx, int(top_origin[1] - r / 2)] if arrow.top_inverted else up + top_origin
    bottom = up + [cx, int(bottom_origin[1] + r / 2) + 1] if arrow.bottom_inverted else down + bottom_origin
    centre = np.array([cx, cy])
    if arrow.top:
        polyline(image, _rotate(top, centre, arrow.rotation), closed=True)
    if arrow.bottom:
        polyline(image, _rotate(bottom, centre, arrow.rotation), closed=True)
    start, end = _rotate(shaft, centre, arrow.rotation)
    line(image, start, end)


def arrows(rng: np.random.Generator, same: bool) -> np.ndarray:
    while True:
        top = bool(rng.integers(0, 2))
        bottom = True if not top else bool(rng.integers(0, 2))
        types = rng.integers(0, 2, size=2)
        first = Arrow(int(rng.integers(4, 11)), int(rng.integers(0, 136)), top, bottom, bool(types[0]), bool(types[1]))
        if same:
            second = first
        else:
            first = replace(first, top_inverted=first.bottom_inverted)
            both = first.top and first.bottom
            second = replace(
                first,
                top=both or not first.top,
                bottom=both or not first.bottom,
                top_inverted=not first.bottom_inverted,
                bottom_inverted=not first.top_inverted,
            )
        span = np.arange(4 * first.size, 127 - 4 * first.size)
        xs, ys = rng.choice(span, size=2, replace=False), rng.choice(span, size=2, replace=False)
        image = blank()
        draw_arrow(image, first, np.array([xs[0], ys[0]]))
        draw_arrow(image, second, np.array([xs[1], ys[1]]))
        if count_shapes(image) == 2:
            return image

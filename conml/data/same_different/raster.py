"""Non-antialiased rasterisation on a 128x128 white canvas, and the two-shape rejection rule.

The Puebla-Bowers stimuli were drawn with OpenCV's 8-connected, non-antialiased primitives; these
re-implement them with numpy so that the generators need no OpenCV. Points are integer (x, y) with
y pointing down; pixels outside the canvas are clipped.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from conml.data.same_different.thick_line import thick_segment_pixels

SIZE = 128
WHITE = 255
BLACK = (0, 0, 0)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def blank() -> np.ndarray:
    """A white 128x128 RGB canvas."""
    return np.full((SIZE, SIZE, 3), WHITE, dtype=np.uint8)


def _plot(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour) -> None:
    inside = (xs >= 0) & (xs < image.shape[1]) & (ys >= 0) & (ys < image.shape[0])
    image[ys[inside], xs[inside]] = colour


def segment_pixels(p0, p1) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the 8-connected line p0 -> p1, both ends included (one pixel per major-axis step)."""
    (x0, y0), (x1, y1) = (int(v) for v in p0), (int(v) for v in p1)
    dx, dy = x1 - x0, y1 - y0
    steps = max(abs(dx), abs(dy))
    if steps == 0:
        return np.array([x0]), np.array([y0])
    i = np.arange(steps + 1)
    # Round i*d/steps half away from the start in integer arithmetic, so lines are symmetric.
    xs = x0 + np.sign(dx) * ((2 * i * abs(dx) + steps) // (2 * steps))
    ys = y0 + np.sign(dy) * ((2 * i * abs(dy) + steps) // (2 * steps))
    return xs, ys


def line(image: np.ndarray, p0, p1, colour=BLACK, thickness: int = 1) -> None:
    """Draw a segment; thickness > 1 draws OpenCV's thick stroke (see `thick_line`)."""
    xs, ys = segment_pixels(p0, p1) if thickness == 1 else thick_segment_pixels(p0, p1, thickness, image.shape[:2])
    _plot(image, xs, ys, colour)


def polyline(image: np.ndarray, points, closed: bool, colour=BLACK, thickness: int = 1) -> None:
    """Draw consecutive segments through `points` [k, 2]; `closed` adds the last -> first edge."""
    points = np.asarray(points)
    ends = len(points) if closed else len(points) - 1
    for i in range(ends):
        line(image, points[i], points[(i + 1) % len(points)], colour, thickness)


def fill_polygon(image: np.ndarray, points, colour=BLACK) -> None:
    """Fill a polygon: pixel centres inside it (even-odd rule) and its outline."""
    points = np.asarray(points, dtype=float)
    low, high = np.floor(points.min(0)).astype(int), np.ceil(points.max(0)).astype(int)
    ys, xs = np.mgrid[low[1] : high[1] + 1, low[0] : high[0] + 1]
    inside = np.zeros(xs.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        crosses = (y1 > ys) != (y2 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < at)
    _plot(image, xs[inside], ys[inside], colour)
    polyline(image, points.astype(int), closed=True, colour=colour)


def foreground(image: np.ndarray) -> np.ndarray:
    """Non-white pixels. On a two-level image this is what an inverted Otsu threshold keeps."""
    return (image != WHITE).any(axis=-1)


def shape_labels(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the shapes as OpenCV's external contours see them: 8-connected foreground, with
    anything nested inside another shape's hole counted as part of that shape."""
    ink = foreground(image)
    background, _ = ndimage.label(~ink)  # 4-connected, as OpenCV treats the background
    edges = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    holes = (background > 0) & ~np.isin(background, edges)
    return ndimage.label(ink | holes, structure=_EIGHT_CONNECTED)


def count_shapes(image: np.ndarray) -> int:
    """Number of external contours: the rejection rule keeps images where this is exactly 2."""
    return shape_labels(image)[1]

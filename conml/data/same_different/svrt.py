"""SVRT problem 1 ("original", Fleuret et al. 2011): two closed random curves, same or different.

A curve joins four anchor points, one per quadrant, by recursive midpoint displacement, all
within radius R = 26.25 px and outside a hole of radius 2.5 px (the 128 px vignette's scale 2.5
of part size 21 and hole size 2). "Same" draws one curve twice, untransformed. Curves that leave
the canvas or come within one pixel of each other restart the whole image.
"""

from __future__ import annotations

import numpy as np

from conml.data.same_different.raster import SIZE, blank, count_shapes, segment_pixels

RADIUS = 2.5 * (SIZE // 6) / 2
HOLE = 2.5 * (SIZE // 64) / 2
_QUADRANTS = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
_FINEST = 0.25


def _anchor(rng: np.random.Generator, signs: np.ndarray) -> np.ndarray:
    while True:
        point = signs * rng.random(2) * RADIUS
        if HOLE <= np.hypot(*point) <= RADIUS:
            return point


def _in_disc(rng: np.random.Generator, radii: np.ndarray) -> np.ndarray:
    """One uniform point per radius, in the disc of that radius around the origin."""
    length = radii * np.sqrt(rng.random(len(radii)))
    angle = 2 * np.pi * rng.random(len(radii))
    return np.stack([length * np.cos(angle), length * np.sin(angle)], 1)


def _displaced_midpoints(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Midpoints moved by a jump in a disc of radius |end - start| / 5, redrawn while outside R."""
    middle = (starts + ends) / 2
    radii = np.hypot(*(ends - starts).T) / 5
    moved = middle + _in_disc(rng, radii)
    outside = np.hypot(*moved.T) > RADIUS
    while outside.any():
        moved[outside] = middle[outside] + _in_disc(rng, radii[outside])
        outside = np.hypot(*moved.T) > RADIUS
    return moved


def random_curve(rng: np.random.Generator) -> np.ndarray:
    """Points [m, 2] of a closed curve, in order, spaced at most 0.25 px along each axis."""
    while True:
        points = np.stack([_anchor(rng, signs) for signs in _QUADRANTS])
        while True:
            gaps = np.abs(np.roll(points, -1, axis=0) - points)
            split = (gaps > _FINEST).any(1)
            if not split.any():
                break
            index = np.flatnonzero(split)
            midpoints = _displaced_midpoints(rng, points[index], np.roll(points, -1, axis=0)[index])
            points = np.insert(points, index + 1, midpoints, axis=0)
        distance = np.hypot(*points.T)
        if ((distance >= HOLE) & (distance <= RADIUS)).all():
            return points


def curve_pixels(curve: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Integer pixels [k, 2] of the curve drawn at `centre`, with any gaps joined into a closed line."""
    pixels = np.trunc(curve + centre).astype(np.int64)
    following = np.roll(pixels, -1, axis=0)
    gaps = np.flatnonzero(np.abs(following - pixels).max(1) > 1)
    joins = [np.stack(segment_pixels(pixels[i], following[i]), 1) for i in gaps]
    return np.concatenate([pixels, *joins])


def original(rng: np.random.Generator, same: bool) -> np.ndarray:
    while True:
        first = random_curve(rng)
        curves = (first, first if same else random_curve(rng))
        ink = np.zeros((SIZE, SIZE), dtype=bool)
        for curve in curves:
            pixels = curve_pixels(curve, np.trunc(rng.random(2) * SIZE))
            if (pixels < 1).any() or (pixels >= SIZE - 1).any():
                break
            xs, ys = pixels[:, 0], pixels[:, 1]
            near = np.zeros_like(ink)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    near[ys + dy, xs + dx] = True
            if (near & ink).any():
                break
            ink[ys, xs] = True
        else:
            image = blank()
            image[ink] = 0
            # Fleuret's rules cannot stop one curve from lying inside the other; this keeps two shapes.
            if count_shapes(image) == 2:
                return image

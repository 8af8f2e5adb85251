"""OpenCV's rule for a non-antialiased line thicker than one pixel, re-implemented in integers.

OpenCV (`cv2.line`, `cv2.polylines` with thickness > 1 and LINE_8) draws such a line as a
quadrilateral around the segment, computed in 16-bit fixed point and filled one scanline at a
time, plus a filled midpoint circle at each end. The stroke is not a swept disc and its width
varies with the angle, so the wider_line stimuli match the original's only when every rounding
step is followed. For integer ends on the canvas the pixels are OpenCV's (4.5 to 5.0 agree
there; tests/data/test_same_different_strokes.py checks them against OpenCV's own drawings).
"""

from __future__ import annotations

import math

import numpy as np

SHIFT = 16
ONE = 1 << SHIFT
HALF = ONE >> 1


def _c_div(a: int, b: int) -> int:
    """Integer division rounding toward zero, as C's."""
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _clipped(start: list[int], end: list[int], canvas: tuple[int, int]) -> bool:
    """Move the fixed-point ends of a segment onto the border of a (height, width) canvas, in
    OpenCV's order and integer arithmetic; False when the segment misses the canvas."""
    bottom, right = ((side << SHIFT) - 1 for side in canvas)

    def outcode(point):
        return (point[0] < 0) + 2 * (point[0] > right) + 4 * (point[1] < 0) + 8 * (point[1] > bottom)

    codes = [outcode(start), outcode(end)]
    if codes[0] & codes[1] or not codes[0] | codes[1]:
        return not codes[0] | codes[1]
    for k, point in enumerate((start, end)):
        if codes[k] & 12:
            border = 0 if codes[k] < 8 else bottom
            point[0] += _c_div((border - point[1]) * (end[0] - start[0]), end[1] - start[1])
            point[1] = border
            codes[k] = (point[0] < 0) + 2 * (point[0] > right)
    if not codes[0] & codes[1]:
        for k, point in enumerate((start, end)):
            if codes[k]:
                border = 0 if codes[k] == 1 else right
                point[1] += _c_div((border - point[0]) * (end[1] - start[1]), end[0] - start[0])
                point[0] = border
                codes[k] = 0
    return not codes[0] | codes[1]


def _fixed_point_line(
    start: tuple[int, int], end: tuple[int, int], canvas: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the 8-connected outline edge between two fixed-point points, clipped to the
    canvas: one pixel per step along the major axis from the rounded start, the minor
    coordinate advanced by a truncated fixed-point slope, plus the rounded end point."""
    start, end = list(start), list(end)
    if not _clipped(start, end, canvas):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    x_major = abs(end[0] - start[0]) > abs(end[1] - start[1])
    major, minor = (0, 1) if x_major else (1, 0)
    if end[major] < start[major]:
        start, end = end, start
    run = end[major] - start[major]
    slope = _c_div((end[minor] - start[minor]) << SHIFT, run | 1)
    steps = np.arange((run >> SHIFT) + 1, dtype=np.int64)
    along = ((start[major] + HALF) >> SHIFT) + steps
    across = (start[minor] + HALF + steps * slope) >> SHIFT
    ends = np.array([(end[major] + HALF) >> SHIFT]), np.array([(end[minor] + HALF) >> SHIFT])
    along, across = np.concatenate([along, ends[0]]), np.concatenate([across, ends[1]])
    return (along, across) if x_major else (across, along)


def _filled_quadrilateral(corners: list[tuple[int, int]], canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a convex fixed-point polygon: its outline edges, then each scanline between a left
    and a right edge walked down from the top vertex. An edge starts at its upper vertex's x on
    the first row it covers and moves by its rounded per-row slope (OpenCV's convex fill)."""
    xs, ys = zip(*(_fixed_point_line(corners[i - 1], corners[i], canvas) for i in range(len(corners))))
    xs, ys = list(xs), list(ys)
    top = min(range(len(corners)), key=lambda i: (corners[i][1], i))
    row = (corners[top][1] + HALF) >> SHIFT
    last_row = (max(c[1] for c in corners) + HALF) >> SHIFT
    # Per walking direction (+1: next vertex, -1: previous): vertex index, row where it ends, x, x step.
    edges = [[top, row, -ONE, 0], [top, row, -ONE, 0]]
    budget = len(corners)  # edges left to walk; running out ends the fill
    while row <= last_row:
        for edge, direction in zip(edges, (1, -1)):
            if row < edge[1]:
                continue
            previous, following = edge[0], (edge[0] + direction) % len(corners)
            while budget > 0:
                budget -= 1
                bottom = (corners[following][1] + HALF) >> SHIFT
                if bottom > row:
                    x_top, x_bottom = corners[previous][0], corners[following][0]
                    height = bottom - row
                    edge[:] = [following, bottom, x_top, _c_div(2 * (x_bottom - x_top) + height, 2 * height)]
                    break
                previous, following = following, (following + direction) % len(corners)
            else:
                budget -= 1  # the failed check counts down too (OpenCV's `edges-- > 0`)
        if budget < 0:
            break
        left, right = sorted((edges[0][2], edges[1][2]))
        span = np.arange((left + HALF) >> SHIFT, ((right + HALF) >> SHIFT) + 1)
        xs.append(span)
        ys.append(np.full(len(span), row))
        for edge in edges:
            edge[2] += edge[3]
        row += 1
    return np.concatenate(xs), np.concatenate(ys)


def _filled_circle(centre: tuple[int, int], radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of OpenCV's filled midpoint circle (the round cap of a thick line)."""
    spans = []
    err, dx, dy, plus, minus = 0, radius, 0, 1, 2 * radius - 1
    while dx >= dy:
        for half_width, rows in ((dx, (-dy, dy)), (dy, (-dx, dx))):
            for offset in rows:
                span = np.arange(centre[0] - half_width, centre[0] + half_width + 1)
                spans.append((span, np.full(len(span), centre[1] + offset)))
        dy, err, plus = dy + 1, err + plus, plus + 2
        if err > 0:
            err, dx, minus = err - minus, dx - 1, minus - 2
    xs, ys = zip(*spans)
    return np.concatenate(xs), np.concatenate(ys)


def thick_segment_pixels(p0, p1, thickness: int, canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (may repeat) of OpenCV's `thickness`-px line p0 -> p1 between integer points, with
    round caps at both ends, on a (height, width) canvas that clips the quadrilateral's outline."""
    start, end = ((int(p[0]) << SHIFT, int(p[1]) << SHIFT) for p in (p0, p1))
    # The half-width is thickness/2 rounded up to whole pixels (odd thicknesses get half a pixel more).
    half_width = (thickness << (SHIFT - 1)) + (thickness & 1) * HALF
    # (x0 - x1, y1 - y0): swapped, it is the normal along which the corners are offset.
    back_x, down_y = (start[0] - end[0]) / ONE, (end[1] - start[1]) / ONE
    length2 = back_x * back_x + down_y * down_y
    pieces = []
    if length2 > np.finfo(float).eps:
        scale = half_width / math.sqrt(length2)
        # round() is round-half-to-even, as OpenCV's cvRound.
        offset = (round(down_y * scale), round(back_x * scale))
        corners = [
            (start[0] + offset[0], start[1] + offset[1]),
            (start[0] - offset[0], start[1] - offset[1]),
            (end[0] - offset[0], end[1] - offset[1]),
            (end[0] + offset[0], end[1] + offset[1]),
        ]
        pieces.append(_filled_quadrilateral(corners, canvas))
    cap_radius = ((thickness << (SHIFT - 1)) + HALF) >> SHIFT
    for point in (p0, p1):
        pieces.append(_filled_circle((int(point[0]), int(point[1])), cap_radius))
    xs, ys = zip(*pieces)
    return np.concatenate(xs), np.concatenate(ys)

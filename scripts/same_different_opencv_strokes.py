"""OpenCV's own drawings of lines and polygons, the reference our same-different rasteriser is tested against.

    uv run --frozen --with opencv-python-headless==4.14.0.94 python scripts/same_different_opencv_strokes.py

OpenCV is no dependency of the project: this script is the only code that imports it, and what it
writes (tests/data/test_same_different_strokes_opencv.json) is committed, so that
tests/data/test_same_different_strokes.py needs no OpenCV. It records, drawn with OpenCV's default
non-antialiased 8-connected primitives on a 128x128 canvas:
- the pixel counts of one 30-px segment at 0, 15, 30, 45 and 90 degrees for thicknesses 1, 2, 3, 5;
- the pixel count and a digest of the exact pixels of random thick segments and closed polylines
  with every vertex on the canvas (where OpenCV 4.5 to 5.0 draw the same pixels);
- the pixel counts of random thin closed polylines and filled polygons.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

SIZE = 128
START = (50, 50)
# Integer runs (dx, dy) of a 30-px segment at each angle.
RUNS = {0: (30, 0), 15: (28, 7), 30: (25, 15), 45: (21, 21), 90: (0, 30)}
SEGMENT_THICKNESSES = (1, 2, 3, 5)
STROKE_THICKNESSES = (2, 3, 5)


def mask_digest(mask: np.ndarray) -> str:
    """A digest of which pixels of a 128x128 canvas are drawn."""
    return hashlib.sha1(np.packbits(mask).tobytes()).hexdigest()


def drawn(draw) -> np.ndarray:
    """The pixels that `draw(canvas)` paints on a blank single-channel canvas."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    draw(canvas)
    return canvas > 0


def random_polygon(rng: np.random.Generator) -> np.ndarray:
    """3 to 7 vertices around a random centre, in angular order, all on the canvas."""
    sides = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
    radius = rng.uniform(5, 40, sides)
    centre = rng.integers(20, SIZE - 20, 2)
    points = centre + np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    return np.clip(np.round(points), 0, SIZE - 1).astype(np.int32)


def reference(seed: int = 0) -> dict:
    import cv2  # here, so that the tests can import mask_digest without OpenCV

    rng = np.random.default_rng(seed)
    segments = {
        str(thickness): {
            str(angle): int(drawn(lambda c: cv2.line(c, START, (START[0] + dx, START[1] + dy), 255, thickness)).sum())
            for angle, (dx, dy) in RUNS.items()
        }
        for thickness in SEGMENT_THICKNESSES
    }
    strokes = []
    for k in range(45):
        thickness = STROKE_THICKNESSES[k % len(STROKE_THICKNESSES)]
        closed = k >= 30
        points = random_polygon(rng) if closed else rng.integers(0, SIZE, (2, 2)).astype(np.int32)
        mask = drawn(lambda c: cv2.polylines(c, [points], closed, 255, thickness))
        strokes.append(
            {
                "points": points.tolist(),
                "closed": closed,
                "thickness": thickness,
                "pixels": int(mask.sum()),
                "digest": mask_digest(mask),
            }
        )
    polygons = [random_polygon(rng) for _ in range(20)]
    return {
        "opencv": cv2.__version__,
        "start": list(START),
        "runs": {str(angle): list(run) for angle, run in RUNS.items()},
        "segment_pixels": segments,
        "thick_strokes": strokes,
        "thin_polygons": [
            {"points": p.tolist(), "pixels": int(drawn(lambda c: cv2.polylines(c, [p], True, 255, 1)).sum())}
            for p in polygons
        ],
        "filled_polygons": [
            {"points": p.tolist(), "pixels": int(drawn(lambda c: cv2.fillPoly(c, [p], 255)).sum())} for p in polygons
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("tests/data/test_same_different_strokes_opencv.json"))
    args = parser.parse_args()
    args.out.write_text(json.dumps(reference(), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

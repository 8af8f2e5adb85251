"""Our rasteriser against OpenCV's drawings (made by scripts/same_different_opencv_strokes.py).

Thick lines follow OpenCV's rule pixel for pixel. Thin lines and filled polygons keep their own
rounding (ties may fall on the neighbouring pixel), so only their pixel counts are compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conml.data.same_different.raster import blank, fill_polygon, foreground, line, polyline
from scripts.same_different_opencv_strokes import mask_digest

OPENCV = json.loads((Path(__file__).parent / "test_same_different_strokes_opencv.json").read_text())


@pytest.mark.parametrize("thickness", sorted(OPENCV["segment_pixels"]))
def test_a_segment_has_as_many_pixels_as_opencvs_at_every_angle(thickness):
    start = np.array(OPENCV["start"])
    ours = {}
    for angle, run in OPENCV["runs"].items():
        image = blank()
        line(image, start, start + run, thickness=int(thickness))
        ours[angle] = int(foreground(image).sum())
    assert ours == OPENCV["segment_pixels"][thickness]


@pytest.mark.parametrize("stroke", OPENCV["thick_strokes"], ids=lambda s: f"{len(s['points'])}pts-t{s['thickness']}")
def test_thick_strokes_are_opencvs_pixels(stroke):
    image = blank()
    polyline(image, stroke["points"], stroke["closed"], thickness=stroke["thickness"])
    mask = foreground(image)
    assert mask.sum() == stroke["pixels"]
    assert mask_digest(mask) == stroke["digest"], "same count, other pixels"


def test_thin_outlines_and_filled_polygons_cover_as_many_pixels_as_opencvs():
    ours = {"thin_polygons": [], "filled_polygons": []}
    for thin, filled in zip(OPENCV["thin_polygons"], OPENCV["filled_polygons"]):
        outline, solid = blank(), blank()
        polyline(outline, thin["points"], closed=True)
        fill_polygon(solid, filled["points"])
        ours["thin_polygons"].append(int(foreground(outline).sum()))
        ours["filled_polygons"].append(int(foreground(solid).sum()))
    for kind, tolerance in (("thin_polygons", 0.02), ("filled_polygons", 0.05)):
        theirs = [p["pixels"] for p in OPENCV[kind]]
        assert ours[kind] == pytest.approx(theirs, rel=tolerance), "each polygon (slivers differ most)"
        assert sum(ours[kind]) == pytest.approx(sum(theirs), rel=0.005), "all polygons together"

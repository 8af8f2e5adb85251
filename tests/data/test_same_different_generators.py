"""Each same-different generator: two shapes, the right relation between them, byte-identical by seed."""

from __future__ import annotations

import numpy as np
import pytest

from conml.data.same_different.raster import blank, count_shapes, fill_polygon, foreground, polyline, shape_labels
from conml.data.same_different.tasks import SHAPE_TASKS

PER_LABEL = 4


def draws(task: str, same: bool, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [SHAPE_TASKS[task](rng, same) for _ in range(PER_LABEL)]


def shape_crops(image: np.ndarray) -> list[np.ndarray]:
    """Each shape's own pixels, cropped to its bounding box, largest box first."""
    labels, count = shape_labels(image)
    ink = foreground(image)
    crops = []
    for k in range(1, count + 1):
        ys, xs = np.nonzero(labels == k)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        crops.append(ink[box] & (labels[box] == k))
    return sorted(crops, key=lambda c: -c.size)


@pytest.mark.parametrize("task", SHAPE_TASKS)
def test_same_images_show_one_shape_twice(task):
    for image in draws(task, same=True):
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        first, second = shape_crops(image)  # exactly two shapes
        assert np.array_equal(first, second), f"{task}: a same pair must be two translated copies"


@pytest.mark.parametrize("task", [t for t in SHAPE_TASKS if t != "scrambled"])
def test_different_images_show_two_different_shapes(task):
    for image in draws(task, same=False):
        first, second = shape_crops(image)
        assert not np.array_equal(first, second), f"{task}: a different pair must not be two copies"


def test_scrambled_different_images_show_one_intact_shape_and_its_fragments():
    for image in draws("scrambled", same=False):
        crops = shape_crops(image)
        assert len(crops) > 2, "the scrambled polygon breaks into several fragments"
        assert all(c.sum() < crops[0].sum() for c in crops[1:]), "every fragment is smaller than the intact polygon"


def test_random_color_draws_both_shapes_in_one_colour_that_varies_between_images():
    colours = []
    for same in (True, False):
        for image in draws("random_color", same):
            ink = image[foreground(image)]
            assert len(np.unique(ink, axis=0)) == 1, "both outlines share one colour"
            colours.append(tuple(ink[0]))
    assert len(set(colours)) == len(colours), "each image draws its own colour (none are blank or black)"


def test_other_tasks_are_black_on_white():
    for task in ("irregular", "filled", "arrows", "original"):
        image = draws(task, same=False)[0]
        assert set(np.unique(image)) == {0, 255}


def test_filled_shapes_are_solid_and_wider_lines_are_thicker():
    filled_ink = np.mean([foreground(i).sum() for i in draws("filled", True)])
    outline_ink = np.mean([foreground(i).sum() for i in draws("irregular", True)])
    wide_ink = np.mean([foreground(i).sum() for i in draws("wider_line", True)])
    assert filled_ink > 3 * outline_ink
    assert wide_ink > 1.8 * outline_ink


@pytest.mark.parametrize("task", SHAPE_TASKS)
def test_same_seed_gives_byte_identical_images_and_another_seed_does_not(task):
    again = draws(task, same=False, seed=7)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(draws(task, same=False, seed=7), again))
    assert any(a.tobytes() != b.tobytes() for a, b in zip(draws(task, same=False, seed=8), again))


def test_rejection_rule_counts_external_shapes_like_opencv():
    square = np.array([[0, 0], [30, 0], [30, 30], [0, 30]])
    apart = blank()
    polyline(apart, square + 10, closed=True)
    polyline(apart, square + 70, closed=True)
    assert count_shapes(apart) == 2
    nested = blank()
    polyline(nested, square * 2 + 10, closed=True)
    polyline(nested, square // 3 + 30, closed=True)
    assert count_shapes(nested) == 1, "a shape inside another's hole is not an external contour"
    touching = blank()
    fill_polygon(touching, square + 10)
    fill_polygon(touching, square + 41)  # corners meet diagonally: 8-connected
    assert count_shapes(touching) == 1

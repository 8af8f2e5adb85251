"""The ten synthetic same-different tasks by name, and how an episode's images are drawn.

A task draws all images of one episode from its labels, so that per-episode choices (the
reference object of a naturalistic episode) are shared by the support and query images.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from conml.data.same_different.arrows import arrows
from conml.data.same_different.lines import lines
from conml.data.same_different.polygons import filled, irregular, open_polygons, random_color, regular, wider_line
from conml.data.same_different.scrambled import scrambled
from conml.data.same_different.svrt import original

ImageFunction = Callable[[np.random.Generator, bool], np.ndarray]

# The nine Puebla-Bowers tasks, then SVRT #1; the order fixes each task's seed stream.
SHAPE_TASKS: dict[str, ImageFunction] = {
    "irregular": irregular,
    "regular": regular,
    "open": open_polygons,
    "wider_line": wider_line,
    "random_color": random_color,
    "filled": filled,
    "scrambled": scrambled,
    "lines": lines,
    "arrows": arrows,
    "original": original,
}
NATURALISTIC = "naturalistic"
ALL_TASKS = (*SHAPE_TASKS, NATURALISTIC)


class EpisodeImages(Protocol):
    def episode_images(self, rng: np.random.Generator, split: str, labels: Sequence[int]) -> np.ndarray:
        """uint8 images [n, 128, 128, 3] for labels (1 = same) drawn from `rng`."""
        ...


class ShapeTask:
    """A synthetic task: every image is an independent draw of its generator."""

    def __init__(self, name: str):
        self.draw = SHAPE_TASKS[name]

    def episode_images(self, rng: np.random.Generator, split: str, labels: Sequence[int]) -> np.ndarray:
        return np.stack([self.draw(rng, bool(label)) for label in labels])

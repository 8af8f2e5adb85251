"""Lines: two "connected open squares" (S/Z-like zig-zags of segment length s ~ U{10..24}).

"Same" shows the zig-zag A twice; "different" shows A and its vertical mirror B. Same images
never contain B, a pixel-level shortcut the original stimuli have too.
"""

from __future__ import annotations

import numpy as np

from conml.data.same_different.raster import blank, count_shapes, polyline

_ZIGZAG = np.array([[0, 1], [0, 0], [1, 0], [1, 1], [1, 2], [2, 2], [2, 1]])
_MIRRORED = np.array([[0, 1], [0, 2], [1, 2], [1, 1], [1, 0], [2, 0], [2, 1]])


def lines(rng: np.random.Generator, same: bool) -> np.ndarray:
    while True:
        size = int(rng.integers(10, 25))
        offsets = rng.integers(1, 127 - 2 * size, size=(2, 2))
        image = blank()
        polyline(image, _ZIGZAG * size + offsets[0], closed=False)
        polyline(image, (_ZIGZAG if same else _MIRRORED) * size + offsets[1], closed=False)
        if count_shapes(image) == 2:
            return image

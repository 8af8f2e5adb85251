"""Decoding encoded images (JPEG/PNG files or bytes) into fixed-size RGB uint8 arrays, in parallel.

Used only by dataset preparation: training never decodes an image file.
"""

from __future__ import annotations

import io
import multiprocessing
from functools import partial
from typing import Iterable, Iterator, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from conml.errors import DataError

# An encoded image (a path or its bytes) and the name that identifies it in error messages.
Encoded = tuple[Union[str, bytes], str]


def decode_image(item: Encoded, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]; other sizes are resized with Lanczos, as Finn et al.'s miniImageNet script does."""
    source, origin = item
    try:
        with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"Image {origin} cannot be decoded ({type(error).__name__}: {error}). The file is corrupt or truncated; "
            "replace it with a good copy from the original download and prepare the dataset again."
        ) from None
    return resize(rgb, size)


def resize(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3], resampled with Lanczos where the size differs."""
    if isinstance(image, np.ndarray):
        if image.shape[:2] == (size, size):
            return image
        image = Image.fromarray(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def decode_all(items: Iterable[Encoded], size: int, workers: int) -> Iterator[np.ndarray]:
    """Decoded images in the order of `items`; `workers` > 1 decodes in that many processes."""
    decode = partial(decode_image, size=size)
    if workers <= 1:
        yield from map(decode, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(decode, items, chunksize=64)

"""Data augmentation for training episodes, per image and on the device that holds the images.

torchvision's tensor transforms draw one set of random parameters for a whole batch; here every
image gets its own crop offset, flip and jitter factors. The parameters are drawn from the
episode's generator, so augmented episodes are as replayable as plain ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conml.errors import ConfigError

_GRAY = (0.299, 0.587, 0.114)


class Augmentation:
    """Random crop after zero padding, horizontal flip, then brightness, contrast and saturation jitter.

    configs/dataset/augmentation/lee2019.yaml holds learn2learn's `lee2019` miniImageNet transform (crop 84 with
    padding 8, flip, jitter 0.4). Jitter factors are uniform in [1 - s, 1 + s] and applied in that fixed order.
    """

    def __init__(
        self,
        crop_padding: int,
        flip: bool,
        brightness: float,
        contrast: float,
        saturation: float,
    ):
        strengths = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
        if crop_padding < 0 or any(not 0.0 <= s <= 1.0 for s in strengths.values()):
            raise ConfigError(
                f"dataset.augmentation: crop_padding must be >= 0 and jitter strengths in [0, 1], got crop_padding={crop_padding}, {strengths}."
            )
        self.crop_padding, self.flip = crop_padding, flip
        self.strengths = np.array([brightness, contrast, saturation])

    def draw(self, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
        """Random parameters for `count` images."""
        return {
            "offsets": rng.integers(0, 2 * self.crop_padding + 1, size=(count, 2)),
            "flip": rng.random(count) < 0.5 if self.flip else np.zeros(count, dtype=bool),
            "factors": 1.0 + rng.uniform(-1.0, 1.0, size=(count, 3)) * self.strengths,
        }

    def apply(self, images: Tensor, params: dict[str, np.ndarray]) -> Tensor:
        """uint8 images [N, H, W, C] -> augmented images as floats in [0, 255], same shape."""
        pixels = self._crop_and_flip(images, params).float()
        factors = torch.as_tensor(params["factors"], dtype=pixels.dtype, device=pixels.device)[:, :, None, None, None]
        brightness, contrast, saturation = factors.unbind(1)
        if self.strengths[0] > 0:
            pixels = (pixels * brightness).clamp_(0.0, 255.0)
        if self.strengths[1] > 0:
            mean = _gray(pixels).mean(dim=(1, 2), keepdim=True)
            pixels = _blend(pixels, mean, contrast)
        if self.strengths[2] > 0:
            pixels = _blend(pixels, _gray(pixels), saturation)
        return pixels

    def _crop_and_flip(self, images: Tensor, params: dict[str, np.ndarray]) -> Tensor:
        # One gather does both: rows and columns are read from the padded image at per-image offsets,
        # and columns are read right to left for flipped images.
        count, height, width = images.shape[:3]
        device, pad = images.device, self.crop_padding
        padded = F.pad(images, (0, 0, pad, pad, pad, pad)) if pad else images
        offsets = torch.as_tensor(params["offsets"], device=device)
        flip = torch.as_tensor(params["flip"], device=device)
        columns = torch.arange(width, device=device)
        columns = torch.where(flip[:, None], width - 1 - columns, columns) + offsets[:, 1:]
        rows = torch.arange(height, device=device) + offsets[:, :1]
        which = torch.arange(count, device=device)[:, None, None]
        return padded[which, rows[:, :, None], columns[:, None, :]]


def _gray(pixels: Tensor) -> Tensor:
    weights = torch.tensor(_GRAY, dtype=pixels.dtype, device=pixels.device)
    return (pixels * weights).sum(-1, keepdim=True)


def _blend(pixels: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    return (factor * pixels + (1.0 - factor) * other).clamp_(0.0, 255.0)

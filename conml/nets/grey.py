"""One-channel images repeated over three channels, as Meta-Dataset feeds Omniglot to RGB networks.

The CNAPs ResNet-18 and set encoder have three-channel stems (their published weights are RGB), so a
grey image such as an Omniglot drawing is given to them as three equal channels rather than through a
stem of another shape: one architecture, one checkpoint format, whatever the dataset.
"""

from __future__ import annotations

from torch import Tensor


def as_rgb(x: Tensor) -> Tensor:
    """Images [N, C, H, W] with C = 3 as they are; C = 1 repeated (a view, no copy) to three channels."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

"""Few-shot image classification (miniImageNet, tieredImageNet).

Raw downloads are converted once (`scripts/prepare_*.py`) into a cache of uint8 arrays that training
memory-maps or copies onto the GPU; episodes are gathered from those arrays, never decoded from
image files during training.
"""
